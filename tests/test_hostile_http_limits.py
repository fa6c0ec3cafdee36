"""The streamable HTTP endpoint against hostile connections and callers (red-team findings 6, 10, 11):
slow-header connections that used to exhaust the server's file descriptors, a loopback alias
(127.0.0.2) refused by its own Host check, and a session anyone holding its id could use.

Every server is a subprocess on a 127.0.0.0/8 address, stopped by its fixture; every socket is closed
in a finally; every wait has a deadline."""

from __future__ import annotations

import asyncio
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from support import INITIALIZE, MCP_HEADERS, HttpServer, debug_server_env, free_port
from uvicorn.server import ServerState

from mcp_cloudops.cli import flags_as_env, parser
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.web import descriptor_warning, limited_h11

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# --- finding 6: slow headers, idle connections, a connection limit --------------------------------------

HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS = 1, 2, 20
OPEN_FILES = 96  # the limited server's descriptor budget: more slow sockets than this used to starve it
SLOW_SOCKETS = 150
SLOW_HEAD = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # a request head that never ends


@pytest.fixture(scope="module")
def limited() -> Iterator[HttpServer]:
    with HttpServer.running(
        max_open_files=OPEN_FILES,
        MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT=str(IDLE_TIMEOUT),
        MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    ) as server:
        yield server


def connect(server: HttpServer, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


def read_until_closed(sock: socket.socket, deadline: float) -> bytes | None:
    """Everything the server sent before it closed the connection; None if still open at `deadline`."""
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def test_slow_header_connections_cannot_starve_a_legitimate_client(limited: HttpServer) -> None:
    sockets: list[socket.socket] = []
    try:
        sockets.extend(connect(limited, SLOW_HEAD) for _ in range(SLOW_SOCKETS))
        started = time.monotonic()
        try:
            response = httpx.post(limited.url, headers=MCP_HEADERS, json=INITIALIZE, timeout=5)
        except httpx.TimeoutException:
            pytest.fail(f"a legitimate initialize got no answer in 5 s while {SLOW_SOCKETS} connections stalled")
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + HEADER_TIMEOUT + 4
        still_open = sum(read_until_closed(sock, deadline) is None for sock in sockets)
        assert still_open == 0, f"{still_open} of {SLOW_SOCKETS} slow-header connections are still open"
    finally:
        for sock in sockets:
            sock.close()
    assert limited.proc.poll() is None
    assert "Too many open files" not in limited.logs and "Traceback" not in limited.logs, limited.logs


def test_a_partial_request_head_gets_408_after_the_header_timeout(limited: HttpServer) -> None:
    sock = connect(limited, SLOW_HEAD)
    try:
        started = time.monotonic()
        received = read_until_closed(sock, started + HEADER_TIMEOUT + 3)
        assert received is not None, "the server never closed a connection stalled in its request head"
        assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert time.monotonic() - started > HEADER_TIMEOUT - 0.5
    finally:
        sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(limited: HttpServer) -> None:
    sock = connect(limited)
    try:
        assert read_until_closed(sock, time.monotonic() + HEADER_TIMEOUT + 3) == b""
    finally:
        sock.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(limited: HttpServer) -> None:
    sock = connect(limited, b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        started = time.monotonic()
        received = read_until_closed(sock, started + IDLE_TIMEOUT + 2)  # uvicorn's own default is 5 s
        assert received is not None and received.startswith(b"HTTP/1.1 404 ")
        assert time.monotonic() - started > IDLE_TIMEOUT - 0.5  # the idle timeout, not the header one
    finally:
        sock.close()


class Held:
    """An ASGI app answering 200 at once, except /hold, which answers only once released: a busy connection."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/hold":
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@dataclass
class InProcess:
    """limited_h11 serving an app on 127.0.0.1 in the test's own event loop."""

    port: int = 0
    accepted: int = 0  # connections the listener handed to a protocol
    connections: set[Any] = field(default_factory=set)  # uvicorn's: those open (or closing) now

    async def connect(self, first: bytes = b"") -> Stream:
        """A client connection, returned once the server has taken it (so that their order is certain)."""
        before = self.accepted
        stream = await asyncio.open_connection("127.0.0.1", self.port)
        stream[1].write(first)
        while self.accepted == before:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # its head (if any) parsed, and any connection it displaced closed
        return stream


@asynccontextmanager
async def in_process(app: Held, header_timeout: float, cap: int) -> AsyncIterator[InProcess]:
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    state = ServerState()
    local = InProcess(connections=state.connections)
    protocol = limited_h11(header_timeout, cap)

    def accept() -> asyncio.Protocol:
        local.accepted += 1
        return protocol(config=config, server_state=state, app_state={})

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1")
    local.port = server.sockets[0].getsockname()[1]
    try:
        yield local
    finally:
        app.release.set()
        server.close()
        await server.wait_closed()


async def answer(stream: Stream) -> bytes | None:
    """What the server sent before closing; None if it did not close within a second."""
    try:
        return await asyncio.wait_for(stream[0].read(), 1)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""


@pytest.mark.anyio
async def test_at_the_cap_the_longest_waiting_connection_makes_room_and_busy_ones_never_do() -> None:
    app = Held()
    streams: list[Stream] = []
    with anyio.fail_after(30):
        async with in_process(app, header_timeout=60, cap=3) as server:
            try:
                silent = await server.connect()
                partial = await server.connect(SLOW_HEAD)
                streams += [silent, partial]
                for _ in range(3):
                    streams.append(await server.connect(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"))
                assert await answer(silent) == b""  # displaced first: it waited longest, and said nothing
                assert (await answer(partial) or b"").startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
                refused = await server.connect(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                streams.append(refused)
                reply = await answer(refused)  # all three are busy: the newcomer is refused, not them
                assert reply is not None and reply.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in reply
                assert len(server.connections) == 3
                app.release.set()
                for reader, _ in streams[2:5]:
                    head = await asyncio.wait_for(reader.readuntil(b"ok"), 5)
                    assert head.startswith(b"HTTP/1.1 200 ")
            finally:
                for _, writer in streams:
                    writer.close()


@pytest.mark.anyio
async def test_the_head_deadline_restarts_with_each_request_on_a_kept_alive_connection() -> None:
    """uvicorn cancels its keep-alive timer at the first byte of the next request: a head that then stalls
    must still meet the head deadline."""
    with anyio.fail_after(30):
        async with in_process(Held(), header_timeout=0.5, cap=10) as server:
            reader, writer = await server.connect(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                assert (await asyncio.wait_for(reader.readuntil(b"ok"), 5)).startswith(b"HTTP/1.1 200 ")
                await asyncio.sleep(0.8)  # longer than the head deadline, idle: uvicorn's keep-alive (5 s) applies
                writer.write(SLOW_HEAD)
                reply = await asyncio.wait_for(reader.read(), 3)
                assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
            finally:
                writer.close()


def test_http_limit_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.http_header_timeout, settings.http_idle_timeout, settings.http_max_connections) == (10, 15, 256)


def test_http_limit_flags_become_their_environment_twins() -> None:
    flags = ["--http-header-timeout", "3", "--http-idle-timeout", "7.5", "--http-max-connections", "9"]
    env = flags_as_env(parser().parse_args(["serve", *flags]))
    assert env == {
        "MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT": "3",
        "MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT": "7.5",
        "MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS": "9",
    }
    settings = Settings.from_env(env)
    assert (settings.http_header_timeout, settings.http_idle_timeout, settings.http_max_connections) == (3, 7.5, 9)


BAD_LIMITS = [
    ("MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT", "ten"),
    ("MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT", "-1"),
    ("MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT", "0"),
    ("MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT", "nan"),
    ("MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT", "inf"),
    ("MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT", "5s"),
    ("MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS", "2.5"),
    ("MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS", "0"),
    ("MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS", "-3"),
    ("MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS", "lots"),
]


@pytest.mark.parametrize(("name", "value"), BAD_LIMITS)
def test_a_bad_http_limit_is_a_one_line_config_error(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert name in message and repr(value) in message and "\n" not in message


@pytest.mark.parametrize("given", ["flag", "environment"])
def test_the_cli_stops_with_one_line_for_a_bad_http_limit(given: str) -> None:
    """Refused before anything listens: `check` validates the same settings `serve` reads."""
    if given == "flag":
        command = ["serve", "--transport", "http", "--port", str(free_port()), "--http-max-connections", "lots"]
        env = debug_server_env()
    else:
        command = ["check"]
        env = debug_server_env(MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS="lots")
    done = subprocess.run(
        [sys.executable, "-m", "mcp_cloudops", *command],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS" in lines[0] and "'lots'" in lines[0], lines
    assert done.stdout == ""


def test_a_descriptor_limit_too_low_for_the_connection_cap_is_warned_about() -> None:
    assert descriptor_warning(256, 1024) is None and descriptor_warning(256, resource.RLIM_INFINITY) is None
    warning = descriptor_warning(256, 256)  # macOS's default `ulimit -n`
    assert warning and "MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS=256" in warning and "ulimit -n" in warning


# --- finding 10: a loopback alias -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alias() -> Iterator[HttpServer]:
    """A server bound to 127.0.0.2 (Linux routes all of 127.0.0.0/8 to lo)."""
    with HttpServer.running(host="127.0.0.2") as server:
        yield server


@pytest.mark.anyio
async def test_a_loopback_alias_serves_its_own_host_and_still_refuses_foreign_ones(alias: HttpServer) -> None:
    own = f"127.0.0.2:{alias.port}"
    with anyio.fail_after(30):
        async with httpx.AsyncClient(timeout=10) as http:
            for extra in ({"Host": own}, {"Host": own, "Origin": f"http://{own}"}):
                response = await http.post(alias.url, headers=MCP_HEADERS | extra, json=INITIALIZE)
                assert response.status_code == 200, (extra, response.text)
            refused = await http.post(alias.url, headers=MCP_HEADERS | {"Host": "evil.example"}, json=INITIALIZE)
            assert (refused.status_code, refused.text) == (421, "Invalid Host header")
            foreign = {"Origin": "http://evil.example"}
            refused = await http.post(alias.url, headers=MCP_HEADERS | foreign, json=INITIALIZE)
            assert (refused.status_code, refused.text) == (403, "Invalid Origin header")
        async with Client(alias.url) as client:
            listed = await client.call_tool("list-compute-instances", {})
            assert not listed.is_error, listed.content
    assert alias.proc.poll() is None


# --- finding 11: a session belongs to the principal that opened it -----------------------------------------

ALICE = "alice-" + secrets.token_hex(16)
BOB = "bob-" + secrets.token_hex(16)
PROTOCOL = {"Mcp-Protocol-Version": "2025-06-18"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


@pytest.fixture(scope="module")
def two_tokens() -> Iterator[HttpServer]:
    """One token per agent: each its own principal."""
    with HttpServer.running(MCP_CLOUDOPS_HTTP_TOKEN=f"{ALICE}, {BOB}") as server:
        yield server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_no_token(text: str) -> None:
    assert ALICE not in text and BOB not in text


@pytest.mark.anyio
async def test_a_session_answers_only_the_token_that_opened_it(two_tokens: HttpServer) -> None:
    url = two_tokens.url
    with anyio.fail_after(30):
        async with httpx.AsyncClient(timeout=10) as http:
            opened = await http.post(url, headers=MCP_HEADERS | bearer(ALICE), json=INITIALIZE)
            assert opened.status_code == 200, opened.text
            alice = MCP_HEADERS | PROTOCOL | bearer(ALICE) | {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(url, headers=alice, json=initialized)).status_code == 202
            bob = alice | bearer(BOB)
            confirmation = {"jsonrpc": "2.0", "id": 0, "result": {"action": "accept", "content": {}}}
            for method, body in (("POST", TOOLS_LIST), ("POST", confirmation), ("GET", None), ("DELETE", None)):
                hijack = await http.request(method, url, headers=bob, json=body)
                assert hijack.status_code == 404, (method, body, hijack.text)
                assert "Session not found" in hijack.text
                assert_no_token(hijack.text + str(hijack.headers))
            listed = await http.post(url, headers=alice, json=TOOLS_LIST)
            assert listed.status_code == 200 and "list-compute-instances" in listed.text  # still Alice's
            assert (await http.delete(url, headers=alice)).status_code == 200
            assert (await http.post(url, headers=alice, json=TOOLS_LIST)).status_code == 404
    await anyio.sleep(0.3)  # let the last log lines reach the reader
    assert_no_token(two_tokens.logs)


@asynccontextmanager
async def client_with(url: str, token: str, mode: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_each_token_keeps_using_its_own_session(two_tokens: HttpServer, mode: str) -> None:
    with anyio.fail_after(60):
        async with client_with(two_tokens.url, ALICE, mode) as alice, client_with(two_tokens.url, BOB, mode) as bob:
            for client in (alice, bob, alice):
                listed = await client.call_tool("list-compute-instances", {})
                assert not listed.is_error, listed.content
