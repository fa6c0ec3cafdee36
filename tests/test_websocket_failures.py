"""A websocket session that fails is a tool error (websocket.py), never an empty success: one that never
reached its target, an exec that already ran, or an exit code that could not be read names what to check.
Through the MCP client against the sandbox, whose Portainer drops such sessions after the upgrade as the real
one does."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client
from support import call, refused

from mcp_cloudops.sandbox.runner import Sandbox

pytestmark = pytest.mark.anyio

UNKNOWN = "ab" * 32  # a well-formed Docker id that names nothing


async def test_attach_to_an_unknown_container_is_an_error(client: Client) -> None:
    text = await refused(client, "attach-websocket", {"endpointId": 1, "id": UNKNOWN, "idle_seconds": 0.5})
    assert "before any output" in text and "close code 1006" in text
    assert f"id='{UNKNOWN}' (list them with list-docker-containers)" in text


async def test_attach_to_a_stopped_container_is_an_error(sandbox: Sandbox, client: Client) -> None:
    db = sandbox["portainer"].container_ids["db"]
    text = await refused(client, "attach-websocket", {"endpointId": 1, "id": db, "idle_seconds": 0.5})
    assert db in text and "not found, is not running" in text


async def test_an_unknown_exec_is_an_error_and_nothing_is_opened(sandbox: Sandbox, client: Client) -> None:
    sim = sandbox["portainer"]
    before = len(sim.requests)
    text = await refused(client, "execute-websocket", {"endpointId": 1, "id": UNKNOWN})
    assert f"No such exec instance: {UNKNOWN}" in text and "Nothing was run." in text
    assert [r.path for r in sim.requests[before:]] == [f"/api/endpoints/1/docker/exec/{UNKNOWN}/json"]


async def test_an_unknown_pod_is_an_error(client: Client) -> None:
    args = {"endpointId": 2, "namespace": "default", "podName": "nope-0", "containerName": "web", "command": "ls"}
    text = await refused(client, "execute-websocket-pod", {**args, "idle_seconds": 0.5})
    assert text.endswith(
        "before any output. Namespace default has no pod nope-0: list its pods with list-kubernetes-pods."
    )


async def test_rerunning_a_finished_exec_says_it_already_ran(sandbox: Sandbox, client: Client) -> None:
    sim = sandbox["portainer"]
    first = await call(client, "execute-websocket", {"endpointId": 1, "id": sim.exec_id})
    assert first["exit_code"] == 0
    text = await refused(client, "execute-websocket", {"endpointId": 1, "id": sim.exec_id})
    assert "already ran (exit_code=0, running=False)" in text and sim.exec_id in text
    assert "Create a new exec instance and run that." in text


async def test_a_silent_exec_is_still_a_success(sandbox: Sandbox, client: Client) -> None:
    """No output and a dropped socket is how every Portainer exec ends: the exit code tells it ran."""
    sim = sandbox["portainer"]
    exec_id = sim.create_exec(1, sim.container_id, ["false"])
    result = await call(client, "execute-websocket", {"endpointId": 1, "id": exec_id})
    assert (result["output"], result["exit_code"]) == ("", 1)


async def test_an_exec_whose_container_stopped_did_not_run(sandbox: Sandbox, client: Client) -> None:
    sim = sandbox["portainer"]
    exec_id = sim.create_exec(1, sim.container_id, ["echo", "hi"])
    sim.endpoints[1].containers[sim.container_id].state = "exited"
    text = await refused(client, "execute-websocket", {"endpointId": 1, "id": exec_id})
    assert "nothing ran" in text and "exit_code=None" in text and exec_id in text


async def test_a_failed_follow_up_fails_the_call_and_keeps_the_output(sandbox: Sandbox, client: Client) -> None:
    """The exec instance vanishes while it runs (its container was removed): the exit code is unknown."""
    sim = sandbox["portainer"]
    exec_id = sim.create_exec(1, sim.container_id, ["sh", "-c", "echo started; sleep 0.5"])
    instance = sim.get_exec(exec_id)
    outcome: list[str] = []

    async def run() -> None:
        outcome.append(await refused(client, "execute-websocket", {"endpointId": 1, "id": exec_id}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(10):
            while not instance.running:
                await anyio.sleep(0.01)
        del sim.endpoints[1].execs[exec_id]
    (text,) = outcome
    assert "exit_code, running are unknown" in text and f"No such exec instance: {exec_id}" in text
    assert "output ends: 'started" in text
