"""Every user of a shared endpoint acts as themselves (issue 21 items 3 and 4): on an OAuth endpoint an
account with `users` is only for the token subjects and `group:` values it lists. Run over HTTP against a
real issuer (oauth2-mock-server) signing tokens for two users in different groups, with simulators this
test runs itself standing for each account's cloud.

The matrix: alice (group ops) and bob (group dev), each with a read and a write tool, against accounts
`shared` (no users), `ops` (group:ops) and `alice` (alice only); and a read-only `audit` account."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import HttpServer, text_of
from test_oauth import PUBLIC, WRITE, Issuer, connected, running_issuer

from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox

pytestmark = pytest.mark.anyio
READ_TOOL, WRITE_TOOL = "list-nirvana-projects", "update-image-2"  # nirvana for reads; scaleway for a write


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as issuer:
        yield issuer


@pytest.fixture
async def clouds() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as running:
        yield running


def accounts_file(tmp_path: Path, sandbox: Sandbox) -> Path:
    nirvana = {"NIRVANA_LABS_BASE_URL": sandbox.env["NIRVANA_LABS_BASE_URL"], "NIRVANA_LABS_API_KEY": {"env": "NK"}}
    scaleway = {"SCW_API_URL": sandbox.env["SCW_API_URL"], "SCW_SECRET_KEY": {"env": "SK"}}
    accounts = {
        "nirvana": {
            "shared": {"variables": nirvana},
            "ops": {"description": "Operations", "variables": nirvana, "users": ["group:ops"]},
            "alice": {"variables": nirvana, "users": ["alice"]},
        },
        "scaleway": {
            "ops": {"variables": scaleway, "users": ["group:ops"]},
            "audit": {"variables": scaleway, "read_only": True},
        },
    }
    path = tmp_path / "accounts.yaml"
    path.write_text(json.dumps({"accounts": accounts, "default_accounts": {"nirvana": "ops"}}))
    path.chmod(0o600)
    return path


@pytest.fixture
def server(issuer: Issuer, clouds: Sandbox, tmp_path: Path) -> Iterator[HttpServer]:
    env = {
        "MCP_CLOUDOPS_OAUTH_ISSUER": issuer.url,
        "MCP_CLOUDOPS_PUBLIC_URL": PUBLIC,
        "MCP_CLOUDOPS_ACCOUNTS": str(accounts_file(tmp_path, clouds)),
        "MCP_CLOUDOPS_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "NK": clouds.env["NIRVANA_LABS_API_KEY"],
        "SK": clouds.env["SCW_SECRET_KEY"],
    }
    with HttpServer.running(sandbox=False, **env) as running:
        yield running


def token(issuer: Issuer, who: str) -> str:
    return issuer.token(scope=WRITE, sub=who, groups=["ops"] if who == "alice" else ["dev"])


def schema_of(tools: Any, name: str) -> dict[str, Any] | None:
    return next((tool.input_schema for tool in tools.tools if tool.name == name), None)


async def test_each_user_lists_only_their_accounts(server: HttpServer, issuer: Issuer) -> None:
    async with connected(server, token(issuer, "alice")) as alice:
        mine = await alice.list_tools()
    async with connected(server, token(issuer, "bob")) as bob:
        theirs = await bob.list_tools()
    alice_read, bob_read = schema_of(mine, READ_TOOL), schema_of(theirs, READ_TOOL)
    assert alice_read is not None and bob_read is not None
    assert alice_read["properties"]["account"]["enum"] == ["shared", "ops", "alice"]
    assert alice_read["properties"]["account"]["default"] == "ops" and "Operations" in str(alice_read)
    assert bob_read["properties"]["account"]["enum"] == ["shared"]
    assert bob_read["properties"]["account"]["default"] == "shared"  # the default is not his: his only one
    assert "Operations" not in json.dumps(bob_read)  # not even the description of an account he may not use
    # The write tool: alice may write with `ops` only (`audit` is read-only); bob with none: not listed.
    alice_write = schema_of(mine, WRITE_TOOL)
    assert alice_write is not None and alice_write["properties"]["account"]["enum"] == ["ops"]
    assert schema_of(theirs, WRITE_TOOL) is None


async def test_a_forbidden_account_reads_as_an_unknown_one_and_nothing_is_sent(
    server: HttpServer, issuer: Issuer, clouds: Sandbox, tmp_path: Path
) -> None:
    async with connected(server, token(issuer, "bob")) as bob:
        forbidden = await bob.call_tool(READ_TOOL, {"account": "ops"})
        unknown = await bob.call_tool(READ_TOOL, {"account": "nope"})
        allowed = await bob.call_tool(READ_TOOL, {})
    assert forbidden.is_error and unknown.is_error
    assert text_of(forbidden) == text_of(unknown).replace("'nope'", "'ops'")
    assert "use one of shared" in text_of(forbidden) and "alice" not in text_of(forbidden)
    assert not allowed.is_error, text_of(allowed)
    assert len(clouds["nirvana"].requests) == 1  # the allowed call only
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    refused = [(r["event"], r["principal"], r["account"]) for r in records if r["event"] == "refused"]
    assert refused == [("refused", "bob", "ops"), ("refused", "bob", "nope")]


async def test_a_write_with_a_read_only_account_is_refused_in_its_words(
    server: HttpServer, issuer: Issuer, clouds: Sandbox
) -> None:
    from mcp_cloudops.sandbox import scaleway

    arguments = {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed", "account": "audit"}
    async with connected(server, token(issuer, "alice")) as alice:
        refused = await alice.call_tool(WRITE_TOOL, arguments)
        written = await alice.call_tool(WRITE_TOOL, {**arguments, "account": "ops"})
    assert refused.is_error and "Account 'audit' of Scaleway is read-only" in text_of(refused)
    assert not written.is_error, text_of(written)
    assert [request.method for request in clouds["scaleway"].requests] == ["PATCH"]
