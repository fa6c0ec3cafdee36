"""Destructive tools ask first through elicitation, in both protocol eras; others never ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitResult

from mcp_cloudops.sandbox.exoscale import INSTANCE_STOPPED
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
MODES = ["legacy", "auto"]
DELETE = ("delete-compute-instance", {"id": INSTANCE_STOPPED})


def answering(action: str, confirm: bool = True, asked: list[str] | None = None) -> Callable[..., Awaitable[Any]]:
    async def callback(context: Any, params: Any) -> ElicitResult:
        if asked is not None:
            asked.append(params.message)
        return ElicitResult(action=action, content={"confirm": confirm} if action == "accept" else None)

    return callback


def deletes(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox["exoscale"].requests if r.method == "DELETE")


@pytest.mark.parametrize("mode", MODES)
async def test_confirmed_destructive_call_goes_ahead(sandbox: Sandbox, mode: str) -> None:
    asked: list[str] = []
    server = build_server(Settings.from_env(sandbox.env))
    async with Client(server, mode=mode, elicitation_callback=answering("accept", asked=asked)) as client:
        result = await client.call_tool(*DELETE)
    assert not result.is_error, result.content[0].text
    assert len(asked) == 1 and "delete-compute-instance" in asked[0] and INSTANCE_STOPPED in asked[0]
    assert deletes(sandbox) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("action", "confirm"), [("decline", True), ("cancel", True), ("accept", False)])
async def test_unconfirmed_destructive_call_changes_nothing(sandbox: Sandbox, mode: str, action: str, confirm: bool):
    server = build_server(Settings.from_env(sandbox.env))
    async with Client(server, mode=mode, elicitation_callback=answering(action, confirm)) as client:
        result = await client.call_tool(*DELETE)
        assert result.is_error and "nothing was changed" in result.content[0].text
        assert not (await client.call_tool("list-compute-instances", {})).is_error
    assert deletes(sandbox) == 0


@pytest.mark.parametrize("mode", MODES)
async def test_client_without_elicitation_gets_the_fallback(sandbox: Sandbox, mode: str) -> None:
    refusing = build_server(Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_CONFIRM_FALLBACK": "refuse"}))
    async with Client(refusing, mode=mode) as client:
        result = await client.call_tool(*DELETE)
    assert result.is_error and "--confirm-fallback allow" in result.content[0].text
    assert deletes(sandbox) == 0
    async with Client(build_server(Settings.from_env(sandbox.env)), mode=mode) as client:
        assert not (await client.call_tool(*DELETE)).is_error
    assert deletes(sandbox) == 1


async def test_non_destructive_tools_never_ask(sandbox: Sandbox) -> None:
    asked: list[str] = []
    server = build_server(Settings.from_env(sandbox.env))
    async with Client(server, elicitation_callback=answering("decline", asked=asked)) as client:
        assert not (await client.call_tool("list-compute-instances", {})).is_error
        assert not (
            await client.call_tool("stop-compute-instance", {"id": "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000001"})
        ).is_error
    assert asked == []
