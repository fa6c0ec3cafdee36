"""Calls in an account (issue 21): two sandboxes stand for two accounts of every provider, `default` (the
environment's) and `team` (an accounts file's). A call names its account, or gets the default; every
request it makes, polls and log reads included, reaches that account's upstream only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from support import text_of

from mcp_cloudops.redaction import configured_secrets
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox.exoscale import INSTANCE_STOPPED
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()


@pytest.fixture
async def team() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as running:
        yield running


def accounts_file(tmp_path: Path, team: Sandbox, **options: Any) -> Path:
    """Every provider's `team` account: the second sandbox's addresses and keys."""
    accounts = {
        key: {"team": {"description": f"Team {key}", "variables": variables, **options}}
        for key in REGISTRY.providers
        if (variables := {name: value for name, value in team.env.items() if name in team_variables(key)})
    }
    path = tmp_path / "accounts.yaml"
    path.write_text(json.dumps({"accounts": accounts}))  # JSON is YAML
    path.chmod(0o600)
    return path


def team_variables(key: str) -> set[str]:
    from mcp_cloudops.accounts import variables_of

    return set(variables_of(REGISTRY.providers[key]))


def settings(sandbox: Sandbox, path: Path) -> Settings:
    return Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_ACCOUNTS": str(path)})


async def test_a_call_reaches_the_account_it_names_and_the_default_otherwise(
    sandbox: Sandbox, team: Sandbox, tmp_path: Path
) -> None:
    async with Client(build_server(settings(sandbox, accounts_file(tmp_path, team)))) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        choice = listed["list-compute-instances"].input_schema["properties"]["account"]
        assert choice["enum"] == ["default", "team"] and choice["default"] == "default"
        assert "team (Team exoscale)" in choice["description"]
        mine = await client.call_tool("list-compute-instances", {})
        theirs = await client.call_tool("list-compute-instances", {"account": "team"})
    assert not mine.is_error and not theirs.is_error, (text_of(mine), text_of(theirs))
    assert len(sandbox["exoscale"].requests) == 1 and len(team["exoscale"].requests) == 1


async def test_an_unknown_account_is_refused_before_anything_is_sent(
    sandbox: Sandbox, team: Sandbox, tmp_path: Path
) -> None:
    async with Client(build_server(settings(sandbox, accounts_file(tmp_path, team)))) as client:
        result = await client.call_tool("list-compute-instances", {"account": "prod"})
    assert result.is_error and "account" in text_of(result) and "default, team" in text_of(result)
    assert not sandbox["exoscale"].requests and not team["exoscale"].requests


async def test_an_exec_that_waits_polls_and_reads_logs_in_its_account_only(
    sandbox: Sandbox, team: Sandbox, tmp_path: Path
) -> None:
    arguments = {"name": "c1", "command": ["echo", "from team"], "account": "team"}
    async with Client(build_server(settings(sandbox, accounts_file(tmp_path, team)))) as client:
        result = await client.call_tool("exec-instance", arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content["stdout"] == "from team\n"
    assert sandbox["incus"].requests == []  # no poll, wait, log read or delete went to the default account
    paths = [request.path for request in team["incus"].requests]
    assert any(path.endswith("/wait") for path in paths) and any("/logs/" in path for path in paths)


async def test_a_read_only_account_refuses_writes_and_says_which(
    sandbox: Sandbox, team: Sandbox, tmp_path: Path
) -> None:
    path = accounts_file(tmp_path, team, read_only=True)
    async with Client(build_server(settings(sandbox, path))) as client:
        refused = await client.call_tool("start-compute-instance", {"id": INSTANCE_STOPPED, "account": "team"})
        allowed = await client.call_tool("list-compute-instances", {"account": "team"})
    assert refused.is_error and "Account 'team' of Exoscale is read-only" in text_of(refused)
    assert not allowed.is_error
    assert [r.method for r in team["exoscale"].requests] == ["GET"]


async def test_the_question_names_the_account_first(sandbox: Sandbox, team: Sandbox, tmp_path: Path) -> None:
    from mcp_types import ElicitResult

    asked: list[str] = []

    async def decline(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="decline")

    server = build_server(settings(sandbox, accounts_file(tmp_path, team)))
    async with Client(server, elicitation_callback=decline) as client:
        await client.call_tool("delete-compute-instance", {"id": INSTANCE_STOPPED})
    (question,) = asked
    assert question.splitlines()[0].endswith(' in account "default".')  # the action names where it acts
    assert question.splitlines()[2] == '- account: "default"'


async def test_every_accounts_secret_is_redacted(sandbox: Sandbox, team: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("accounts:\n  nirvana:\n    team: {variables: {NIRVANA_LABS_API_KEY: team-only-secret-0123456}}\n")
    path.chmod(0o600)
    secrets = configured_secrets(REGISTRY, settings(sandbox, path).with_accounts(REGISTRY))
    assert "team-only-secret-0123456" in secrets and sandbox.env["NIRVANA_LABS_API_KEY"] in secrets


async def test_one_account_per_provider_lists_what_it_always_did(sandbox: Sandbox) -> None:
    from mcp_cloudops.schema import input_schema
    from mcp_cloudops.server import account_choice

    accounts = Settings.from_env(sandbox.env).accounts_for(REGISTRY)
    for tool in REGISTRY.tools:
        assert account_choice(accounts, REGISTRY.provider_of(tool)) == ()
        assert "account" not in input_schema(tool, REGISTRY.provider_of(tool))["properties"]


async def test_an_incus_accounts_project_applies_where_a_call_names_none(sandbox: Sandbox) -> None:
    """As `incus remote add --project`: a certificate restricted to one project is refused elsewhere."""
    env = {**sandbox.env, "INCUS_PROJECT": "team-project"}
    async with Client(build_server(Settings.from_env(env))) as client:
        await client.call_tool("list-instances", {})
        await client.call_tool("list-instances", {"project": "other"})
        await client.call_tool("list-instances", {"all-projects": True})
    projects = [request.query.get("project") for request in sandbox["incus"].requests]
    assert projects == [["team-project"], ["other"], None]


async def test_a_scaleway_accounts_project_fills_only_creating_calls(sandbox: Sandbox) -> None:
    from mcp_cloudops.sandbox.scaleway import SANDBOX_PROJECT, SANDBOX_PROJECT_2, SNAPSHOT_FR_PAR_1

    env = {**sandbox.env, "SCW_DEFAULT_PROJECT_ID": SANDBOX_PROJECT}
    snapshot = SNAPSHOT_FR_PAR_1
    async with Client(build_server(Settings.from_env(env))) as client:
        await client.call_tool("list-instance-images", {})
        await client.call_tool("create-instance-image", {"name": "n", "root_volume": snapshot, "arch": "x86_64"})
        await client.call_tool(
            "create-instance-image",
            {"name": "n", "root_volume": snapshot, "arch": "x86_64", "organization": SANDBOX_PROJECT_2},
        )
    listing, created, with_organization = sandbox["scaleway"].requests
    assert "project" not in listing.query  # a filter would hide public images
    assert created.json()["project"] == SANDBOX_PROJECT
    assert "project" not in with_organization.json()


async def test_metrics_name_the_account_and_never_one_a_client_made_up(
    sandbox: Sandbox, team: Sandbox, tmp_path: Path
) -> None:
    from mcp_cloudops import metrics

    server = build_server(settings(sandbox, accounts_file(tmp_path, team)))
    meters = await metrics.instrument(server)
    async with Client(server) as client:
        await client.call_tool("list-compute-instances", {"account": "team"})
        await client.call_tool("list-compute-instances", {"account": "made-up-by-a-client"})
    text = meters.scrape().decode()
    assert 'mcp_cloudops_tool_calls_total{account="team",outcome="ok",tool="list-compute-instances"} 1.0' in text
    assert 'mcp_cloudops_upstream_responses_total{account="team",provider="exoscale",status_class="2xx"} 1.0' in text
    assert 'account="",outcome="error",tool="list-compute-instances"} 1.0' in text
    assert "made-up" not in text


async def test_the_journal_names_the_account_on_both_records(sandbox: Sandbox, team: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "audit.jsonl"
    env = {
        **sandbox.env,
        "MCP_CLOUDOPS_ACCOUNTS": str(accounts_file(tmp_path, team)),
        "MCP_CLOUDOPS_AUDIT_LOG": str(journal),
    }
    async with Client(build_server(Settings.from_env(env))) as client:
        result = await client.call_tool("start-compute-instance", {"id": INSTANCE_STOPPED, "account": "team"})
    assert not result.is_error, text_of(result)
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(r["event"], r["account"]) for r in records] == [("sent", "team"), ("outcome", "team")]


async def test_a_declined_call_is_journaled_with_its_account(sandbox: Sandbox, team: Sandbox, tmp_path: Path) -> None:
    from mcp_types import ElicitResult

    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    journal = tmp_path / "audit.jsonl"
    path = accounts_file(tmp_path, team)
    env = {**sandbox.env, "MCP_CLOUDOPS_ACCOUNTS": str(path), "MCP_CLOUDOPS_AUDIT_LOG": str(journal)}
    async with Client(build_server(Settings.from_env(env)), elicitation_callback=decline) as client:
        await client.call_tool("delete-compute-instance", {"id": INSTANCE_STOPPED, "account": "team"})
    (record,) = [json.loads(line) for line in journal.read_text().splitlines()]
    assert (record["event"], record["account"]) == ("refused", "team")


async def test_no_accounts_secret_in_any_encoding_reaches_any_output(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A `team` account's key, echoed back by its upstream as is, in base64, hex and URL-escaped, in a result
    and in an error, is masked everywhere, as the environment's always was."""
    import base64
    import logging
    from urllib.parse import quote

    from fakes import Hostile
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    caplog.set_level(logging.DEBUG)
    key = "team-only-nirvana-key-0123456789"
    forms = [key, base64.b64encode(key.encode()).decode(), key.encode().hex(), quote(key.upper())]

    async def echo(sim: Hostile, request: Request) -> Response:
        status = 200 if request.url.path.endswith("/v1/projects") else 500
        return JSONResponse({"items": [], "echo": forms, "message": " ".join(forms)}, status_code=status)

    hostile = Hostile()
    hostile.behave = echo
    async with run_sandbox([hostile]) as echoing:
        path = tmp_path / "accounts.yaml"
        team = {"NIRVANA_LABS_BASE_URL": echoing.addresses["nirvana"], "NIRVANA_LABS_API_KEY": key}
        path.write_text(json.dumps({"accounts": {"nirvana": {"team": {"variables": team}}}}))
        path.chmod(0o600)
        async with Client(build_server(settings(sandbox, path))) as client:
            listed = await client.call_tool("list-nirvana-projects", {"account": "team"})
            failed = await client.call_tool("get-nirvana-operation", {"operation_id": "x" * 8, "account": "team"})
    said = text_of(listed) + json.dumps(listed.structured_content) + text_of(failed) + caplog.text
    assert failed.is_error and not listed.is_error, text_of(listed)
    assert "[REDACTED]" in said
    for form in forms:
        assert form[4:-4] not in said, form
