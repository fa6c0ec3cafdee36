"""Long-running operations: waited for with progress, stopped on cancel, never an error just for time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest
from mcp import Client

from mcp_cloudops.operations import resource_path, the_operation
from mcp_cloudops.registry import load_registry
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.sandbox.exoscale import INSTANCE_RUNNING, ExoscaleSimulator
from mcp_cloudops.sandbox.incus import IncusSimulator
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()
EXOSCALE = REGISTRY.providers["exoscale"]
INCUS = REGISTRY.providers["incus"]
OP_ID = "3c5e3b0e-8a4a-4d7e-9f5e-1f2a3b4c5d6e"


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


def test_an_incus_answer_holds_its_operation_under_metadata() -> None:
    """tools.yaml `operation.answer`: an async answer is {operation: URL, metadata: the operation}."""
    tool = REGISTRY.by_name["update-instance-state"]
    op = {"id": OP_ID, "status": "Running"}
    assert the_operation(INCUS, tool, {"operation": f"/1.0/operations/{OP_ID}", "metadata": op}) == op
    exoscale_op = {"id": OP_ID, "state": "pending"}  # no `answer`: the whole answer is the operation
    assert the_operation(EXOSCALE, REGISTRY.by_name["stop-compute-instance"], exoscale_op) == exoscale_op


@pytest.mark.parametrize(
    "answer",
    [
        {"operation": f"/1.0/operations/{OP_ID}"},  # no metadata
        {"operation": "", "metadata": None},
        {"metadata": {"status": "Running"}},  # an operation without id
        {"metadata": {"id": "", "status": "Running"}},
        {"metadata": [OP_ID]},
        [{"id": OP_ID}],
        "done",
        None,
    ],
)
def test_an_answer_without_an_operation_says_to_call_with_wait_false(answer: object) -> None:
    with pytest.raises(UpstreamError) as refused:
        the_operation(INCUS, REGISTRY.by_name["exec-instance"], answer)
    message = str(refused.value)
    assert "Incus answered exec-instance without an operation to follow" in message and "wait=false" in message


def test_a_provider_without_operations_cannot_be_followed() -> None:
    with pytest.raises(UpstreamError, match="Scaleway operations cannot be followed"):
        the_operation(REGISTRY.providers["scaleway"], REGISTRY.by_name["list-instances"], {"id": OP_ID})


def incus_requests(sandbox: Sandbox, op_id: str) -> tuple[list[str], int]:
    """The timeouts of every /wait on `op_id`, and how many plain polls of it there were."""
    path = f"/1.0/operations/{op_id}"
    requests = sandbox["incus"].requests
    waits = [r.query["timeout"][0] for r in requests if r.path == f"{path}/wait"]
    return waits, sum(1 for r in requests if r.path == path)


async def test_an_incus_wait_uses_the_daemons_own_wait_not_polls() -> None:
    async for sandbox, client in connect([IncusSimulator(seed=False)]):
        with anyio.fail_after(15):
            result = await client.call_tool("update-instance-state", {"name": "c2", "action": "start", "wait": True})
        assert not result.is_error, result.content[0].text
        data = result.structured_content
        assert data == {"status": "Running", "operation_id": data["operation_id"]}  # read back after the change
        waits, polls = incus_requests(sandbox, data["operation_id"])
        assert waits and all(0 < int(timeout) <= 10 for timeout in waits) and polls == 0
        listing = (await client.call_tool("list-instances", {})).structured_content["result"]
        assert {i["name"]: i["status"] for i in listing}["c2"] == "Running"


async def test_an_incus_wait_that_runs_out_of_time_says_how_to_go_on() -> None:
    async for sandbox, client in connect([IncusSimulator(seed=False)]):
        started = time.monotonic()
        with anyio.fail_after(15):  # `yes` outruns the output the sandbox keeps: it runs until ended
            result = await client.call_tool("exec-instance", {"name": "c1", "command": ["yes"], "timeout_seconds": 1.5})
        assert time.monotonic() - started < 5
        assert not result.is_error, result.content[0].text
        data = result.structured_content
        op_id = data["operation"]["id"]
        assert data["done"] is False and data["operation"]["status"] == "Running"
        assert f"call wait-operation with id {op_id}" in data["note"]
        assert "stdout" not in data  # nothing is read from an operation still running
        waits, polls = incus_requests(sandbox, op_id)
        assert waits and polls == 0


async def test_a_failed_incus_operation_names_the_tools_that_list_its_resource() -> None:
    async for sandbox, client in connect([IncusSimulator(seed=False)]):
        with anyio.fail_after(15):
            result = await client.call_tool("update-instance-state", {"name": "c1", "action": "start", "wait": True})
        text = result.content[0].text
        assert result.is_error, text
        assert "for update-instance-state ended in Failure (The instance is already running)" in text
        assert "read the resource's current state (list-instances) before trying again" in text
        incus = sandbox["incus"]
        assert isinstance(incus, IncusSimulator) and incus.instances["c1"]["status"] == "Running"


async def test_an_incus_answer_without_an_operation_is_a_tool_error_through_the_server() -> None:
    async for sandbox, client in connect([IncusSimulator(seed=False)]):
        sandbox["incus"].fail_next(200, {"type": "sync", "status": "Success", "status_code": 200, "operation": "",
                                         "error_code": 0, "error": "", "metadata": {}})  # fmt: skip
        with anyio.fail_after(15):
            result = await client.call_tool("update-instance-state", {"name": "c2", "action": "start", "wait": True})
        text = result.content[0].text
        assert result.is_error and "without an operation to follow" in text and "wait=false" in text
        assert len(sandbox["incus"].requests) == 1  # nothing was polled
