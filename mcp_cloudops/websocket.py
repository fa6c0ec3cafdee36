"""Bounded websocket sessions: connect with the provider's auth, optionally send stdin, and collect
output until the peer closes, an idle gap, a deadline or a byte cap, whichever comes first."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import anyio
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from mcp_cloudops.auth import incus_ssl_context
from mcp_cloudops.registry import ToolSpec
from mcp_cloudops.results import UpstreamError, error_text, parse_body
from mcp_cloudops.upstream import UpstreamRequest, Upstreams, where

Stop = Literal["closed", "idle", "deadline", "max_bytes"]


@dataclass(frozen=True)
class Limits:
    max_seconds: float = 10.0
    idle_seconds: float = 2.0
    max_bytes: int = 65536


@dataclass(frozen=True)
class Transcript:
    output: str
    bytes: int
    stopped: Stop
    truncated: bool
    close_code: int | None
    seconds: float

    def as_payload(self) -> dict[str, Any]:
        return asdict(self)


def ws_url(request: UpstreamRequest) -> str:
    url = request.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{url}?{urlencode(request.params)}" if request.params else url


async def collect(ws: ClientConnection, stdin: str | None, limits: Limits) -> Transcript:
    """Read frames until one of the limits or the end of the stream; an empty text frame ends Incus streams."""
    started = time.monotonic()
    deadline = started + limits.max_seconds
    chunks: list[bytes] = []
    total = 0
    stopped: Stop = "closed"
    truncated = False
    if stdin:
        await ws.send(stdin)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            stopped = "deadline"
            break
        wait = min(limits.idle_seconds, remaining)
        frame: str | bytes | None = None
        with anyio.move_on_after(wait):
            try:
                frame = await ws.recv()
            except ConnectionClosed:
                break
        if frame is None:
            stopped = "deadline" if wait >= remaining else "idle"
            break
        data = frame.encode() if isinstance(frame, str) else frame
        if isinstance(frame, str) and not frame:
            break
        if total + len(data) >= limits.max_bytes:
            chunks.append(data[: limits.max_bytes - total])
            total = limits.max_bytes
            truncated = True  # more output may follow: we stopped reading at the cap
            stopped = "max_bytes"
            break
        chunks.append(data)
        total += len(data)
    return Transcript(
        output=b"".join(chunks).decode("utf-8", errors="replace"),
        bytes=total,
        stopped=stopped,
        truncated=truncated,
        close_code=ws.close_code,
        seconds=round(time.monotonic() - started, 3),
    )


def _open(upstreams: Upstreams, tool: ToolSpec, request: UpstreamRequest) -> AbstractAsyncContextManager[Any]:
    provider = upstreams.registry.provider_of(tool)
    headers = upstreams.header_auth(provider)
    common: dict[str, Any] = {
        "additional_headers": headers,
        "open_timeout": upstreams.settings.connect_timeout,
        "close_timeout": 2,
        "proxy": None,
        "max_size": 4 * 1024 * 1024,
        "user_agent_header": "mcp-cloudops",
    }
    url = ws_url(request)
    if provider.auth.scheme == "incus":
        endpoint = upstreams.settings.incus(provider)
        if endpoint.socket is not None:
            return unix_connect(endpoint.socket, url, **common)
        return connect(url, ssl=incus_ssl_context(endpoint), **common)
    return connect(url, **common)


async def stream(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Run one bounded websocket session for a tool and return its transcript as the payload."""
    provider, request = upstreams.request_for(tool, args)
    limits = Limits(
        max_seconds=float(args.get("max_seconds", Limits.max_seconds)),
        idle_seconds=float(args.get("idle_seconds", Limits.idle_seconds)),
        max_bytes=int(args.get("max_bytes", Limits.max_bytes)),
    )
    try:
        async with _open(upstreams, tool, request) as ws:
            transcript = await collect(ws, args.get("stdin"), limits)
    except InvalidStatus as exc:
        response = exc.response
        raise UpstreamError(
            error_text(tool, provider, response.status_code, parse_body(response.body or b""), "")
        ) from None
    except (InvalidHandshake, InvalidURI) as exc:
        raise UpstreamError(
            f"{provider.title} refused the websocket for {tool.name} ({type(exc).__name__}). "
            f"Check {provider.url_env} points at the API."
        ) from None
    except TimeoutError:
        raise UpstreamError(
            f"{provider.title} did not open the websocket in time ({where(request.url)}). Retry later."
        ) from None
    except OSError as exc:
        raise UpstreamError(
            f"Cannot reach {provider.title} at {where(request.url)} ({type(exc).__name__}: {str(exc)[:120]}). "
            f"Check {provider.url_env} and the network."
        ) from None
    return transcript.as_payload()
