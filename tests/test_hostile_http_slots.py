"""The HTTP endpoints against clients that hold connections with a request they never finish (red-team
finding 4), and the metrics listener against DNS rebinding (finding 11c).

Finding 4: with --http-max-connections 5, five clients without a token sent `POST /mcp` announcing a 1 MB
body, got their 401 and kept the connection by trickling a byte of body every 0.5 s; a client with a valid
token then got 503, with a static token and under OAuth alike. Finding 11c: the metrics listener answered
whatever the Host header named, so a page rebound to 127.0.0.1 could read it.

Every server is a subprocess on 127.0.0.1 (the metrics listener runs in this process, on 127.0.0.x),
stopped by its fixture or block; every socket is closed in a finally; every wait has a deadline."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from support import INITIALIZE, MCP_HEADERS, HttpServer
from test_oauth import PUBLIC, Issuer, running_issuer

from mcp_cloudops import metrics
from mcp_cloudops.metrics import Metrics, exporting, metrics_socket
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

TOKEN = "slots-" + secrets.token_hex(16)
CAP = 5  # --http-max-connections of the servers under attack
HOSTILE = 5  # as many connections as the cap: they used to hold every one
TRICKLE = 0.5  # seconds between two bytes of a hostile body
BODY_TIMEOUT = 2  # --http-body-timeout of the server that checks it
SOON = 10  # seconds: a generous deadline for what should take a moment on a noisy CI machine


def hostile_head(server: HttpServer, *headers: str) -> bytes:
    """A whole request head announcing a 1 MB body, and the body's first byte."""
    lines = ["POST /mcp HTTP/1.1", f"Host: {server.host}:{server.port}", "Content-Type: application/json",
             "Accept: application/json, text/event-stream", "Content-Length: 1000000", *headers]  # fmt: skip
    return "\r\n".join(lines).encode() + b"\r\n\r\n{"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- hostile connections ------------------------------------------------------------------------------------


@dataclass
class Trickler:
    """A connection that sends a request head, then its body one byte every TRICKLE seconds, and reads."""

    stream: SocketStream
    received: bytes = b""
    answered: anyio.Event = field(default_factory=anyio.Event)  # a whole response head arrived
    answered_at: float = 0.0
    ended: anyio.Event = field(default_factory=anyio.Event)  # the server ended its side: EOF or reset
    cut: anyio.Event = field(default_factory=anyio.Event)  # the server let go: a byte could not be sent

    async def read(self) -> None:
        try:
            while True:
                self.received += await self.stream.receive()
                if b"\r\n\r\n" in self.received and not self.answered.is_set():
                    self.answered_at = time.monotonic()
                    self.answered.set()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            self.ended.set()

    async def trickle(self) -> None:
        try:
            while True:
                await anyio.sleep(TRICKLE)
                await self.stream.send(b" ")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.cut.set()

    @property
    def head(self) -> bytes:
        return self.received.partition(b"\r\n\r\n")[0].lower()


@asynccontextmanager
async def tricklers(server: HttpServer, count: int, *headers: str) -> AsyncIterator[list[Trickler]]:
    """`count` connections trickling a hostile request (with `headers`), each read and fed by tasks of its own."""
    opened: list[Trickler] = []
    try:
        async with anyio.create_task_group() as group:
            for _ in range(count):
                stream = await anyio.connect_tcp(server.host, server.port)
                opened.append(Trickler(stream))
                await stream.send(hostile_head(server, *headers))
                group.start_soon(opened[-1].read)
                group.start_soon(opened[-1].trickle)
            yield opened
            group.cancel_scope.cancel()
    finally:
        for connection in opened:
            with anyio.CancelScope(shield=True):
                await connection.stream.aclose()


async def all_set(events: list[anyio.Event], within: float) -> bool:
    """Whether every event is set within `within` seconds."""
    with anyio.move_on_after(within):
        for event in events:
            await event.wait()
        return True
    return False


async def initialize(server: HttpServer, token: str) -> str:
    """How the server answers an initialize with `token`: its status and text, or why no answer came."""
    try:
        async with httpx.AsyncClient(timeout=SOON) as http:
            response = await http.post(server.url, headers=MCP_HEADERS | bearer(token), json=INITIALIZE)
    except httpx.TransportError as exc:
        return f"no answer: {type(exc).__name__} {exc}"
    return f"{response.status_code} {response.text[:300]}"


async def unauthenticated_tricklers_do_not_starve(server: HttpServer, token: str) -> None:
    """Five connections without a token trickle their body after the 401; a client with `token` is served, and
    each of the five is closed soon after its 401."""
    with anyio.fail_after(60):
        async with tricklers(server, HOSTILE) as hostile:
            assert await all_set([h.answered for h in hostile], SOON), "a hostile connection got no answer"
            assert all(h.head.startswith(b"http/1.1 401 ") for h in hostile), [h.head for h in hostile]
            answer = await initialize(server, token)
            assert answer.startswith("200 "), (
                f"with {HOSTILE} connections trickling a body after their 401, a client with a valid token got {answer}"
            )
            assert await all_set([h.ended for h in hostile], SOON), "a hostile connection is still open after its 401"
            assert all(b"\r\nconnection: close" in h.head for h in hostile), [h.head for h in hostile]
            assert await all_set([h.cut for h in hostile], SOON), "the server still reads a hostile connection"
    assert server.proc.poll() is None
    assert "Traceback" not in server.logs, server.logs


# --- finding 4 with a static token ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server() -> Iterator[HttpServer]:
    with HttpServer.running(MCP_CLOUDOPS_HTTP_TOKEN=TOKEN, MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS=str(CAP)) as server:
        yield server


async def test_tricklers_without_a_token_do_not_starve_a_client_with_one(token_server: HttpServer) -> None:
    await unauthenticated_tricklers_do_not_starve(token_server, TOKEN)


async def test_at_the_cap_an_answered_connection_goes_before_a_waiting_one(token_server: HttpServer) -> None:
    """A connection already refused (401, the rest of its body unread) is the first closed to make room: not a
    client that connected earlier and has not sent its request yet (it may be a real one, about to)."""
    silent: list[SocketStream] = []
    try:
        with anyio.fail_after(60):
            for _ in range(CAP - 1):
                silent.append(await anyio.connect_tcp(token_server.host, token_server.port))
            async with tricklers(token_server, 1) as [hostile]:
                assert await all_set([hostile.answered], SOON) and hostile.head.startswith(b"http/1.1 401 ")
                answer = await initialize(token_server, TOKEN)
                assert answer.startswith("200 "), answer
                closed = [number for number, stream in enumerate(silent) if not await still_open(stream)]
                assert not closed, f"waiting connections {closed} were closed before a refused one"
                assert await all_set([hostile.ended, hostile.cut], SOON)
    finally:
        for stream in silent:
            await stream.aclose()


async def still_open(stream: SocketStream, within: float = 0.2) -> bool:
    """Whether the server neither closed `stream` nor sent anything on it for `within` seconds."""
    with anyio.move_on_after(within):
        with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await stream.receive()
        return False
    return True


async def read_response(stream: SocketStream) -> tuple[bytes, bytes]:
    """One whole response with a Content-Length: its head (lower case) and its body."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += await stream.receive()
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += await stream.receive()
    return head.lower(), body


async def test_a_refused_request_that_arrived_whole_keeps_its_connection(token_server: HttpServer) -> None:
    """Closing is for answers sent before the body arrived: a client that sent its whole request without a token
    (an MCP client's first request, before it signs in) gets its 401 on a connection it can use again."""
    body = json.dumps(INITIALIZE).encode()
    request = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    with anyio.fail_after(SOON):
        async with await anyio.connect_tcp(token_server.host, token_server.port) as stream:
            for _ in range(2):
                await stream.send(request % (len(body), body))
                head, _ = await read_response(stream)
                assert head.startswith(b"http/1.1 401 ") and b"connection: close" not in head, head


# --- finding 4 under OAuth ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth_issuer() -> Iterator[Issuer]:
    with running_issuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def oauth_server(oauth_issuer: Issuer) -> Iterator[HttpServer]:
    env = {"MCP_CLOUDOPS_OAUTH_ISSUER": oauth_issuer.url, "MCP_CLOUDOPS_PUBLIC_URL": PUBLIC}
    with HttpServer.running(**env, MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS=str(CAP)) as server:
        yield server


async def test_under_oauth_tricklers_without_a_token_do_not_starve_a_signed_in_client(
    oauth_server: HttpServer, oauth_issuer: Issuer
) -> None:
    await unauthenticated_tricklers_do_not_starve(oauth_server, oauth_issuer.token())


# --- the body deadline ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def body_timeout_server() -> Iterator[HttpServer]:
    with HttpServer.running(MCP_CLOUDOPS_HTTP_TOKEN=TOKEN, MCP_CLOUDOPS_HTTP_BODY_TIMEOUT=str(BODY_TIMEOUT)) as server:
        yield server


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_its_connection_closes(
    body_timeout_server: HttpServer,
) -> None:
    """Even with a valid token: a whole head, then a body too slow to arrive within --http-body-timeout."""
    with anyio.fail_after(60):
        async with tricklers(body_timeout_server, 1, f"Authorization: Bearer {TOKEN}") as [slow]:
            started = time.monotonic()
            assert await all_set([slow.answered, slow.ended], BODY_TIMEOUT + SOON), "no answer to a body too slow"
            assert slow.head.startswith(b"http/1.1 408 ") and b"connection: close" in slow.head, slow.head
            assert slow.answered_at - started > BODY_TIMEOUT - 0.5  # the body's deadline, not sooner
            assert f"did not arrive within {BODY_TIMEOUT} s".encode() in slow.received
            assert await all_set([slow.cut], SOON)
        assert (await initialize(body_timeout_server, TOKEN)).startswith("200 ")  # the server serves on
    # The SDK logs the disconnect it hears while reading the body (ClientDisconnect), as for any client that
    # drops mid-body; nothing crashed in the app or here.
    assert "Exception in ASGI application" not in body_timeout_server.logs, body_timeout_server.logs


# --- finding 11c: the metrics listener checks the Host --------------------------------------------------------


@asynccontextmanager
async def metrics_on(host: str) -> AsyncIterator[str]:
    """Metrics of a server served on `host` (a loopback address), in this process: their URL."""
    settings = Settings.from_env({"MCP_CLOUDOPS_METRICS_PORT": "0", "MCP_CLOUDOPS_METRICS_HOST": host})
    sock = metrics_socket(settings)
    assert sock is not None
    url = f"http://{host}:{sock.getsockname()[1]}/metrics"
    async with exporting(build_server(Settings.from_env({})), sock, settings):
        yield url


@pytest.mark.parametrize("bound", ["127.0.0.1", "127.0.0.3"])
async def test_the_metrics_listener_answers_only_its_own_host_names(bound: str) -> None:
    with anyio.fail_after(SOON * 3):
        async with metrics_on(bound) as url, httpx.AsyncClient(timeout=SOON) as http:
            port = url.split(":")[2].split("/")[0]
            for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LocalHost:{port}", "[::1]", bound):
                response = await http.get(url, headers={"Host": host})
                assert response.status_code == 200 and "mcp_cloudops_" in response.text, host
            rebound = ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example")
            for host in (*rebound, "127.0.0.2" if bound == "127.0.0.1" else "127.0.0.4"):
                response = await http.get(url, headers={"Host": host})
                assert response.status_code == 421, (host, response.status_code)
                assert "mcp_cloudops_" not in response.text and "127.0.0.1" in response.json()["message"]
            refused = await http.get(url.replace("/metrics", "/other"), headers={"Host": "evil.example"})
            assert refused.status_code == 421  # not even whether a path exists


async def test_beyond_loopback_the_metrics_listener_answers_any_host() -> None:
    """Prometheus names a target by IP address or by a name only it knows (a container's service name); the
    operator who moved the listener off loopback was warned it asks for no token."""
    for bound in ("0.0.0.0", "::", "10.0.0.5"):
        assert metrics.scrape_hosts(bound) is None, bound
        assert "any Host" in (metrics.exposed_warning(bound) or ""), bound
    assert metrics.scrape_hosts("127.0.0.1") is not None and metrics.scrape_hosts("::1") is not None
    app = Metrics([]).asgi_app(metrics.scrape_hosts("0.0.0.0"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:9100") as http:
        for host in ("10.0.0.5:9100", "mcp-cloudops:9100", "prometheus-target.internal"):
            assert (await http.get("/metrics", headers={"Host": host})).status_code == 200, host
