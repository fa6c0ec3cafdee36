"""Long-running operations: waited for with progress, stopped on cancel, never an error just for time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest
from mcp import Client

from mcp_cloudops.operations import resource_path
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox.exoscale import INSTANCE_RUNNING, ExoscaleSimulator
from mcp_cloudops.sandbox.incus import IncusSimulator
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
EXOSCALE = load_registry().providers["exoscale"]


class Progress:
    def __init__(self) -> None:
        self.events: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.events.append((progress, total, message))


async def connect(sims: list, **env: str) -> AsyncIterator[tuple[Sandbox, Client]]:
    async with run_sandbox(sims) as sandbox, Client(build_server(Settings.from_env({**sandbox.env, **env}))) as client:
        yield sandbox, client


@pytest.fixture
async def exoscale() -> AsyncIterator[tuple[Sandbox, Client]]:
    async for pair in connect([ExoscaleSimulator(operation_delay=1.2)]):
        yield pair


def operation_polls(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox["exoscale"].requests if "/operation/" in r.path)


async def test_stop_with_wait_returns_the_final_operation_and_the_instance(exoscale) -> None:
    sandbox, client = exoscale
    progress = Progress()
    with anyio.fail_after(20):
        result = await client.call_tool("stop-compute-instance", {"id": INSTANCE_RUNNING, "wait": True},
                                        progress_callback=progress)  # fmt: skip
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert data["done"] is True and data["operation"]["state"] == "success"
    assert data["resource"]["id"] == INSTANCE_RUNNING and data["resource"]["state"] == "stopped"
    assert progress.events, "no progress notification reached the client"
    assert all(total == 25 for _, total, _ in progress.events) and "pending" in (progress.events[0][2] or "")
    assert operation_polls(sandbox) >= 2


async def test_without_wait_the_pending_operation_comes_back_at_once(exoscale) -> None:
    _, client = exoscale
    result = await client.call_tool("stop-compute-instance", {"id": INSTANCE_RUNNING})
    assert result.structured_content["state"] == "pending"
    followed = await client.call_tool("get-exoscale-operation", {"id": result.structured_content["id"]})
    assert followed.structured_content["id"] == result.structured_content["id"]


async def test_a_wait_that_runs_out_of_time_is_not_an_error() -> None:
    async for _, client in connect([ExoscaleSimulator(operation_delay=30)]):
        result = await client.call_tool(
            "stop-compute-instance", {"id": INSTANCE_RUNNING, "wait": True, "timeout_seconds": 1.5}
        )
        assert not result.is_error
        data = result.structured_content
        assert data["done"] is False and data["operation"]["state"] == "pending"
        assert "get-exoscale-operation" in data["note"] and data["operation"]["id"] in data["note"]


async def test_a_failed_operation_is_a_tool_error(exoscale) -> None:
    sandbox, client = exoscale
    sandbox["exoscale"].fail_next_operation(reason="incorrect", message="The instance is busy")
    result = await client.call_tool("stop-compute-instance", {"id": INSTANCE_RUNNING, "wait": True})
    text = result.content[0].text
    assert result.is_error and "ended in failure (incorrect: The instance is busy)" in text


async def test_cancelling_mid_wait_stops_polling_quickly() -> None:
    async for sandbox, client in connect([ExoscaleSimulator(operation_delay=30)]):
        started = time.monotonic()
        with anyio.move_on_after(1.0):
            await client.call_tool("stop-compute-instance", {"id": INSTANCE_RUNNING, "wait": True})
        assert time.monotonic() - started < 2
        polls = operation_polls(sandbox)
        await anyio.sleep(2.5)
        assert operation_polls(sandbox) == polls, "the server kept polling after the client cancelled"
        assert not (await client.call_tool("list-compute-instances", {})).is_error


async def test_incus_forever_wait_is_served_in_chunks_and_capped() -> None:
    async for sandbox, client in connect([IncusSimulator(task_seconds=60)], MCP_CLOUDOPS_MAX_WAIT="2.5"):
        task = sandbox["incus"].seeded["task"]
        progress = Progress()
        started = time.monotonic()
        with anyio.fail_after(15):
            result = await client.call_tool("wait-operation", {"id": task}, progress_callback=progress)
        assert 2 <= time.monotonic() - started < 6
        assert not result.is_error and result.structured_content["status"] == "Running"
        assert "wait-operation" in result.structured_content["note"]
        waits = [r for r in sandbox["incus"].requests if r.path.endswith("/wait")]
        assert len(waits) >= 2 and all(int(r.query["timeout"][0]) <= 10 for r in waits)
        assert progress.events


async def test_incus_wait_returns_when_the_operation_ends() -> None:
    async for sandbox, client in connect([IncusSimulator(task_seconds=1)]):
        task = sandbox["incus"].seeded["task"]
        with anyio.fail_after(15):
            result = await client.call_tool("wait-operation", {"id": task, "timeout": 30})
        assert result.structured_content["status"] == "Success" and "note" not in result.structured_content


def test_resource_links_are_followed_only_on_our_api() -> None:
    spec = EXOSCALE.operation
    base = "https://api-ch-gva-2.exoscale.com/v2"
    op = {"reference": {"link": f"/v2/instance/{INSTANCE_RUNNING}"}}
    assert resource_path(spec, op, base) == f"/instance/{INSTANCE_RUNNING}"
    absolute = {"reference": {"link": f"https://api-ch-gva-2.exoscale.com/v2/instance/{INSTANCE_RUNNING}"}}
    assert resource_path(spec, absolute, base) == f"/instance/{INSTANCE_RUNNING}"
    assert resource_path(spec, {"reference": {"link": "https://evil.example/v2/instance/x"}}, base) is None
    assert resource_path(spec, {"reference": {"link": "/v2/instance/../../x"}}, base) == "/instance/%2E%2E/%2E%2E/x"
    assert resource_path(spec, {"reference": {}}, base) is None
