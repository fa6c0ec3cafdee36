"""What every simulator provides: an ASGI app wrapped in a request recorder, and the env that
points mcp-cloudops at it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from starlette.types import ASGIApp

from mcp_cloudops.sandbox.recorder import RecordedRequest, Recorder


class Simulator(ABC):
    """A stateful stand-in for one upstream API.

    Subclasses build a Starlette app in `build_app()` and keep their state on `self`, so tests
    can seed it and inspect it. Nothing is shared between instances.
    """

    provider: ClassVar[str]
    """The provider key in tools.yaml this simulator stands in for."""

    transport: ClassVar[str] = "tcp"
    """"tcp" (served on 127.0.0.1, a free port) or "unix" (served on a unix socket)."""

    def __init__(self) -> None:
        self.recorder = Recorder(self.build_app())

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
