"""Destructive tools ask first through elicitation, in both protocol eras; others never ask."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import ElicitResult

from mcp_cloudops.confirmation import Remembered, asks, needed, remember_key
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import exoscale
from mcp_cloudops.sandbox.exoscale import INSTANCE_STOPPED
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.snapshots import ask_each, questions_text

pytestmark = pytest.mark.anyio
MODES = ["legacy", "auto"]
DELETE = ("delete-compute-instance", {"id": INSTANCE_STOPPED})
ACTIONS = ["start", "stop", "restart", "freeze", "unfreeze"]


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
            await client.call_tool("start-compute-instance", {"id": "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000002"})
        ).is_error
        container = sandbox["portainer"].container_id
        created = await client.call_tool("create-docker-exec", {"endpointId": 1, "id": container, "Cmd": ["ls"]})
        assert not created.is_error  # asked only when it sets what Docker never reports again (Env, WorkingDir)
    assert asked == []


def state_changes(sandbox: Sandbox) -> list[str]:
    """The action of every PUT /state the Incus sandbox received, in order."""
    return [r.json()["action"] for r in sandbox["incus"].requests if r.method == "PUT" and r.path.endswith("/state")]


def test_confirm_only_asks_only_for_the_values_it_names() -> None:
    spec = load_registry().by_name["update-instance-state"]
    assert [action for action in ACTIONS if asks(spec, {"name": "c1", "action": action})] == ["stop", "restart"]
    assert asks(load_registry().by_name["delete-compute-instance"], {"id": INSTANCE_STOPPED})  # no confirm_only


@pytest.mark.parametrize("mode", MODES)
async def test_stopping_an_instance_is_asked_once_and_shows_the_arguments(sandbox: Sandbox, mode: str) -> None:
    asked: list[str] = []
    server = build_server(Settings.from_env(sandbox.env))
    async with Client(server, mode=mode, elicitation_callback=answering("accept", asked=asked)) as client:
        with anyio.fail_after(15):
            result = await client.call_tool("update-instance-state", {"name": "c1", "action": "stop", "force": True})
    assert not result.is_error, result.content[0].text
    assert len(asked) == 1
    assert "(update-instance-state)" in asked[0]
    assert '- name: "c1"' in asked[0] and '- action: "stop"' in asked[0] and "- force: true" in asked[0]
    assert state_changes(sandbox) == ["stop"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "action"), [("c2", "start"), ("c1", "freeze")])
async def test_starting_or_freezing_is_never_asked_and_runs(
    sandbox: Sandbox, mode: str, name: str, action: str
) -> None:
    asked: list[str] = []
    server = build_server(Settings.from_env(sandbox.env))
    async with Client(server, mode=mode, elicitation_callback=answering("decline", asked=asked)) as client:
        with anyio.fail_after(15):
            result = await client.call_tool("update-instance-state", {"name": name, "action": action, "wait": True})
    assert not result.is_error, result.content[0].text
    assert asked == [] and state_changes(sandbox) == [action]
    assert result.structured_content["status"] in ("Running", "Frozen", "Stopped")  # read back after the change


async def test_a_declined_restart_changes_nothing(sandbox: Sandbox) -> None:
    asked: list[str] = []
    server = build_server(Settings.from_env(sandbox.env))
    async with Client(server, elicitation_callback=answering("decline", asked=asked)) as client:
        with anyio.fail_after(15):
            result = await client.call_tool("update-instance-state", {"name": "c1", "action": "restart"})
    assert result.is_error and "nothing was changed" in result.content[0].text
    assert len(asked) == 1 and state_changes(sandbox) == []


@pytest.mark.parametrize("mode", MODES)
async def test_under_fallback_refuse_only_the_asked_actions_are_refused(sandbox: Sandbox, mode: str) -> None:
    refusing = build_server(Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_CONFIRM_FALLBACK": "refuse"}))
    async with Client(refusing, mode=mode) as client:
        with anyio.fail_after(15):
            stop = await client.call_tool("update-instance-state", {"name": "c1", "action": "stop"})
            unfreeze = await client.call_tool(
                "update-instance-state", {"name": "c1", "action": "unfreeze", "wait": False}
            )
            start = await client.call_tool("update-instance-state", {"name": "c2", "action": "start"})
    assert stop.is_error and "--confirm-fallback allow" in stop.content[0].text
    assert not unfreeze.is_error and not start.is_error, (unfreeze.content[0].text, start.content[0].text)
    assert state_changes(sandbox) == ["unfreeze", "start"]


# --- every question, as a person reads it (issue 22 item 3) ------------------------------------------

PLACEHOLDERS = ("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002")


async def test_every_question_names_its_target_and_consequence(sandbox: Sandbox) -> None:
    """Each tool that asks is asked once (mcp_cloudops/sandbox/asking_calls.yaml's call of it), its target read
    from the upstream and named as people know it, its consequence in tools.yaml's words; declined, nothing
    changes. The text is reviewed like tools/list: tests/snapshots/questions.txt, which `mcp-cloudops generate`
    writes (test_mirrors.py fails while it differs)."""
    questions = await ask_each(sandbox, load_registry())
    assert set(questions) == {tool.name for tool in load_registry().tools if needed(tool)}
    assert deletes(sandbox) == 0 and state_changes(sandbox) == []
    text = questions_text(questions)
    assert "cannot be undone" not in text.split("## stop-compute-instance")[1].split("##")[0]
    assert "Confirm a destructive change (delete-compute-instance)" in questions["delete-compute-instance"]


async def test_an_unknown_target_is_an_error_and_nobody_is_asked(sandbox: Sandbox) -> None:
    asked: list[str] = []
    server = build_server(Settings.from_env(sandbox.env))
    async with Client(server, elicitation_callback=answering("accept", asked=asked)) as client:
        result = await client.call_tool("delete-compute-instance", {"id": PLACEHOLDERS[0]})
    assert asked == [] and deletes(sandbox) == 0
    assert result.is_error and result.content[0].text.startswith(
        "delete-compute-instance was refused and nothing was changed: what it acts on could not be read to show "
        "the user first. Exoscale returned HTTP 404 for delete-compute-instance:"
    )
    assert "Check id (list them with list-compute-instances)" in result.content[0].text


# --- --confirm-remember (issue 22 item 3) ---------------------------------------------------------------


def remembering(asked: list[str], remember: bool = True) -> Callable[..., Awaitable[Any]]:
    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True, "remember": remember})

    return callback


async def test_a_remembered_yes_covers_the_same_target_for_its_seconds(sandbox: Sandbox, tmp_path: Path) -> None:
    asked: list[str] = []
    journal = tmp_path / "audit.jsonl"
    env = {**sandbox.env, "MCP_CLOUDOPS_CONFIRM_REMEMBER": "60", "MCP_CLOUDOPS_AUDIT_LOG": str(journal)}
    async with Client(build_server(Settings.from_env(env)), elicitation_callback=remembering(asked)) as client:
        first = await client.call_tool("exec-instance", {"name": "c1", "command": ["echo", "one"]})
        second = await client.call_tool("exec-instance", {"name": "c1", "command": ["echo", "two"]})
        elsewhere = await client.call_tool("exec-instance", {"name": "vm1", "command": ["echo", "three"]})
    assert not first.is_error and not second.is_error and not elsewhere.is_error
    assert len(asked) == 2 and '"vm1"' in asked[1]  # c1 once; another instance is asked anew
    assert asked[0].endswith(
        'Answer remember: true to also allow any command in the Incus instance "c1" for 60 s, unasked.'
    )
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert events.count("remembered") == 1 and events.index("remembered") == 2  # after the first call's two


async def test_a_credential_is_never_remembered(sandbox: Sandbox) -> None:
    asked: list[str] = []
    env = {**sandbox.env, "MCP_CLOUDOPS_CONFIRM_REMEMBER": "60"}
    async with Client(build_server(Settings.from_env(env)), elicitation_callback=remembering(asked)) as client:
        for _ in range(2):
            await client.call_tool("reveal-password-used-during-instance", {"id": exoscale.INSTANCE_RUNNING})
    assert len(asked) == 2 and "remember" not in asked[0]


async def test_without_remember_every_call_is_asked(sandbox: Sandbox) -> None:
    asked: list[str] = []
    env = {**sandbox.env, "MCP_CLOUDOPS_CONFIRM_REMEMBER": "60"}
    async with Client(build_server(Settings.from_env(env)), elicitation_callback=remembering(asked, False)) as client:
        for _ in range(2):
            await client.call_tool("exec-instance", {"name": "c1", "command": ["true"]})
    assert len(asked) == 2


def test_a_remembered_yes_expires_and_keys_on_who_and_what() -> None:
    spec = load_registry().by_name["delete-compute-instance"]
    remembered = Remembered(30)
    key = remember_key(spec, {"id": exoscale.INSTANCE_RUNNING, "zone": "ch-gva-2"}, "alice")
    remembered.remember(key, now=100)
    assert remembered.covers(key, now=129) and not remembered.covers(key, now=131)
    assert not remembered.covers(remember_key(spec, {"id": exoscale.INSTANCE_RUNNING, "zone": "ch-gva-2"}, "bob"), 110)
    assert not remembered.covers(remember_key(spec, {"id": INSTANCE_STOPPED, "zone": "ch-gva-2"}, "alice"), 110)


def test_remembering_is_refused_with_stateless_replicas() -> None:
    with pytest.raises(ConfigError, match="MCP_CLOUDOPS_CONFIRM_REMEMBER keeps a person's yes in this process"):
        Settings.from_env({"MCP_CLOUDOPS_CONFIRM_REMEMBER": "60", "MCP_CLOUDOPS_STATELESS": "1"})
