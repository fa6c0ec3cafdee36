"""The sandbox's two accounts (issue 21 item 8): `run_sandbox(team=True)`, as `serve --sandbox` and `mcp dev`
start it, gives every provider `default` and `team`, each its own simulators, credentials and resources, so
the several-accounts flow can be tried without a cloud. Each team simulator refuses the default key, and the
default one the team key, as the real APIs answer a wrong key."""

from __future__ import annotations

import json
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from mcp import Client, StdioServerParameters
from support import TEAM_SECRETS, server_env, text_of

from mcp_cloudops.accounts import sandboxed
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import credentials, exoscale, nirvana
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()
ACCOUNTS = ["default", "team"]


@pytest.fixture
async def both() -> AsyncIterator[Sandbox]:
    async with run_sandbox(team=True) as running:
        yield running


@pytest.fixture
async def client(both: Sandbox) -> AsyncIterator[Client]:
    """A server built from the sandbox's own environment, its accounts file included."""
    async with Client(build_server(Settings.from_env(both.env))) as connected:
        yield connected


def team_of(sandbox: Sandbox) -> Sandbox:
    assert sandbox.team is not None
    return sandbox.team


async def test_the_accounts_file_names_every_team_simulator_and_only_its_owner_may_read_it(both: Sandbox) -> None:
    path = Path(both.env["MCP_CLOUDOPS_ACCOUNTS"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    accounts = yaml.safe_load(path.read_text())["accounts"]
    assert set(accounts) == set(REGISTRY.providers)
    for provider, entry in accounts.items():
        assert entry["team"]["description"] == "Sandbox team account"
        assert entry["team"]["variables"] == team_of(both)[provider].env(team_of(both).addresses[provider])
    assert team_of(both).addresses["incus"] != both.addresses["incus"]  # Incus: another socket, no key


async def test_without_team_the_sandbox_is_what_it_always_was() -> None:
    async with run_sandbox() as alone:
        assert alone.team is None and "MCP_CLOUDOPS_ACCOUNTS" not in alone.env


async def test_every_tool_offers_both_accounts(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert len(tools) == len(REGISTRY.tools)
    for tool in tools:
        choice = tool.input_schema["properties"]["account"]
        assert (choice["enum"], choice["default"]) == (ACCOUNTS, "default"), tool.name
        assert "team (Sandbox team account)" in choice["description"]


# provider -> (a listing tool, its arguments, what an agent reads off its result: the names it sees)
LISTINGS: dict[str, tuple[str, dict[str, Any], Callable[[dict[str, Any]], set[str]]]] = {
    "exoscale": ("list-compute-instances", {}, lambda r: {i["name"] for i in r["instances"]}),
    "scaleway": ("list-instance-images", {"public": False}, lambda r: {i["name"] for i in r["images"]}),
    "portainer": ("list-portainer-environments", {}, lambda r: {e["Name"] for e in r["result"]}),
    "nirvana": ("list-nirvana-projects", {}, lambda r: {p["name"] for p in r["items"]}),
    "incus": ("list-instances", {}, lambda r: {i["name"] for i in r["result"]}),
}
SEEN = {  # what each account holds: nothing in common
    "exoscale": ({"web-1", "db-1"}, {"api-1", "worker-1"}),
    "scaleway": ({"app-golden-2025-04", "app-golden-2025-03", "ci-runner-arm"}, {"billing-api-2025-05"}),
    "portainer": ({"local", "k8s"}, {"team-docker", "team-k8s"}),
    "nirvana": ({p[1] for p in nirvana.SEED_PROJECTS}, {p[1] for p in nirvana.TEAM_PROJECTS}),
    "incus": ({"c1", "vm1", "c2"}, {"team-c1", "team-db1", "team-vm1"}),
}


@pytest.mark.parametrize("provider", list(LISTINGS))
async def test_each_account_lists_its_own_resources(both: Sandbox, client: Client, provider: str) -> None:
    tool, arguments, names = LISTINGS[provider]
    mine = await client.call_tool(tool, {**arguments, "account": "default"})
    theirs = await client.call_tool(tool, {**arguments, "account": "team"})
    assert not mine.is_error and not theirs.is_error, (text_of(mine), text_of(theirs))
    assert (names(mine.structured_content), names(theirs.structured_content)) == SEEN[provider]
    assert len(both[provider].requests) == len(team_of(both)[provider].requests) == 1
    assert not any(secret in text_of(theirs) for secret in TEAM_SECRETS)


def exoscale_headers(method: str, path: str, key: str, secret: str) -> dict[str, str]:
    """A request signed EXO2-HMAC-SHA256 with `key`, as Exoscale's clients sign it."""
    expires = int(time.time()) + 300
    signature = exoscale.sign(secret, exoscale.signing_message(method, path, b"", [], expires))
    return {"Authorization": f"{exoscale.AUTH_SCHEME} credential={key},expires={expires},signature={signature}"}


# provider -> (path, the headers that sign in with the default credentials, with the team's), made when the
# test runs: an Exoscale signature expires 300 s after it is made, and a whole suite takes longer than that.
Headers = Callable[[], dict[str, str]]
KEYS: dict[str, tuple[str, Headers, Headers]] = {
    "exoscale": (
        "/ch-gva-2/v2/instance",
        lambda: exoscale_headers(
            "GET", "/ch-gva-2/v2/instance", credentials.EXOSCALE_API_KEY, credentials.EXOSCALE_API_SECRET
        ),
        lambda: exoscale_headers(
            "GET", "/ch-gva-2/v2/instance", credentials.TEAM_EXOSCALE_API_KEY, credentials.TEAM_EXOSCALE_API_SECRET
        ),
    ),
    "scaleway": (
        "/instance/v1/zones/fr-par-1/images",
        lambda: {"X-Auth-Token": credentials.SCW_SECRET_KEY},
        lambda: {"X-Auth-Token": credentials.TEAM_SCW_SECRET_KEY},
    ),
    "portainer": (
        "/api/endpoints",
        lambda: {"X-API-Key": credentials.PORTAINER_API_KEY},
        lambda: {"X-API-Key": credentials.TEAM_PORTAINER_API_KEY},
    ),
    "nirvana": (
        "/v1/projects",
        lambda: {"Authorization": f"Bearer {credentials.NIRVANA_LABS_API_KEY}"},
        lambda: {"Authorization": f"Bearer {credentials.TEAM_NIRVANA_LABS_API_KEY}"},
    ),
}
REFUSALS = {  # provider -> (status, body) as that API answers a key it does not know
    "exoscale": (403, {"message": exoscale.MSG_UNKNOWN_KEY}),
    "scaleway": (401, {"message": "authentication is denied", "method": "api_key", "type": "denied_authentication"}),
    "portainer": (401, {"message": "A valid authorisation token is missing", "details": "Unauthorized"}),
    "nirvana": (401, {"message": "invalid API key"}),
}


@pytest.mark.parametrize("provider", list(KEYS))
async def test_each_account_refuses_the_others_key(both: Sandbox, provider: str) -> None:
    path, default_key, team_key = KEYS[provider]
    status, body = REFUSALS[provider]
    team = team_of(both)
    async with httpx.AsyncClient(timeout=10) as http:
        wrong = [
            await http.get(team.addresses[provider] + path, headers=default_key()),
            await http.get(both.addresses[provider] + path, headers=team_key()),
        ]
        right = [
            await http.get(both.addresses[provider] + path, headers=default_key()),
            await http.get(team.addresses[provider] + path, headers=team_key()),
        ]
    for answer in wrong:
        assert answer.status_code == status, answer.text
        assert {k: v for k, v in answer.json().items() if k in body} == body
    assert [answer.status_code for answer in right] == [200, 200]


async def test_an_exec_in_team_reaches_only_the_team_incus(both: Sandbox, client: Client) -> None:
    arguments = {"name": "team-c1", "command": ["hostname"], "account": "team"}
    ran = await client.call_tool("exec-instance", arguments)
    assert not ran.is_error, text_of(ran)
    assert ran.structured_content["stdout"] == "team-c1\n"
    assert both["incus"].requests == []
    assert any(request.path.endswith("/instances/team-c1/exec") for request in team_of(both)["incus"].requests)
    elsewhere = await client.call_tool("exec-instance", {**arguments, "account": "default"})
    assert elsewhere.is_error and "not found" in text_of(elsewhere).lower()


async def test_the_users_accounts_file_gives_way_to_the_sandboxes(both: Sandbox, tmp_path: Path) -> None:
    """sandboxed() drops the user's MCP_CLOUDOPS_ACCOUNTS, then adds the sandbox's: only default and team."""
    user_file = users_accounts_file(tmp_path)
    env = sandboxed({"MCP_CLOUDOPS_ACCOUNTS": str(user_file)}, REGISTRY, both.env)
    async with Client(build_server(Settings.from_env(env))) as connected:
        tools = (await connected.list_tools()).tools
    assert all(tool.input_schema["properties"]["account"]["enum"] == ACCOUNTS for tool in tools)


def users_accounts_file(tmp_path: Path) -> Path:
    """An accounts file of the user's own, with a `prod` account the sandbox must not offer."""
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps({"accounts": {"nirvana": {"prod": {"variables": {"NIRVANA_LABS_API_KEY": "x" * 24}}}}}))
    path.chmod(0o600)
    return path


async def test_serve_sandbox_over_stdio_offers_and_serves_the_team_account(tmp_path: Path) -> None:
    env = server_env(MCP_CLOUDOPS_ACCOUNTS=str(users_accounts_file(tmp_path)))
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_cloudops", "serve", "--sandbox"], env=env)
    with anyio.fail_after(60):
        async with Client(params) as stdio:
            tools = (await stdio.list_tools()).tools
            projects = await stdio.call_tool("list-nirvana-projects", {"account": "team"})
            instances = await stdio.call_tool("list-instances", {"account": "team"})
    assert len(tools) == len(REGISTRY.tools)
    assert all(tool.input_schema["properties"]["account"]["enum"] == ACCOUNTS for tool in tools)
    assert not projects.is_error, text_of(projects)
    assert {p["name"] for p in projects.structured_content["items"]} == SEEN["nirvana"][1]
    assert {i["name"] for i in instances.structured_content["result"]} == SEEN["incus"][1]
