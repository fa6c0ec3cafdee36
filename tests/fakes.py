"""Hand-made hostile upstreams, one per provider, whose every answer a test chooses, and an in-memory
server pointed at them: what the hostile test families share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import ClassVar

import anyio
from anyio.abc import SocketAttribute, SocketStream
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from mcp_cloudops.registry import load_registry
from mcp_cloudops.registry_models import Provider
from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.base import Simulator
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

UUID = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
REGISTRY = load_registry()  # once: loading it costs more than a whole test

Behaviour = Callable[["Hostile", Request], Awaitable[Response]]
WsBehaviour = Callable[["Hostile", WebSocket], Awaitable[None]]


async def answer_ok(sim: Hostile, request: Request) -> Response:
    return JSONResponse({"id": UUID, "status": "done", "images": [], "instances": []})


class Hostile(Simulator):
    """An upstream whose every HTTP request (and websocket) is answered by `behave` / `behave_ws`."""

    provider: ClassVar[str] = "nirvana"

    def __init__(self) -> None:
        self.behave: Behaviour = answer_ok
        self.behave_ws: WsBehaviour | None = None
        self.sent = 0  # body bytes handed to the transport by endless()
        super().__init__()

    def build_app(self) -> ASGIApp:
        async def http(request: Request) -> Response:
            return await self.behave(self, request)

        async def websocket(ws: WebSocket) -> None:
            assert self.behave_ws is not None
            await self.behave_ws(self, ws)

        return Starlette(
            routes=[Route("/{path:path}", http, methods=METHODS), WebSocketRoute("/{path:path}", websocket)]
        )

    def env(self, address: str) -> dict[str, str]:
        return {"NIRVANA_LABS_BASE_URL": address, "NIRVANA_LABS_API_KEY": credentials.NIRVANA_LABS_API_KEY}


class HostileScaleway(Hostile):
    provider: ClassVar[str] = "scaleway"

    def env(self, address: str) -> dict[str, str]:
        return {"SCW_API_URL": address, "SCW_SECRET_KEY": credentials.SCW_SECRET_KEY}


class HostileExoscale(Hostile):
    provider: ClassVar[str] = "exoscale"

    def env(self, address: str) -> dict[str, str]:
        return {
            "EXOSCALE_API_URL": address,
            "EXOSCALE_API_KEY": credentials.EXOSCALE_API_KEY,
            "EXOSCALE_API_SECRET": credentials.EXOSCALE_API_SECRET,
        }


class HostilePortainer(Hostile):
    provider: ClassVar[str] = "portainer"

    def env(self, address: str) -> dict[str, str]:
        return {"PORTAINER_URL": address, "PORTAINER_API_KEY": credentials.PORTAINER_API_KEY}


class HostileIncus(Hostile):
    """An Incus daemon on a unix socket whose every answer a test chooses."""

    provider: ClassVar[str] = "incus"
    transport: ClassVar[str] = "unix"

    def env(self, address: str) -> dict[str, str]:
        return {"INCUS_SOCKET": address}


class Keyed(Hostile):
    """Any provider of a registry that signs in with a key it sends as is (tools.yaml auth `header` or `bearer`):
    `env` points the provider's URL variable here and sets its key, whatever the provider is called."""

    def __init__(self, provider: Provider, key: str) -> None:
        self.spec, self.key = provider, key
        self.provider = provider.key  # type: ignore[misc]  # per instance: the sandbox files it under this key
        super().__init__()

    def env(self, address: str) -> dict[str, str]:
        return {self.spec.url_env: address, **dict.fromkeys(self.spec.auth.env_names, self.key)}


class OtherHost(Hostile):
    """A second server, the target of redirects: it must never see a request."""

    provider: ClassVar[str] = "elsewhere"

    def env(self, address: str) -> dict[str, str]:
        return {}


@asynccontextmanager
async def serving(*sims: Simulator, **settings: str) -> AsyncIterator[tuple[Sandbox, Client]]:
    """The simulators on loopback and an in-memory server pointed at them, MCP_CLOUDOPS_<NAME> from settings."""
    async with run_sandbox(list(sims)) as sandbox:
        env = {**sandbox.env, **{f"MCP_CLOUDOPS_{name.upper()}": value for name, value in settings.items()}}
        async with Client(build_server(Settings.from_env(env), REGISTRY)) as client:
            yield sandbox, client


def answering(body: bytes | str, status: int = 200, media_type: str = "application/json") -> Behaviour:
    """A behaviour answering every request with this body and status."""

    async def answer(sim: Hostile, request: Request) -> Response:
        return Response(body, status_code=status, media_type=media_type)

    return answer


def denying(response: Response) -> WsBehaviour:
    """A websocket behaviour refusing the handshake with this HTTP response."""

    async def deny(sim: Hostile, ws: WebSocket) -> None:
        await ws.send_denial_response(response)

    return deny


# --- raw TCP upstreams: an HTTP framework cannot drop a connection halfway ----------------------------

RawHandler = Callable[[SocketStream, list[bytes]], Awaitable[None]]


async def read_request(stream: SocketStream) -> bytes:
    """One HTTP/1.1 request, headers and Content-Length body, as it arrived."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        body += await stream.receive()
    return data


async def hang_up(stream: SocketStream, seen: list[bytes]) -> None:
    seen.append(await read_request(stream))  # the whole request arrived: then the line goes dead


async def stall(stream: SocketStream, seen: list[bytes]) -> None:
    seen.append(await read_request(stream))
    await anyio.sleep(30)  # never answers; the client's read timeout ends it


@asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)

    async def serve(stream: SocketStream) -> None:
        async with stream:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await handler(stream, seen)

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield f"http://127.0.0.1:{port}", seen
        tg.cancel_scope.cancel()
