"""web: the bearer-token middleware in front of the HTTP endpoint, and what counts as loopback."""

from __future__ import annotations

import errno
import hashlib
import os
import socket

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send
from support import INITIALIZE, MCP_HEADERS

from mcp_cloudops.registry import load_registry
from mcp_cloudops.server import build_server
from mcp_cloudops.setting_values import is_loopback
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.web import BearerToken, bind_error, http_app, listening_socket

pytestmark = pytest.mark.anyio
TOKEN = "web-test-token-0123456789abcdef"
UNAUTHORIZED = b'{"error":"unauthorized","message":"send Authorization: Bearer <the server\'s --http-token>"}'


class Echo:
    """A tiny ASGI app that counts the requests reaching it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append(scope["type"])
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def request(app: object, headers: dict[str, str] | None = None, path: str = "/mcp") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        return await client.post(path, headers=headers or {}, content=b"{}")


REFUSED = {
    "missing": None,
    "empty": "",
    "no-scheme": TOKEN,
    "wrong": "Bearer wrong-token",
    "prefix": f"Bearer {TOKEN[:-1]}",
    "suffix": f"Bearer {TOKEN}0",
    "double-space": f"Bearer  {TOKEN}",
    "trailing-space": f"Bearer {TOKEN} ",
    "basic": f"Basic {TOKEN}",
    "bearer-only": "Bearer ",
}


@pytest.mark.parametrize("authorization", list(REFUSED.values()), ids=list(REFUSED))
async def test_requests_without_the_right_token_get_401(authorization: str | None) -> None:
    app = Echo()
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await request(BearerToken(app, SecretStr(TOKEN)), headers)
    assert response.status_code == 401
    assert response.content == UNAUTHORIZED
    assert response.headers["www-authenticate"] == 'Bearer realm="mcp-cloudops"'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(UNAUTHORIZED))
    assert TOKEN not in response.text and TOKEN[:12] not in str(response.headers)
    assert app.calls == []  # the app never saw it


async def test_the_right_token_passes() -> None:
    app = Echo()
    guarded = BearerToken(app, SecretStr(TOKEN))
    for path in ("/mcp", "/", "/anything?x=1"):
        response = await request(guarded, {"Authorization": f"Bearer {TOKEN}"}, path)
        assert (response.status_code, response.text) == (200, "ok")
    assert app.calls == ["http"] * 3


async def test_a_token_in_the_query_string_does_not_count() -> None:
    app = Echo()
    response = await request(BearerToken(app, SecretStr(TOKEN)), path=f"/mcp?token={TOKEN}&access_token={TOKEN}")
    assert response.status_code == 401 and app.calls == []


async def test_non_http_scopes_pass_through_untouched() -> None:
    app = Echo()
    guarded = BearerToken(app, SecretStr(TOKEN))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        raise AssertionError(f"nothing may be sent for a lifespan scope: {message}")

    await guarded({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert app.calls == ["lifespan"]


def test_http_app_is_guarded_only_when_a_token_is_set() -> None:
    server = build_server(Settings.from_env({}), load_registry())
    assert isinstance(http_app(server, "127.0.0.1", SecretStr(TOKEN), stateless=False), BearerToken)
    assert not isinstance(http_app(server, "127.0.0.1", None, stateless=True), BearerToken)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("127.255.255.254", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("[::]", False),
        ("0", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("example.com", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("127.1", False),  # not a canonical address: refused rather than guessed
        ("LOCALHOST", False),
        ("", False),
        (" 127.0.0.1", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- a session's principal (finding 11) and loopback aliases (finding 10) ------------------------------------


class Recorder(Echo):
    """Echo, also recording who the request came from: scope["user"] and the SDK's get_access_token()."""

    def __init__(self) -> None:
        super().__init__()
        self.users: list[object] = []
        self.tokens: list[object] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from mcp.server.auth.middleware.auth_context import get_access_token

        self.users.append(scope.get("user"))
        self.tokens.append(get_access_token())
        await super().__call__(scope, receive, send)


async def test_a_static_token_is_a_principal_the_sdk_binds_sessions_to() -> None:
    """BearerToken hands the SDK an authenticated user (its session manager binds each session to it),
    identified by a hash of the token: the token itself is not kept."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context

    app = Recorder()
    response = await request(BearerToken(app, SecretStr(TOKEN)), {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    [user], [token] = app.users, app.tokens
    assert isinstance(user, AuthenticatedUser) and token is user.access_token  # get_access_token() works too
    assert authorization_context(user)["subject"] == "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    kept = repr((user.access_token.model_dump(), vars(user)))
    assert TOKEN not in kept and TOKEN[:12] not in kept


async def test_each_static_token_is_its_own_principal() -> None:
    from mcp.server.auth.middleware.bearer_auth import authorization_context

    alice, bob = TOKEN, TOKEN[::-1]
    app = Recorder()
    guarded = BearerToken(app, SecretStr(f"{alice}, {bob}"))
    for token in (alice, bob, alice):
        response = await request(guarded, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    for wrong in (f"{alice}, {bob}", f"{alice},{bob}", ""):
        assert (await request(guarded, {"Authorization": f"Bearer {wrong}"})).status_code == 401
    principals = [authorization_context(user) for user in app.users]  # type: ignore[arg-type]
    assert principals[0] == principals[2] != principals[1]


async def initialize_via(app: object, host: str, origin: str | None = None) -> httpx.Response:
    """POST an MCP initialize to the real app, its lifespan (the session manager) running."""
    headers = MCP_HEADERS | {"Host": host} | ({"Origin": origin} if origin else {})
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=10) as client:
            return await client.post("/mcp", headers=headers, json=INITIALIZE)


@pytest.mark.parametrize(
    ("bound", "name"),
    [("::1", "[::1]"), ("[::1]", "[::1]"), ("127.0.0.2", "127.0.0.2"), ("127.255.255.254", "127.255.255.254"),
     ("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")],
)  # fmt: skip
async def test_http_app_allows_its_own_loopback_address_and_nothing_foreign(bound: str, name: str) -> None:
    server = build_server(Settings.from_env({}), load_registry())
    for host, origin in ((f"{name}:8000", None), (f"{name}:8000", f"http://{name}:8000"), ("127.0.0.1:8000", None)):
        response = await initialize_via(http_app(server, bound, None, stateless=True), host, origin)
        assert response.status_code == 200, (host, origin, response.text)
    for host, origin, status in (("evil.example:8000", None, 421), (f"{name}.evil.example:8000", None, 421),
                                 (f"{name}:8000", "http://evil.example:8000", 403)):  # fmt: skip
        response = await initialize_via(http_app(server, bound, None, stateless=True), host, origin)
        assert response.status_code == status, (host, origin, response.text)


def test_a_port_in_use_is_a_one_line_config_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            listening_socket("127.0.0.1", port, 16)
    message = str(caught.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: the port is in use") and "--port" in message


def test_the_listening_socket_is_bound_before_anything_serves() -> None:
    with listening_socket("127.0.0.1", 0, 16) as sock:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # the backlog takes it: it listens
            pass
    try:
        ipv6 = listening_socket("[::1]", 0, 16)
    except ConfigError as exc:  # a kernel without IPv6
        pytest.skip(str(exc))
    with ipv6:
        assert ipv6.family == socket.AF_INET6 and ipv6.getsockname()[1] > 0


@pytest.mark.parametrize(
    ("errno_", "says"),
    [(errno.EACCES, "permission denied: choose a --port above 1023"),
     (errno.EADDRNOTAVAIL, "192.0.2.1 is not an address of this machine: choose another --host")],
)  # fmt: skip
def test_bind_errors_say_what_to_change(errno_: int, says: str) -> None:
    message = bind_error("192.0.2.1", 80, OSError(errno_, os.strerror(errno_)))
    assert message == f"cannot listen on 192.0.2.1:80: {says}"
    assert bind_error("::1", 8000, OSError(errno.EADDRINUSE, "in use")).startswith("cannot listen on [::1]:8000:")


# --- OAuth: how the guard is composed (tests/test_oauth.py runs it against a real issuer) --------------------

PUBLIC = "https://mcp.example.com/mcp"


class StubVerifier:
    """A TokenVerifier that knows one token: the composition is under test here, not the JWT checks."""

    def __init__(self, scopes: list[str]) -> None:
        self.scopes = scopes

    async def verify_token(self, token: str) -> object:
        from mcp.server.auth.provider import AccessToken

        if token != TOKEN:
            return None
        iss = {"iss": "https://sso.example.com/realms/ops"}
        return AccessToken(
            token="h", client_id="agent", scopes=self.scopes, subject="alice", resource=PUBLIC, claims=iss
        )


def resource_server() -> object:
    from mcp_cloudops.oauth import ResourceServer

    return ResourceServer("https://sso.example.com/realms/ops", PUBLIC, "cloudops:read", "cloudops:write")


async def test_an_oauth_principal_is_one_the_sdk_binds_sessions_to() -> None:
    from mcp.server.auth.middleware.bearer_auth import authorization_context

    from mcp_cloudops.oauth import OAuthGuard

    app = Recorder()
    guarded = OAuthGuard(app, resource_server(), StubVerifier(["cloudops:read"]))  # type: ignore[arg-type]
    response = await request(guarded, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    [user], [token] = app.users, app.tokens
    assert token is user.access_token  # type: ignore[attr-defined]
    assert authorization_context(user) == {  # type: ignore[arg-type]
        "client_id": "agent", "issuer": "https://sso.example.com/realms/ops", "subject": "alice"
    }  # fmt: skip


async def test_the_oauth_guard_answers_401_403_and_the_metadata_before_the_app() -> None:
    from mcp_cloudops.oauth import OAuthGuard

    app = Recorder()
    metadata_url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    no_scope = OAuthGuard(app, resource_server(), StubVerifier(["openid"]))  # type: ignore[arg-type]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = await request(no_scope, headers)
        assert (
            response.status_code == 401
            and f'resource_metadata="{metadata_url}"' in response.headers["www-authenticate"]
        )
    response = await request(no_scope, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 403 and 'scope="cloudops:read"' in response.headers["www-authenticate"]
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        transport = httpx.ASGITransport(app=no_scope)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            metadata = (await client.get(path)).json()
        assert metadata["resource"] == PUBLIC and metadata["scopes_supported"] == ["cloudops:read", "cloudops:write"]
        assert metadata["authorization_servers"] == ["https://sso.example.com/realms/ops"]  # as written: no slash
    assert app.calls == []


def test_http_app_with_oauth_is_guarded_and_answers_to_the_public_host() -> None:
    from mcp_cloudops.oauth import OAuthGuard
    from mcp_cloudops.web import public_names

    server = build_server(Settings.from_env({}), load_registry())
    assert isinstance(http_app(server, "127.0.0.1", None, False, resource_server()), OAuthGuard)  # type: ignore[arg-type]
    assert public_names(PUBLIC) == (
        ["mcp.example.com", "mcp.example.com:*"], ["https://mcp.example.com", "https://mcp.example.com:*"]
    )  # fmt: skip
    assert public_names("https://[2001:db8::1]:8443/mcp") == (
        ["[2001:db8::1]:8443", "[2001:db8::1]:*"], ["https://[2001:db8::1]:8443", "https://[2001:db8::1]:*"]
    )  # fmt: skip
