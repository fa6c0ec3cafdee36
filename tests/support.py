"""Small helpers the test modules share (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import socket

from mcp_cloudops.sandbox import credentials

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
