"""What every simulator provides: an ASGI app wrapped in a request recorder, and the env that
points mcp-cloudops at it; plus small pieces several simulators share (fault injection, an
HTTPException handler, UUID checks)."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_cloudops.sandbox.recorder import RecordedRequest, Recorder


def is_uuid(value: Any) -> bool:
    """Whether `value` is a string that parses as a UUID."""
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette handler for HTTPException: `{"message": detail}` with the exception's status."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"message": exc.detail}, status_code=exc.status_code)


class FaultInjector:
    """ASGI middleware: while `faults` is non-empty, each HTTP request gets the next queued
    response instead of reaching the app. Websocket handshakes and lifespan pass through."""

    def __init__(self, app: ASGIApp, faults: list[Response]) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.faults:
            await self.faults.pop(0)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Simulator(ABC):
    """A stateful stand-in for one upstream API.

    Subclasses build a Starlette app in `build_app()` and keep their state on `self`, so tests
    can seed it and inspect it. Nothing is shared between instances. Every request is recorded,
    then answered by an injected fault (see `fail_next`) if one is queued, else by the app.
    """

    provider: ClassVar[str]
    """The provider key in tools.yaml this simulator stands in for."""

    transport: ClassVar[str] = "tcp"
    """"tcp" (served on 127.0.0.1, a free port) or "unix" (served on a unix socket)."""

    def __init__(self) -> None:
        self._faults: list[Response] = []
        self.recorder = Recorder(FaultInjector(self.build_app(), self._faults))

    def fail_next(self, status: int, body: Any = None, retry_after: float | None = None) -> None:
        """The next HTTP request answers `status` with `body` (JSON; default a generic message),
        with a Retry-After header when `retry_after` is given."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        payload = body if body is not None else {"message": f"Injected upstream error {status}"}
        self._faults.append(JSONResponse(payload, status_code=status, headers=headers))

    @abstractmethod
    def build_app(self) -> ASGIApp:
        """The simulator's routes, as an ASGI app."""

    @abstractmethod
    def env(self, address: str) -> dict[str, str]:
        """Environment variables that point mcp-cloudops at this simulator.

        `address` is `http://127.0.0.1:PORT` for tcp simulators, the socket path for unix ones.
        Includes the sandbox credentials from `sandbox.credentials`.
        """

    @property
    def app(self) -> ASGIApp:
        return self.recorder

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.recorder.requests
