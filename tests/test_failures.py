"""Transport failures are told apart by whether the request may have reached the upstream (failures.py):
could not connect -> nothing was sent, safe to retry; sent, then no complete answer -> a write's outcome is
unknown (never resent; the tool that shows the state is named), a read is retried, then reported.

The upstreams here are raw TCP servers on 127.0.0.1, since an HTTP framework cannot drop a connection
halfway: one reads the whole request then hangs up, one reads it and never answers, and one port
refuses connections.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from fakes import hang_up, raw_server, stall
from mcp import Client
from support import refused

from mcp_cloudops.failures import may_have_arrived
from mcp_cloudops.sandbox import credentials
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

INSTANCE = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"
CREATE = {
    "instance-type": {"id": INSTANCE},
    "template": {"id": INSTANCE},
    "disk-size": 10,
    "name": "vm",
}


def refusing_address() -> str:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def client_for(address: str, **settings: str) -> AsyncIterator[Client]:
    env = {
        "EXOSCALE_API_URL": address,
        "EXOSCALE_API_KEY": credentials.EXOSCALE_API_KEY,
        "EXOSCALE_API_SECRET": credentials.EXOSCALE_API_SECRET,
        "NIRVANA_LABS_BASE_URL": address,
        "NIRVANA_LABS_API_KEY": credentials.NIRVANA_LABS_API_KEY,
        "PORTAINER_URL": address,
        "PORTAINER_API_KEY": credentials.PORTAINER_API_KEY,
        "MCP_CLOUDOPS_CONFIRM_FALLBACK": "allow",
        **{f"MCP_CLOUDOPS_{name.upper()}": value for name, value in settings.items()},
    }
    async with Client(build_server(Settings.from_env(env))) as client:
        yield client


async def error_of(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """The one-line error an agent reads, which never quotes a credential."""
    text = await refused(client, tool, arguments)
    assert "\n" not in text and credentials.EXOSCALE_API_SECRET not in text
    return text


@pytest.mark.parametrize(
    "exc",
    [
        httpx2.ConnectError("refused"),
        httpx2.ConnectTimeout("slow connect"),
        httpx2.PoolTimeout("pool"),
        httpx2.UnsupportedProtocol("ftp"),
        ConnectionRefusedError(),
        FileNotFoundError(),
        socket.gaierror(),
        ssl.SSLError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_failures_before_sending_are_safe_to_retry(exc: BaseException) -> None:
    assert not may_have_arrived(exc)


@pytest.mark.parametrize(
    "exc",
    [
        httpx2.ReadTimeout("slow answer"),
        httpx2.WriteTimeout("slow send"),
        httpx2.ReadError("reset"),
        httpx2.WriteError("reset"),
        httpx2.RemoteProtocolError("dropped"),
        TimeoutError(),
        ConnectionResetError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_failures_after_sending_leave_the_outcome_unknown(exc: BaseException) -> None:
    assert may_have_arrived(exc)


async def test_a_write_whose_connection_drops_after_the_body_is_sent_once_and_unknown() -> None:
    async with raw_server(hang_up) as (address, seen), client_for(address) as client:
        text = await error_of(client, "create-compute-instance", CREATE)
    assert len(seen) == 1 and seen[0].startswith(b"POST ") and b'"name":"vm"' in seen[0]  # sent, once
    assert text.startswith("Exoscale gave no answer (127.0.0.1, RemoteProtocolError")
    assert "The request was sent, so the outcome is unknown: read the state with list-compute-instances" in text
    assert "a retry may do it twice" in text


async def test_a_write_to_a_refusing_port_was_never_sent() -> None:
    async with client_for(refusing_address()) as client:
        text = await error_of(client, "create-compute-instance", CREATE)
    assert text.startswith("Cannot reach Exoscale at 127.0.0.1 (ConnectError")
    assert "nothing was sent, so retrying is safe. Check EXOSCALE_API_URL" in text


async def test_a_stalled_write_is_unknown_and_a_stalled_read_is_retried() -> None:
    async with raw_server(stall) as (address, seen), client_for(address, read_timeout="0.3") as client:
        text = await error_of(client, "stop-compute-instance", {"id": INSTANCE})
        assert len(seen) == 1
        assert text.startswith("Exoscale did not answer in time (127.0.0.1, ReadTimeout) for stop-compute-instance.")
        assert "outcome is unknown: read the state with list-compute-instances" in text
        text = await error_of(client, "get-nirvana-operation", {"operation_id": INSTANCE})
        assert len(seen) == 1 + 3  # a read: tried, then retried twice
        assert "did not answer in time (127.0.0.1, ReadTimeout) for get-nirvana-operation after 3 tries" in text


async def test_websockets_are_classified_the_same_way() -> None:
    arguments = {"endpointId": 1, "id": "ffffffffffff", "max_seconds": 2}
    async with client_for(refusing_address()) as client:
        text = await error_of(client, "execute-websocket", arguments)
    assert text.startswith("Cannot reach Portainer CE at 127.0.0.1") and "nothing was sent" in text
    pod = {"endpointId": 2, "namespace": "default", "podName": "web-0", "containerName": "web", "command": "id"}
    async with raw_server(hang_up) as (address, seen), client_for(address) as client:
        text = await error_of(client, "execute-websocket-pod", {**pod, "max_seconds": 2})
    assert len(seen) == 1 and b"Upgrade: websocket" in seen[0]
    assert "The request was sent, so the outcome is unknown: read the state with list-portainer-environments" in text


def test_an_unreachable_incus_socket_names_both_ways_to_reach_incus() -> None:
    from mcp_cloudops.accounts import INCUS_SOCKET_HOST
    from mcp_cloudops.failures import cannot_reach
    from mcp_cloudops.redaction import Redactor
    from mcp_cloudops.registry import load_registry

    incus = load_registry().providers["incus"]
    text = str(
        cannot_reach(incus, INCUS_SOCKET_HOST + "/1.0/operations", ConnectionRefusedError(111, "refused"), Redactor())
    )
    assert text.startswith("Cannot reach Incus at its unix socket (ConnectionRefusedError")
    assert "Check INCUS_SOCKET (is Incus running, and may this user use its socket?) or INCUS_URL" in text
