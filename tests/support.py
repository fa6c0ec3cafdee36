"""Small helpers the test modules share (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from typing import Any

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.base import Simulator

# Every credential the sandbox hands out: none may ever appear in a result, an error or a log line.
SECRETS = (
    credentials.EXOSCALE_API_KEY,
    credentials.EXOSCALE_API_SECRET,
    credentials.SCW_SECRET_KEY,
    credentials.PORTAINER_API_KEY,
    credentials.NIRVANA_LABS_API_KEY,
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the only address tests listen on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


AUTH_HEADERS = ("authorization", "x-auth-token", "x-api-key")


def text_of(result: Any) -> str:
    return result.content[0].text


def assert_nothing_leaked(sims: Iterable[Simulator], result: Any, logs: str) -> None:
    """No credential, and no auth header value any simulator ever received, in the result or the logs."""
    sent = {
        value
        for sim in sims
        for request in sim.requests
        for name, value in request.headers.items()
        if name in AUTH_HEADERS
    }
    said = text_of(result) + json.dumps(result.structured_content) + logs
    for secret in (*SECRETS, *sent):
        assert secret not in said
