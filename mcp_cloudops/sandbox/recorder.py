"""Record every request a simulator receives, exactly as it arrived on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the upstream saw it: raw path (percent-encoding kept), query, headers, body."""

    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes = b""
    websocket: bool = False
    query: dict[str, list[str]] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Recorder:
    """ASGI middleware that appends a RecordedRequest per HTTP request or websocket handshake."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[RecordedRequest] = []

    def clear(self) -> None:
        self.requests.clear()

    def last(self, method: str | None = None) -> RecordedRequest:
        """The newest request (optionally of one method); AssertionError if there is none."""
        for request in reversed(self.requests):
            if method is None or request.method == method:
                return request
        raise AssertionError(f"no {method or ''} request recorded")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw_query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        base = {
            "path": raw_path.decode("latin-1"),
            "raw_query": raw_query,
            "headers": headers,
            "query": parse_qs(raw_query, keep_blank_values=True),
        }
        if scope["type"] == "websocket":
            self.requests.append(RecordedRequest(method="GET", websocket=True, **base))
            await self.app(scope, receive, send)
            return

        body = bytearray()
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.requests.append(RecordedRequest(method=scope["method"], body=bytes(body), **base))

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)
