"""Incus over HTTPS: our TLS client certificate is presented, and the server certificate is pinned."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import uvicorn
from mcp import Client

from mcp_cloudops.sandbox.incus import IncusSimulator
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate, as `incus` makes for its clients and servers."""
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return crt, key


@pytest.fixture
async def incus_https(tmp_path: Path) -> AsyncIterator[tuple[IncusSimulator, dict[str, str], Path]]:
    """The Incus simulator behind an HTTPS listener that only trusts one client certificate."""
    server_crt, server_key = make_cert(tmp_path, "server")
    client_crt, client_key = make_cert(tmp_path, "client")
    sim = IncusSimulator()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        sim.app, log_level="warning", lifespan="off", ws="websockets-sansio", timeout_graceful_shutdown=1,
        ssl_certfile=str(server_crt), ssl_keyfile=str(server_key), ssl_ca_certs=str(client_crt),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )  # fmt: skip
    server = uvicorn.Server(config)
    env = {
        "INCUS_URL": f"https://127.0.0.1:{sock.getsockname()[1]}",
        "INCUS_CLIENT_CERT": str(client_crt),
        "INCUS_CLIENT_KEY": str(client_key),
        "INCUS_SERVER_CERT": str(server_crt),
    }
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        yield sim, env, tmp_path
        server.should_exit = True


async def test_trusted_client_certificate_reaches_incus(incus_https) -> None:
    sim, env, _ = incus_https
    async with Client(build_server(Settings.from_env(env))) as client:
        listed = await client.call_tool("get-operations-2", {})
        assert not listed.is_error, listed.content[0].text
        assert any(op["class"] == "token" for op in listed.structured_content["running"])
        op_id = sim.create_exec(["echo", "over", "tls"])["id"]
        streamed = await client.call_tool("get-websocket-stream", {"id": op_id})
        assert not streamed.is_error, streamed.content[0].text
        assert streamed.structured_content["stdout"] == "over tls\n"
    assert sim.requests[0].path == "/1.0/operations"


async def test_untrusted_client_certificate_is_refused(incus_https) -> None:
    _, env, tmp = incus_https
    other_crt, other_key = make_cert(tmp, "stranger")
    async with Client(
        build_server(
            Settings.from_env({**env, "INCUS_CLIENT_CERT": str(other_crt), "INCUS_CLIENT_KEY": str(other_key)})
        )
    ) as client:
        result = await client.call_tool("get-operations", {})
    # TLS 1.3: the client's handshake ends before the server checks its certificate, then the server
    # drops the connection: the request went out, so this is "no answer", pointing at the credentials.
    text = result.content[0].text
    # httpx2 names the drop RemoteProtocolError ("Server disconnected without sending a response").
    assert result.is_error and "Incus gave no answer (127.0.0.1, RemoteProtocolError" in text
    assert "check INCUS_URL and the credentials (an untrusted TLS client certificate" in text


async def test_unpinned_self_signed_server_is_not_trusted(incus_https) -> None:
    _, env, _ = incus_https
    unpinned = {k: v for k, v in env.items() if k != "INCUS_SERVER_CERT"}
    async with Client(build_server(Settings.from_env(unpinned))) as client:
        result = await client.call_tool("get-operations", {})
    assert result.is_error and "Cannot reach Incus" in result.content[0].text
