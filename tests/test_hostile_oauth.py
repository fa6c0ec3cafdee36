"""An HTTP client with a token from the team's issuer against the OAuth resource server (issue 20: findings 7, 8,
11a and 11b), with the real issuer of tests/test_oauth.py (oauth2-mock-server signing JWTs).

A scope joined to another by any blank but U+0020 is no scope (RFC 6749 3.3); a subject that is blank or
holds control characters is no principal; a call beyond the token's scope is journaled as refused, naming who
asked; and a made-up key id sent while the issuer is down cannot make the keys already fetched unusable.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import test_oauth
from starlette.responses import PlainTextResponse
from support import HttpServer
from test_oauth import (
    PUBLIC,
    READ,
    READ_TOOLS,
    TIMEOUT,
    WRITE,
    WRITE_ARGUMENTS,
    WRITE_TOOL,
    Issuer,
    connected,
    names,
    post,
    running_issuer,
)

from mcp_cloudops.oauth import IssuerKeys, JwtVerifier, OAuthGuard, Refused, ResourceServer, granted_scopes

pytestmark = pytest.mark.anyio

# Blanks str.split() splits on and RFC 6749 does not: ideographic space, unit separator, line separator,
# no-break space, next line.
BLANKS = ["\u3000", "\x1f", "\u2028", "\xa0", "\x85"]
BLANK_IDS = [f"U+{ord(c):04X}" for c in BLANKS]

# test_oauth's fixtures, shared: one issuer, and a server with an audit journal that trusts it, for this module.
issuer, journal, server = test_oauth.issuer, test_oauth.journal, test_oauth.server


def logged(running: HttpServer, text: str) -> bool:
    """Whether the server logged `text` within TIMEOUT (its stderr arrives on a thread)."""
    deadline = time.monotonic() + TIMEOUT
    while text not in running.logs and time.monotonic() < deadline:
        time.sleep(0.05)
    return text in running.logs


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- 7: scopes are separated by U+0020 only ------------------------------------------------------------------


@pytest.mark.parametrize("blank", BLANKS, ids=BLANK_IDS)
def test_a_scope_joined_by_another_blank_grants_nothing(server: HttpServer, issuer: Issuer, blank: str) -> None:
    """`tenant:acme<blank>cloudops:write` is one (invalid) scope-token, not the write scope: 403."""
    response = post(server, issuer.token(scope=f"tenant:acme{blank}{WRITE}"))
    assert response.status_code == 403, response.text


async def test_a_blank_joined_write_scope_beside_the_read_scope_reaches_reads_only(
    server: HttpServer, issuer: Issuer
) -> None:
    async with connected(server, issuer.token(scope=f"{READ} tenant:acme\u3000{WRITE}")) as client:
        assert await names(client) == READ_TOOLS
        assert (await client.call_tool(WRITE_TOOL, WRITE_ARGUMENTS)).is_error


@pytest.mark.parametrize("blank", BLANKS, ids=BLANK_IDS)
def test_scope_and_scp_strings_split_on_space_only_and_drop_what_is_no_scope_token(blank: str) -> None:
    for claim in ("scope", "scp"):
        assert granted_scopes({claim: f"tenant:acme{blank}{WRITE}"}) == []
        assert granted_scopes({claim: f"tenant:acme{blank}{WRITE} {READ}"}) == [READ]
    assert granted_scopes({"scope": f"  {READ}  openid "}) == [READ, "openid"]  # empty pieces are no scopes
    assert granted_scopes({"scope": f'{READ} a"b c\\d \x7f'}) == [READ]  # '"', '\', DEL are not in scope-token


def test_scp_list_items_that_are_not_scope_tokens_are_ignored() -> None:
    items = [f"tenant:acme\u3000{WRITE}", f"tenant:acme {WRITE}", "", f"{WRITE}\n", READ, 7, None]
    assert granted_scopes({"scp": items}) == [READ]


# --- 11b: a subject must name someone ------------------------------------------------------------------------

BLANK_SUBJECTS = {
    "empty": "",
    "space": " ",
    "tab-newline": "\t\n",
    "unicode-blanks": "\u3000\xa0\u2028",
    "nul": "\x00",
    "escape-sequence": "alice\x1b[2K",
    "line-break": "alice\r\nbob",
}


@pytest.mark.parametrize("sub", list(BLANK_SUBJECTS.values()), ids=list(BLANK_SUBJECTS))
def test_a_blank_or_control_character_subject_gets_401(server: HttpServer, issuer: Issuer, sub: str) -> None:
    token = issuer.token(scope=WRITE, sub=sub)
    response = post(server, token)
    assert response.status_code == 401, response.text
    assert logged(server, "refused an access token: its subject (sub) is blank or holds control characters")
    assert token not in server.logs and token.split(".")[2] not in server.logs


# --- 11a: a call beyond the token's scope is journaled --------------------------------------------------------


@pytest.mark.parametrize(("mode", "sub"), [("legacy", "erin-7c1d"), ("auto", "frank-2b9e")])
async def test_a_call_beyond_the_scope_is_journaled_as_refused_naming_the_subject(
    server: HttpServer, issuer: Issuer, journal: Path, mode: str, sub: str
) -> None:
    token = issuer.token(scope=READ, sub=sub)
    async with connected(server, token, mode) as client:
        refused = await client.call_tool(WRITE_TOOL, WRITE_ARGUMENTS)
    assert refused.is_error and f"needs the OAuth scope {WRITE}" in refused.content[0].text
    mine = [record for record in records(journal) if record["principal"] == sub]
    assert [(r["event"], r["tool"]) for r in mine] == [("refused", WRITE_TOOL)]  # refused, and nothing sent
    [record] = mine
    assert f"needs the OAuth scope {WRITE}" in str(record["reason"])
    assert (record["session"] is not None) == (mode == "legacy")  # 2026-07-28 requests have no session
    assert token not in journal.read_text()


# --- 8: a made-up key id while the issuer is down -------------------------------------------------------------

COOLDOWN = 0.5  # seconds: the server's is 30


@pytest.fixture
def stopping_issuer() -> Iterator[Issuer]:
    """An issuer of this test's own, which the test stops."""
    with running_issuer() as own:
        yield own


def test_a_made_up_key_id_while_the_issuer_is_down_leaves_the_cached_keys_usable(
    stopping_issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_cloudops.oauth")
    good, made_up = stopping_issuer.token(), stopping_issuer.token(kid="made-up-by-an-attacker")
    keys = IssuerKeys(stopping_issuer.url, cooldown=COOLDOWN)
    key = keys.signing_key(good)
    stopping_issuer.stop()
    for _ in range(2):  # repeatable: each cooldown, a refetch that fails
        time.sleep(COOLDOWN + 0.1)  # the refetch is allowed again
        for _ in range(3):
            with pytest.raises(Refused):
                keys.signing_key(made_up)
            assert keys.signing_key(good).key_id == key.key_id
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings  # one fetch per cooldown, however many made-up key ids
    assert all("still used" in warning for warning in warnings), warnings


def test_keys_past_their_lifespan_are_kept_while_the_issuer_is_down(stopping_issuer: Issuer) -> None:
    good = stopping_issuer.token()
    keys = IssuerKeys(stopping_issuer.url, cooldown=COOLDOWN, lifespan=COOLDOWN)
    keys.signing_key(good)
    stopping_issuer.stop()
    time.sleep(COOLDOWN + 0.1)  # stale: the next token tries a refetch, which fails
    assert keys.signing_key(good).key_id == stopping_issuer.kid


def test_a_failed_refetch_of_an_unreadable_key_set_keeps_the_cached_keys(
    stopping_issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only a connection failure: a key set that is no JSON, or has no usable key, keeps the old one too."""
    import jwt

    good, made_up = stopping_issuer.token(), stopping_issuer.token(kid="made-up")
    keys = IssuerKeys(stopping_issuer.url, cooldown=0)
    keys.signing_key(good)
    for failure in (ValueError("Expecting value"), jwt.PyJWKSetError("no usable keys"), jwt.PyJWKClientError("x")):

        def broken(self: object, refresh: bool = False, failure: Exception = failure) -> object:
            raise failure

        monkeypatch.setattr(jwt.PyJWKClient, "get_signing_keys", broken)
        with pytest.raises(Refused):
            keys.signing_key(made_up)
        assert keys.signing_key(good).key_id == stopping_issuer.kid


async def test_through_the_guard_a_made_up_key_id_while_the_issuer_is_down_locks_nobody_out(
    stopping_issuer: Issuer,
) -> None:
    """End to end: the HTTP guard, the verifier and the issuer's published keys, with a short cooldown."""
    resource = ResourceServer(stopping_issuer.url, PUBLIC, READ, WRITE)
    verifier = JwtVerifier(resource, IssuerKeys(stopping_issuer.url, cooldown=COOLDOWN))
    guard = OAuthGuard(PlainTextResponse("in"), resource, verifier)
    good, made_up = stopping_issuer.token(), stopping_issuer.token(kid="made-up-by-an-attacker")
    transport = httpx.ASGITransport(app=guard)
    with anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:

            async def status(token: str) -> int:
                return (await http.post("/mcp", headers={"Authorization": f"Bearer {token}"})).status_code

            assert await status(good) == 200
            stopping_issuer.stop()
            await anyio.sleep(COOLDOWN + 0.1)
            assert await status(made_up) == 401
            assert await status(good) == 200
