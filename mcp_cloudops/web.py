"""The streamable HTTP endpoint: DNS-rebinding protection, bearer tokens or OAuth, sessions bound to their
principal, and connection limits uvicorn lacks.

A session belongs to the principal that opened it: the SDK's session manager records the authenticated
user in scope["user"] when a session opens and answers 404 ("Session not found", as for an unknown id) to
any other principal presenting that id, for POST, GET and DELETE alike. BearerToken puts each static
token's principal there (a SHA-256 of the token, never the token); in OAuth mode (oauth.py) the SDK's
BearerAuthBackend puts the access token's (client, issuer, subject) there, so a session follows its user
across token refreshes and answers no one else. On loopback without a token every caller is the same
anonymous principal, so binding adds nothing there: whoever can reach the port can use any session whose
id they learn, as they could open their own.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import socket
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_cloudops.settings import ConfigError, Settings

if TYPE_CHECKING:
    import asyncio

    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.mcpserver import MCPServer
    from pydantic import SecretStr

    from mcp_cloudops.oauth import ResourceServer

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # Host names every server answers to
STATIC_TOKEN_CLIENT = "mcp-cloudops-http-token"  # the client_id of every static-token principal
FD_RESERVE = 64  # descriptors kept for upstream connections, the sandbox and logs beside HTTP clients


def host_header_name(host: str) -> str:
    """`host` as a Host header spells it: IPv6 addresses in brackets."""
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def allowed_hosts(host: str) -> list[str]:
    """Host names a server bound to `host` answers to: the loopback names and its own address, so that a
    loopback alias (127.0.0.2) or a named bind works while DNS-rebinding protection stays on."""
    own = host_header_name(host)
    return [*LOOPBACK_HOSTS, *([] if own in LOOPBACK_HOSTS else [own])]


def token_digests(tokens: SecretStr) -> list[bytes]:
    """SHA-256 of each comma-separated token (one per person or agent): what requests are compared with."""
    return [hashlib.sha256(t.strip().encode()).digest() for t in tokens.get_secret_value().split(",") if t.strip()]


def static_token_user(digest: bytes) -> AuthenticatedUser:
    """The user the SDK expects in scope["user"]: it binds sessions to its (client_id, issuer, subject)."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    subject = "sha256:" + digest.hex()
    return AuthenticatedUser(AccessToken(token=subject, client_id=STATIC_TOKEN_CLIENT, scopes=[], subject=subject))


class BearerToken:
    """Refuses (401) any HTTP request without `Authorization: Bearer <token>` for one of the configured tokens
    (compared as hashes, in constant time); the others go on as that token's principal."""

    def __init__(self, app: ASGIApp, tokens: SecretStr) -> None:
        from mcp.server.auth.middleware.auth_context import AuthContextMiddleware

        self.app = AuthContextMiddleware(app)  # get_access_token() too: the SDK binds request state to it
        self._digests = token_digests(tokens)

    def principal(self, given: bytes) -> AuthenticatedUser | None:
        """The user a presented token stands for, or None; every configured token is compared."""
        digest = hashlib.sha256(given).digest()
        matches = [hmac.compare_digest(digest, expected) for expected in self._digests]
        return static_token_user(digest) if any(matches) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.authentication import AuthCredentials

        scheme, _, given = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        user = self.principal(given) if scheme.lower() == b"bearer" else None
        if user is not None:
            await self.app({**scope, "user": user, "auth": AuthCredentials()}, receive, send)
            return
        body = b'{"error":"unauthorized","message":"send Authorization: Bearer <the server\'s --http-token>"}'
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="mcp-cloudops"'),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def public_names(url: str) -> tuple[list[str], list[str]]:
    """The Host headers and Origins of a public URL (e.g. https://mcp.example.com/mcp behind a reverse proxy
    that keeps the Host): with and without a port, since a client omits the scheme's default one."""
    parts = urlsplit(url)
    name = host_header_name(parts.hostname or "")
    netloc = name if parts.port is None else f"{name}:{parts.port}"
    return [netloc, f"{name}:*"], [f"{parts.scheme}://{netloc}", f"{parts.scheme}://{name}:*"]


def http_app(
    server: MCPServer, host: str, token: SecretStr | None, stateless: bool, oauth: ResourceServer | None = None
) -> ASGIApp:
    """The ASGI app serving /mcp, behind static tokens, OAuth (`oauth`), or on loopback neither. Binding
    beyond loopback needs one of them (checked by the caller)."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = allowed_hosts(host)
    names, origins = [f"{name}:*" for name in hosts], [f"http://{name}:*" for name in hosts]
    if oauth is not None:  # clients reach the server by its public URL, and tokens name it: its host is ours
        public_hosts, public_origins = public_names(oauth.resource)
        names, origins = names + public_hosts, origins + public_origins
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=names, allowed_origins=origins
    )
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path="/mcp", transport_security=security, host=host, stateless_http=stateless
    )
    if oauth is not None:
        from mcp_cloudops.oauth import OAuthGuard

        return OAuthGuard(app, oauth)
    return BearerToken(app, token) if token is not None else app


# --- the listening socket ---------------------------------------------------------------------------------


def listening_socket(
    host: str, port: int, backlog: int, flags: tuple[str, str] = ("--host", "--port")
) -> socket.socket:
    """A socket bound and listening on `host`:`port`, made before anything says the server serves: a port
    in use is one line at start (ConfigError), never a "serving on" line followed by a failure. `flags`
    are the options that chose the host and the port, which the line names."""
    bare = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind((bare, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(bind_error(host, port, exc, flags)) from None
    except OverflowError:  # a port outside 0-65535, from a caller that did not check it
        sock.close()
        raise ConfigError(f"{flags[1]} {port} is not a port: use one from 1 to 65535") from None
    return sock


def bind_error(host: str, port: int, exc: OSError, flags: tuple[str, str] = ("--host", "--port")) -> str:
    """Why the server cannot listen on `host`:`port`, and what to do instead, on one line naming `flags`."""
    where, (host_flag, port_flag) = f"{host_header_name(host)}:{port}", flags
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on {where}: {host_flag} {host} is not a known address ({exc.strerror}): use an IP address"
        )
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is in use (another server?): choose another {port_flag}, or stop it"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied: choose a {port_flag} above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine: choose another {host_flag}"
    return f"cannot listen on {where}: {exc.strerror or exc}: check {host_flag} and {port_flag}"


# --- connection limits ------------------------------------------------------------------------------------


def refusal(status: int, message: str, *headers: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for when no request was parsed to answer."""
    phrase = HTTPStatus(status).phrase
    body = json.dumps({"error": phrase.lower().replace(" ", "_"), "message": message}).encode()
    head = [f"HTTP/1.1 {status} {phrase}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close", *headers]  # fmt: skip
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


def descriptor_warning(max_connections: int, open_files: int) -> str | None:
    """Why the connection cap cannot keep descriptors under `ulimit -n` (`open_files`), if it cannot: the
    cap's connections, one accept burst (the listen backlog, as large) and a reserve must fit."""
    if open_files < 0 or 2 * max_connections + FD_RESERVE <= open_files:  # negative: RLIM_INFINITY
        return None
    return (
        f"MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS={max_connections} needs about {2 * max_connections + FD_RESERVE} file "
        f"descriptors and this process may open {open_files}: raise `ulimit -n` or lower the limit"
    )


class OneWritePerTurn:
    """A transport whose writes made in one event-loop turn leave as one write. uvicorn writes a response's
    head and its body separately: a replica killed between the two has sent a head, and a load balancer
    that already passed it on cannot retry the request elsewhere. Joined, the answer is sent whole or not
    at all. Everything else is the wrapped transport's.

    It also closes gently when told to (`linger`): a connection answered before its request was all in (a 401
    to a request whose body still comes) would, closed at once with input unread, be reset by the kernel,
    and the client could lose the answer. So the answer goes out whole, then a FIN, and what the client still
    sends is read and dropped for `linger` seconds, or until it closes too (Apache's lingering close)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self.linger = 0.0  # seconds close() goes on reading (and dropping) input; 0: close at once
        self.lingering = False  # closed with `linger`: answered, the FIN sent, the socket not yet closed
        self._linger_timer: asyncio.TimerHandle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        data, self._pending = b"".join(self._pending), []
        if data and not self.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Close, what was written before still going out first; with `linger`, gently (see the class). Closing
        again, or a socket that cannot half-close (TLS), closes at once."""
        self._flush()
        if self.lingering or not self.linger or self.closed or not self._transport.can_write_eof():
            self.release()
            return
        self.lingering = True
        self._transport.write_eof()
        self._transport.resume_reading()  # what the client sends must be read, or closing resets it anyway
        self._linger_timer = self._loop.call_later(self.linger, self.release)

    def release(self) -> None:
        """Close the socket now, lingering or not."""
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self._transport.close()

    def is_closing(self) -> bool:
        """Closing as uvicorn means it: nothing more is written, no keep-alive timer is armed."""
        return self.lingering or self._transport.is_closing()

    @property
    def closed(self) -> bool:
        """The socket itself is closing or closed: the connection no longer holds a descriptor."""
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def holds_a_slot(connection: Any) -> bool:
    """Whether an open HTTP connection (uvicorn's protocol) counts against the cap: it holds a descriptor,
    lingering ones included."""
    transport = connection.transport
    return not (transport.closed if isinstance(transport, OneWritePerTurn) else transport.is_closing())


LINGER = 2.0  # seconds a connection answered before its request was all in reads on before it closes
CLOSE = (b"connection", b"close")  # uvicorn's own spelling: it adds none beside it


def limited_h11(
    header_timeout: float, max_connections: int, body_timeout: float = Settings.http_body_timeout
) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol (pass it as `http=`) with deadlines for a request's head and body, and a cap on
    open connections.

    uvicorn 0.54 has neither: it arms its keep-alive timer only once a response is sent, so a connection
    that sends part of a request head, or nothing, stays open forever; and `limit_concurrency` answers 503
    only once a head arrived, which such a connection never sends. Enough of them exhausted the descriptors
    and a legitimate client could not even connect. Here a head must arrive within `header_timeout` seconds
    of connecting (or of its first byte, on a kept-alive connection), else 408 and close.

    Nor does uvicorn bound a body: a client could send a whole head announcing 1 MB, get its 401 at once (no
    token) and keep the connection by trickling the body, a byte at a time; five such held five slots, and
    a client with a valid token got 503 (red-team finding 4). Here an answer sent before the request's body
    is all in says `Connection: close` and the connection closes after it (lingering: see OneWritePerTurn);
    and a body must arrive within `body_timeout` seconds of its head, else 408 and close.

    Beyond `max_connections`, a new connection makes room: first by closing one already answered and
    lingering (it holds a slot only to close cleanly), else the one that has waited longest without sending
    a whole head (idle keep-alive ones included): a legitimate client, whose head arrives at once, still gets
    in while refused and slow ones are dropped. Only when every connection is busy with a request is the new
    one refused (503).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    late = refusal(408, f"the request head did not arrive within {header_timeout:g} s: send it at once, then retry")
    slow = refusal(
        408, f"the request body did not arrive within {body_timeout:g} s of its head: send it whole, at once"
    )
    busy = refusal(503, f"the server is at its {max_connections} connections: retry shortly", "retry-after: 1")

    class LimitedH11(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None
        body_timer: asyncio.TimerHandle | None = None
        waiting_since = 0.0  # loop time since when this connection has had no request in progress
        transport: OneWritePerTurn  # type: ignore[assignment]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.app = self.closing_early(self.app)

        def waiting(self) -> bool:
            """No request in progress: a head not (wholly) received yet, on a fresh or kept-alive connection."""
            return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

        def answered(self) -> bool:
            """Answered, and closing gently: it holds a slot only until the client has read its answer."""
            return self.transport.lingering and not self.transport.closed

        def receiving_body(self) -> bool:
            return self.conn.their_state is h11.SEND_BODY

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(OneWritePerTurn(transport, self.loop))  # type: ignore[arg-type]
            self.waiting_since = self.loop.time()
            self.head_timer = self.loop.call_later(header_timeout, self.head_timed_out)
            if sum(holds_a_slot(c) for c in self.connections) > max_connections:
                self.make_room()

        def data_received(self, data: bytes) -> None:
            if self.transport.lingering:
                return  # the rest of a request already answered: read only so that closing resets nothing
            if self.head_timer is None and self.waiting():  # the next request on a kept-alive connection
                self.head_timer = self.loop.call_later(header_timeout, self.head_timed_out)
            super().data_received(data)
            if self.head_timer is not None and not self.waiting():
                self.head_timer.cancel()
                self.head_timer = None
            self.watch_body()

        def watch_body(self) -> None:
            """Start the body's deadline once a head announcing a body is in; stop it once the body is."""
            if self.receiving_body() and self.body_timer is None:
                self.body_timer = self.loop.call_later(body_timeout, self.body_timed_out)
            elif not self.receiving_body() and self.body_timer is not None:
                self.body_timer.cancel()
                self.body_timer = None

        def closing_early(self, app: ASGIApp) -> ASGIApp:
            """`app`, whose answer to a request whose body is not all in says `Connection: close`, and closes
            gently: nobody will read the rest of that body, and its client must not hold the connection."""

            async def closing(scope: Scope, receive: Receive, send: Send) -> None:
                async def sending(message: Message) -> None:
                    if message["type"] == "http.response.start" and self.receiving_body():
                        message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
                        self.transport.linger = LINGER
                    await send(message)

                await app(scope, receive, sending)

            return closing

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.waiting_since = self.loop.time()
            self.watch_body()  # a pipelined request may have started

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self.head_timer, self.body_timer):
                if timer is not None:
                    timer.cancel()
            self.head_timer = self.body_timer = None
            super().connection_lost(exc)

        def head_timed_out(self) -> None:
            self.head_timer = None
            if self.waiting():
                self.drop(late)

        def body_timed_out(self) -> None:
            """408 and close, gently; the app still reading the body hears that the client is gone."""
            self.body_timer = None
            if not self.receiving_body() or self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None:
                cycle.disconnected = True  # it answers no one: the 408 is the answer
                cycle.message_event.set()
            if cycle is None or not cycle.response_started:
                self.transport.write(slow)
            self.transport.linger = LINGER
            self.transport.close()

        def make_room(self) -> None:
            """Close another connection for this new one: one answered and lingering, else the one that has
            waited longest for a head; if every other one is busy with a request, refuse this one."""
            others = [c for c in self.connections if c is not self and isinstance(c, LimitedH11)]
            if answered := [c for c in others if c.answered()]:
                min(answered, key=lambda c: c.waiting_since).transport.release()
            elif waiting := [c for c in others if c.waiting()]:
                min(waiting, key=lambda c: c.waiting_since).drop(busy)
            else:
                self.drop(busy, always=True)

        def drop(self, reply: bytes, always: bool = False) -> None:
            """Close; with `reply` first if the client sent part of a request (or `always`): it is owed an answer."""
            if always or self.conn.trailing_data[0]:
                self.transport.write(reply)
            self.transport.close()

    return LimitedH11
