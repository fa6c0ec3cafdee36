"""Small helpers the test modules share (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest

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


PROVIDER_ENV = ("EXOSCALE_", "SCW_", "PORTAINER_", "NIRVANA_", "INCUS_")


def server_env(*, strip: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """This run's environment for a server under test: no provider's settings or credentials (the
    sandbox sets its own; CI also exports a real LXD's), nothing starting with `strip`, unbuffered,
    plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_ENV + strip)}
    return env | {"PYTHONUNBUFFERED": "1"} | extra


def wait_until_serving(
    port: int, proc: subprocess.Popen[Any], output: Callable[[], str] = str, timeout: float = 30
) -> None:
    """Return once the server on 127.0.0.1:`port` answers HTTP; fail the test, quoting `output()`,
    if its process exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.TransportError:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}) before answering:\n{output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"server on port {port} did not answer within {timeout} s:\n{output()}")
            time.sleep(0.05)


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
