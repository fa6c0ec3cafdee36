"""What a finished operation came to (outcome.py): files read only where the tool says they live, within
one max_bytes budget, and deleted afterwards; a command's output comes back, never a path to it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fakes import Hostile, HostileIncus, answering, serving
from mcp import Client
from starlette.requests import Request
from starlette.responses import Response

from mcp_cloudops.outcome import file_path
from mcp_cloudops.sandbox.incus import IncusSimulator, Operation, async_, error
from mcp_cloudops.sandbox.runner import Sandbox

UNDER = "/1.0/instances/{name}/logs/"
ARGS = {"name": "c1", "command": ["true"], "max_bytes": 100}
LOGS = "/1.0/instances/c1/logs"
EXTRA = ("output_truncated", "operation_id")  # a brief outcome (tools.yaml outcome.brief): no whole operation


def finished_exec(output: dict[str, Any] | None, return_code: int = 0) -> Operation:
    """An exec operation that has already ended, naming its output files as `output` says."""
    metadata: dict[str, Any] = {"return": return_code}
    if output is not None:
        metadata["output"] = output
    op = Operation(cls="task", description="Executing command", metadata=metadata)
    op.status_code = 200
    return op


def answered(op: Operation) -> bytes:
    """The async envelope a POST /exec answers with, holding `op` as it is now."""
    return bytes(async_(op).body)


def logs(sandbox: Sandbox) -> list[tuple[str, str]]:
    """(method, path) of every request the Incus sandbox got for an exec log file."""
    return [(r.method, r.path) for r in sandbox["incus"].requests if "/logs/" in r.path]


async def run(client: Client, arguments: dict[str, Any], limit: float = 15) -> Any:
    with anyio.fail_after(limit):
        return await client.call_tool("exec-instance", arguments)


# --- file_path: where a file may be read from ---------------------------------------------------------


def test_a_file_under_the_tools_place_is_rebuilt_with_each_segment_encoded() -> None:
    assert file_path(f"{LOGS}/exec-output/exec_1.stdout", UNDER, ARGS) == f"{LOGS}/exec-output/exec_1%2Estdout"
    assert file_path(f"{LOGS}/a b", UNDER, ARGS) == f"{LOGS}/a%20b"
    # An encoded dot-segment stays a name: its % is encoded again, so it cannot climb out.
    assert file_path(f"{LOGS}/%2E%2E/secret", UNDER, ARGS) == f"{LOGS}/%252E%252E/secret"


def test_the_template_is_filled_from_the_calls_arguments() -> None:
    assert file_path("/1.0/instances/vm1/logs/x", UNDER, {"name": "vm1"}) == "/1.0/instances/vm1/logs/x"
    assert file_path("/1.0/instances/vm1/logs/x", UNDER, {"name": "c1"}) is None  # another instance's logs
    assert file_path("/1.0/instances/7/logs/x", UNDER, {"name": 7}) == "/1.0/instances/7/logs/x"


@pytest.mark.parametrize(
    "value",
    [
        f"{LOGS}/../../c2/logs/x",  # dot-segments
        f"{LOGS}/./x",
        f"{LOGS}/x/..",
        f"{LOGS}//x",  # an empty segment
        f"//evil.example{LOGS}/x",  # a network path: another host
        f"{LOGS}/x?secret=1",
        f"{LOGS}/x#frag",
        "https://evil.example/1.0/instances/c1/logs/x",
        "1.0/instances/c1/logs/x",  # not absolute
        "/1.0/instances/c2/logs/x",  # another instance
        "/1.0/instances/c1/log/x",
        "/1.0/instances/c1/files/etc/passwd",
        "/1.0/instances/./c1/logs/x",
        "/etc/passwd",
        "/1.0/instances",  # shorter than the place itself
        LOGS,  # the place itself, nothing after it
        f"{LOGS}/",
        "",
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    assert file_path(value, UNDER, ARGS) is None


@pytest.mark.parametrize(
    "value", [None, 1, 1.5, True, [f"{LOGS}/x"], {"path": f"{LOGS}/x"}, b"/1.0/instances/c1/logs/x"]
)
def test_a_path_that_is_not_a_string_is_refused(value: Any) -> None:
    assert file_path(value, UNDER, ARGS) is None


# --- exec-instance against the sandbox: the outcome read, then cleaned up ----------------------------


@pytest.mark.anyio
async def test_exec_returns_stdout_stderr_and_exit_code_and_deletes_its_logs(sandbox: Sandbox, client: Client) -> None:
    result = await run(client, {"name": "c1", "command": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert (data["stdout"], data["stderr"], data["exit_code"]) == ("out\n", "err\n", 3)
    assert data["output_truncated"] is False and set(data) == {"stdout", "stderr", "exit_code", *EXTRA}
    read = [path for method, path in logs(sandbox) if method == "GET"]
    deleted = [path for method, path in logs(sandbox) if method == "DELETE"]
    assert len(read) == 2 and deleted == read  # each file read once, then deleted
    assert all(path.startswith(f"{LOGS}/exec-output/") for path in read)
    incus = sandbox["incus"]
    assert isinstance(incus, IncusSimulator) and incus.exec_outputs == {}


@pytest.mark.anyio
async def test_max_bytes_caps_stdout_and_stderr_together(sandbox: Sandbox, client: Client) -> None:
    result = await run(client, {"name": "c1", "command": ["seq", "1", "1000"], "max_bytes": 100})
    data = result.structured_content
    assert not result.is_error and data["output_truncated"] is True
    assert len(data["stdout"]) == 100 and "1\n2\n3\n".startswith(data["stdout"][:6]) and data["stderr"] == ""

    script = "echo hello; seq 1 1000 >&2"  # 6 bytes of stdout leave 4 of the budget for stderr
    data = (await run(client, {"name": "c1", "command": ["sh", "-c", script], "max_bytes": 10})).structured_content
    assert (data["stdout"], data["stderr"], data["output_truncated"]) == ("hello\n", "1\n2\n", True)

    data = (await run(client, {"name": "c1", "command": ["echo", "hello"], "max_bytes": 6})).structured_content
    assert (data["stdout"], data["output_truncated"]) == ("hello\n", False)  # exactly the budget is not cut

    incus = sandbox["incus"]
    assert isinstance(incus, IncusSimulator) and incus.exec_outputs == {}  # truncated files are deleted too


@pytest.mark.anyio
async def test_without_wait_the_operation_comes_back_and_nothing_is_read(sandbox: Sandbox, client: Client) -> None:
    result = await run(client, {"name": "c1", "command": ["echo", "hi"], "wait": False})
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert set(data) == {"operation", "metadata"} and data["metadata"]["status"] == "Running"
    assert data["operation"] == f"/1.0/operations/{data['metadata']['id']}"
    assert [(r.method, r.path) for r in sandbox["incus"].requests] == [("POST", "/1.0/instances/c1/exec")]
    incus = sandbox["incus"]
    assert isinstance(incus, IncusSimulator) and len(incus.exec_outputs) == 2  # left for nobody to read


@pytest.mark.anyio
async def test_an_exec_that_ends_in_failure_is_a_tool_error(sandbox: Sandbox, client: Client) -> None:
    incus = sandbox["incus"]
    assert isinstance(incus, IncusSimulator)

    async def fail_the_exec() -> None:
        while True:  # `yes` outruns the output the sandbox keeps: it runs until ended
            running = [
                op for op in incus.operations.values() if op.cls == "task" and op.description == "Executing command"
            ]
            if running:
                incus.finish(running[0].id, status="Failure", err="Command killed")
                return
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fail_the_exec)
        result = await run(client, {"name": "c1", "command": ["yes"]})
    text = result.content[0].text
    assert result.is_error, text
    assert "exec-instance ended in Failure (Command killed)" in text and "(list-instances)" in text
    assert logs(sandbox) == []


@pytest.mark.anyio
async def test_an_exec_in_a_stopped_instance_is_a_tool_error(sandbox: Sandbox, client: Client) -> None:
    result = await run(client, {"name": "c2", "command": ["true"]})
    assert result.is_error and "Instance is not running" in result.content[0].text
    assert logs(sandbox) == []


# --- a hostile upstream naming files elsewhere --------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "elsewhere",
    [
        "/1.0/instances/c2/logs/exec-output/secret.stdout",
        "/1.0/instances/c1/logs/../../c2/files",
        "/1.0/instances/c1/files?path=/etc/shadow",
        "/etc/passwd",
        "http://evil.example/1.0/instances/c1/logs/x",
        LOGS + "/",
    ],
)
async def test_a_file_named_outside_the_logs_is_neither_read_nor_deleted(elsewhere: str) -> None:
    sim = HostileIncus()
    op = finished_exec({"1": elsewhere, "2": f"{LOGS}/exec-output/exec.stderr"})
    sim.behave = answering(answered(op), status=202)
    async with serving(sim) as (_, client):
        result = await run(client, {"name": "c1", "command": ["true"]})
    text = result.content[0].text
    assert result.is_error, text
    assert (
        f"exec-instance ran (operation {op.id})" in text and "stdout file outside /1.0/instances/{name}/logs/" in text
    )
    assert f"wait-operation with id {op.id}" in text
    assert elsewhere not in text  # the upstream's path is not echoed to the agent
    assert [(r.method, r.path) for r in sim.requests] == [("POST", "/1.0/instances/c1/exec")]


@pytest.mark.anyio
async def test_a_failing_delete_is_ignored_and_the_output_still_returned() -> None:
    sim = HostileIncus()
    op = finished_exec({"1": f"{LOGS}/exec-output/a.stdout", "2": f"{LOGS}/exec-output/a.stderr"}, return_code=1)

    async def behave(sim: Hostile, request: Request) -> Response:
        if request.method == "POST":
            return Response(answered(op), status_code=202, media_type="application/json")
        if request.method == "DELETE":
            return error(500, "permission denied")
        return Response(b"from " + request.url.path.rsplit("/", 1)[1].encode(), media_type="application/octet-stream")

    sim.behave = behave
    async with serving(sim) as (_, client):
        result = await run(client, {"name": "c1", "command": ["true"]})
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert (data["stdout"], data["stderr"], data["exit_code"]) == ("from a.stdout", "from a.stderr", 1)
    assert [r.method for r in sim.requests] == ["POST", "GET", "DELETE", "GET", "DELETE"]


@pytest.mark.anyio
async def test_an_operation_naming_no_files_gives_none_for_each_stream() -> None:
    sim = HostileIncus()
    sim.behave = answering(answered(finished_exec(None)), status=202)
    async with serving(sim) as (_, client):
        result = await run(client, {"name": "c1", "command": ["true"]})
    data = result.structured_content
    assert not result.is_error and (data["stdout"], data["stderr"], data["exit_code"]) == (None, None, 0)
    assert data["output_truncated"] is False and len(sim.requests) == 1


@pytest.mark.anyio
async def test_one_file_named_outside_the_logs_stops_every_read() -> None:
    """stdout is where it should be but stderr is not: nothing is read or deleted, so no output is
    lost to a half-done answer."""
    sim = HostileIncus()
    op = finished_exec({"1": f"{LOGS}/exec-output/exec.stdout", "2": "/1.0/instances/c2/logs/exec.stderr"})
    sim.behave = answering(answered(op), status=202)
    async with serving(sim) as (_, client):
        result = await run(client, {"name": "c1", "command": ["true"]})
    assert result.is_error and "stderr file outside" in result.content[0].text
    assert [(r.method, r.path) for r in sim.requests] == [("POST", "/1.0/instances/c1/exec")]


@pytest.mark.anyio
async def test_a_log_that_cannot_be_read_says_the_command_ran_and_its_exit_code() -> None:
    """The command ran: the error must not read like a bad argument, and it says what is unknown."""
    sim = HostileIncus()
    op = finished_exec({"1": f"{LOGS}/exec-output/gone.stdout", "2": f"{LOGS}/exec-output/gone.stderr"}, 5)

    async def behave(sim: Hostile, request: Request) -> Response:
        if request.method == "POST":
            return Response(answered(op), status_code=202, media_type="application/json")
        return error(404, "not found")

    sim.behave = behave
    async with serving(sim) as (_, client):
        result = await run(client, {"name": "c1", "command": ["true"]})
    text = result.content[0].text
    assert result.is_error
    assert f"exec-instance ran (operation {op.id}, exit_code 5), but its stdout could not be read back" in text
    assert "HTTP 404" in text and "Do not simply rerun" in text


@pytest.mark.anyio
async def test_the_read_back_carries_the_accounts_default_project(sandbox: Sandbox) -> None:
    """What a change came to is read where the change was made: the call's project, or the account's default
    (INCUS_PROJECT) where the call names none, as a restricted certificate needs (LXD refuses it elsewhere)."""
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    env = {**sandbox.env, "INCUS_PROJECT": "default", "MCP_CLOUDOPS_CONFIRM_FALLBACK": "allow"}
    async with Client(build_server(Settings.from_env(env))) as client:
        result = await client.call_tool("update-instance-state", {"name": "c2", "action": "start"})
    assert not result.is_error, result.content[0].text
    reads = [r for r in sandbox["incus"].requests if r.method == "GET" and r.path == "/1.0/instances/c2"]
    assert [r.query.get("project") for r in reads] == [["default"]]
