"""Credentials are a capability of their own (finding 8): `--read-only` must not hand out what lets
its holder write, and outside it a credential is handed out only once the user said yes.

Tools whose result is a credential (a password, a signed console URL) carry `credential: true` in
tools.yaml; Incus operation secrets (exec fds, join-token secrets) are hidden in results unless
the server runs with --show-operation-secrets, while the tools that need them use them inside.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitResult
from support import text_of

from mcp_cloudops.calls import HIDDEN
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox.exoscale import INSTANCE_RUNNING
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()
CREDENTIALS = ["reveal-password-used-during-instance", "retrieve-signed-url-valid-60"]


def test_the_registry_marks_tools_whose_result_is_a_credential() -> None:
    assert sorted(t.name for t in REGISTRY.tools if t.credential) == sorted(CREDENTIALS)


async def test_read_only_offers_no_credential(sandbox: Sandbox) -> None:
    server = build_server(Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_READ_ONLY": "1"}))
    async with Client(server) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert not listed & set(CREDENTIALS)
        result = await client.call_tool(CREDENTIALS[0], {"id": INSTANCE_RUNNING})
    assert result.is_error
    assert not [r for r in sandbox["exoscale"].requests if r.path.endswith(":password")]


@pytest.mark.parametrize("tool", CREDENTIALS)
async def test_a_credential_is_handed_out_only_once_the_user_said_yes(sandbox: Sandbox, tool: str) -> None:
    asked: list[str] = []

    async def declining(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="decline")

    async def accepting(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"confirm": True})

    settings = Settings.from_env(sandbox.env)
    async with Client(build_server(settings), mode="legacy", elicitation_callback=declining) as client:
        result = await client.call_tool(tool, {"id": INSTANCE_RUNNING})
    assert result.is_error and "did not confirm" in text_of(result)
    assert len(asked) == 1 and "credential" in asked[0] and INSTANCE_RUNNING in asked[0]
    # The question read the instance it names (its name and state), never the credential.
    read = {(r.method, r.path) for r in sandbox["exoscale"].requests}
    assert read <= {("GET", f"/ch-gva-2/v2/instance/{INSTANCE_RUNNING}")}
    async with Client(build_server(settings), mode="legacy", elicitation_callback=accepting) as client:
        result = await client.call_tool(tool, {"id": INSTANCE_RUNNING})
    assert not result.is_error, text_of(result)


async def test_refusing_fallback_covers_credentials(sandbox: Sandbox) -> None:
    server = build_server(Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_CONFIRM_FALLBACK": "refuse"}))
    async with Client(server) as client:  # declares no elicitation
        result = await client.call_tool(CREDENTIALS[0], {"id": INSTANCE_RUNNING})
    assert result.is_error and "--confirm-fallback allow" in text_of(result)


def secrets_of(sandbox: Sandbox) -> list[str]:
    incus = sandbox["incus"]
    values = [str((op.metadata or {}).get("secret")) for op in incus.operations.values() if op.metadata]
    values += [fd for op in incus.operations.values() if op.exec for fd in op.exec.fds.values()]
    return [value for value in values if value and value != "None"]


@pytest.mark.parametrize("read_only", [False, True])
async def test_incus_operation_secrets_are_hidden(sandbox: Sandbox, read_only: bool) -> None:
    env = {**sandbox.env, "MCP_CLOUDOPS_READ_ONLY": "1" if read_only else "0"}
    secrets = secrets_of(sandbox)
    assert len(secrets) >= 5  # the token's secret and the exec's four fds
    async with Client(build_server(Settings.from_env(env))) as client:
        listing = await client.call_tool("get-operations-2", {})
        token = await client.call_tool("get-operation-state", {"id": sandbox["incus"].seeded["token"]})
        execution = await client.call_tool("get-operation-state", {"id": sandbox["incus"].seeded["exec"]})
    said = "".join(text_of(r) + json.dumps(r.structured_content) for r in (listing, token, execution))
    for secret in secrets:
        assert secret not in said
    assert token.structured_content["metadata"]["secret"] == HIDDEN
    assert set(execution.structured_content["metadata"]["fds"]) == {"0", "1", "2", "control"}


async def test_the_exec_stream_still_works_with_hidden_secrets(sandbox: Sandbox) -> None:
    """get-websocket-stream without a secret reads the fds inside the server."""
    async with Client(build_server(Settings.from_env(sandbox.env))) as client:
        result = await client.call_tool("get-websocket-stream", {"id": sandbox["incus"].seeded["exec"]})
    assert not result.is_error, text_of(result)
    assert "Linux" in result.structured_content["stdout"]


async def test_show_operation_secrets_shows_them(sandbox: Sandbox) -> None:
    env = {**sandbox.env, "MCP_CLOUDOPS_SHOW_OPERATION_SECRETS": "1"}
    async with Client(build_server(Settings.from_env(env))) as client:
        token = await client.call_tool("get-operation-state", {"id": sandbox["incus"].seeded["token"]})
    assert token.structured_content["metadata"]["secret"] in secrets_of(sandbox)
