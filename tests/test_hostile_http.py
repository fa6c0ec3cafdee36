"""The streamable HTTP endpoint under hostile requests: foreign Host and Origin headers, missing and
wrong bearer tokens, non-loopback binds without a token; and its modes (token, stateless, read-only)
working with the SDK client. Every server is a subprocess on 127.0.0.1, stopped by the test module."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from support import INITIALIZE, MCP_HEADERS, HttpServer, debug_server_env, free_port
from support import SECRETS as SANDBOX_SECRETS

from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import credentials

pytestmark = pytest.mark.anyio

REGISTRY = load_registry()
TOKEN = "hostile-http-token-" + secrets.token_hex(16)
SECRETS = (TOKEN, *SANDBOX_SECRETS)
MODES = ["legacy", "auto"]
UNAUTHORIZED = b'{"error":"unauthorized","message":"send Authorization: Bearer <the server\'s --http-token>"}'


@dataclass
class Servers:
    plain: HttpServer
    token: HttpServer
    stateless: HttpServer
    read_only: HttpServer


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """Four servers, started together (their start-up overlaps), stopped when the module ends."""
    started: list[HttpServer] = []
    try:
        for flags, env in (
            ((), {}),
            ((), {"MCP_CLOUDOPS_HTTP_TOKEN": TOKEN}),
            (("--stateless",), {}),
            (("--read-only",), {}),
        ):
            started.append(HttpServer.start(*flags, **env))
        for server in started:
            server.wait_ready()
        yield Servers(*started)
    finally:
        for server in started:  # all asked to stop at once: their graceful shutdowns overlap
            if server.proc.poll() is None:
                server.proc.terminate()
        for server in started:
            server.stop()


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def exercise(client: Client, read_only: bool = False) -> None:
    """The client works: tools listed, a read answered from the sandbox, a bad argument refused."""
    tools = (await client.list_tools()).tools
    expected = [t.name for t in REGISTRY.tools if not read_only or (t.hints.readOnly and not t.credential)]
    assert [t.name for t in tools] == expected
    listed = await client.call_tool("list-compute-instances", {})
    assert not listed.is_error, listed.content
    assert isinstance(listed.structured_content["instances"], list)
    bad = await client.call_tool("retrieve-compute-instance-details", {"id": "../../etc"})
    assert bad.is_error and "argument 'id' must be a valid uuid" in bad.content[0].text


@asynccontextmanager
async def authorized_client(url: str, mode: str, token: str = TOKEN) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


async def post(url: str, headers: dict[str, str], body: object = INITIALIZE) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, headers=headers, json=body)


# --- DNS rebinding: foreign Host and Origin ------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:80", "127.0.0.1.evil.example:8000", "localhost.evil.example", "169.254.169.254"],
)
async def test_a_foreign_host_header_is_refused_and_the_server_keeps_serving(servers: Servers, host: str) -> None:
    server = servers.plain
    with anyio.fail_after(30):
        refused = await post(server.url, MCP_HEADERS | {"Host": host})
        assert (refused.status_code, refused.text) == (421, "Invalid Host header")
        async with httpx.AsyncClient(timeout=10) as http:
            for method in ("GET", "DELETE"):
                response = await http.request(method, server.url, headers={"Host": host, "Accept": "text/event-stream"})
                assert response.status_code == 421
        async with Client(server.url) as client:
            await exercise(client)
    assert server.proc.poll() is None


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://evil.example:8000",
        "https://127.0.0.1:8000",
        "http://localhost.evil.example:8000",
        "http://127.0.0.1.evil.example",
        "null",
        "file://",
    ],
)
async def test_a_foreign_origin_is_refused_and_the_server_keeps_serving(servers: Servers, origin: str) -> None:
    server = servers.plain
    with anyio.fail_after(30):
        refused = await post(server.url, MCP_HEADERS | {"Origin": origin})
        assert (refused.status_code, refused.text) == (403, "Invalid Origin header")
        allowed = await post(server.url, MCP_HEADERS | {"Origin": f"http://127.0.0.1:{server.port}"})
        assert allowed.status_code == 200
        async with Client(server.url) as client:
            await exercise(client)
    assert server.proc.poll() is None


# --- the bearer token ------------------------------------------------------------------------------------

WRONG = {
    "missing": None,
    "empty": "",
    "no-scheme": TOKEN,
    "wrong-token": "Bearer not-the-token",
    "prefix": f"Bearer {TOKEN[:-1]}",
    "suffix": f"Bearer {TOKEN}x",
    "padded": f"Bearer  {TOKEN}",
    "basic": "Basic " + TOKEN,
    "other-credential": f"Bearer {credentials.NIRVANA_LABS_API_KEY}",
}


@pytest.mark.parametrize("authorization", list(WRONG.values()), ids=list(WRONG))
async def test_without_the_right_token_every_request_is_401(servers: Servers, authorization: str | None) -> None:
    server = servers.token
    headers = MCP_HEADERS | ({"Authorization": authorization} if authorization is not None else {})
    with anyio.fail_after(30):
        for url in (server.url, server.url + f"?token={TOKEN}", server.base + "/"):
            response = await post(url, headers)
            assert response.status_code == 401
            assert response.content == UNAUTHORIZED
            assert response.headers["www-authenticate"] == 'Bearer realm="mcp-cloudops"'
            assert response.headers["content-type"] == "application/json"
            assert_no_secret(response.text + str(response.headers))
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(server.url, headers={k: v for k, v in headers.items() if k != "Content-Type"})
            assert response.status_code == 401
    assert server.proc.poll() is None


@pytest.mark.parametrize("mode", MODES)
async def test_the_right_token_lets_the_sdk_client_in(servers: Servers, mode: str) -> None:
    server = servers.token
    with anyio.fail_after(60):
        async with authorized_client(server.url, mode) as client:
            await exercise(client)
        refused = await post(server.url, MCP_HEADERS | {"Authorization": f"Bearer {TOKEN}", "Host": "evil.example"})
        assert refused.status_code == 421  # the token does not switch DNS-rebinding protection off


async def test_the_token_is_never_logged(servers: Servers) -> None:
    server = servers.token
    with anyio.fail_after(60):
        await post(server.url, MCP_HEADERS | {"Authorization": "Bearer wrong"})
        async with authorized_client(server.url, "legacy") as client:
            await exercise(client)
            await client.call_tool("get-instance-image", {"image_id": "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"})
        await anyio.sleep(0.3)  # let the last lines reach the reader
    logs = server.logs
    assert "list-compute-instances -> exoscale 200" in logs  # the log is there, and verbose
    assert_no_secret(logs)
    assert "Authorization" not in logs and "Bearer" not in logs


# --- binding beyond loopback -----------------------------------------------------------------------------


def test_binding_beyond_loopback_without_a_token_is_refused() -> None:
    """Never actually bound: the CLI must refuse before it listens (no test binds anything but 127.0.0.1)."""
    hosts = ["0.0.0.0", "::", "192.0.2.10", "example.com"]  # more spellings: tests/test_web.py::test_is_loopback
    port = free_port()
    procs = {}
    for host in hosts:
        flags = ["--sandbox"] if host == "0.0.0.0" else []
        procs[host] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mcp_cloudops",
                "serve",
                "--transport",
                "http",
                "--host",
                host,
                "--port",
                str(port),
                *flags,
            ],
            env=debug_server_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    try:
        for host, proc in procs.items():
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 2, (host, err)
            assert out == b""
            assert err.decode() == (
                f"refusing to bind {host} without a token: set MCP_CLOUDOPS_HTTP_TOKEN (or --http-token), "
                "or bind a loopback address\n"
            )
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --- stateless and read-only -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_stateless_mode_works_with_the_sdk_client(servers: Servers, mode: str) -> None:
    server = servers.stateless
    with anyio.fail_after(60):
        for _ in range(2):  # one client after another: nothing carried between them
            async with Client(server.url, mode=mode) as client:
                await exercise(client)
        response = await post(server.url, MCP_HEADERS)
        assert response.status_code == 200
        assert "mcp-session-id" not in response.headers  # no session state
    assert server.proc.poll() is None


@pytest.mark.parametrize("mode", MODES)
async def test_read_only_mode_offers_only_read_only_tools(servers: Servers, mode: str) -> None:
    server = servers.read_only
    mutating = [t.name for t in REGISTRY.tools if not t.hints.readOnly]
    assert "delete-compute-instance" in mutating and "execute-websocket" in mutating
    with anyio.fail_after(60):
        async with Client(server.url, mode=mode) as client:
            await exercise(client, read_only=True)
            for tool in (await client.list_tools()).tools:
                assert tool.annotations is not None and tool.annotations.read_only_hint is True
            for name in ("delete-compute-instance", "update-image-2", "execute-websocket", "cancel-operation"):
                result = await client.call_tool(name, {"id": "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"})
                assert result.is_error
                assert result.content[0].text.startswith(f"{name} is not offered: this server runs read-only")
            listed = await client.call_tool("list-instance-images", {"per_page": 1})
            assert not listed.is_error
