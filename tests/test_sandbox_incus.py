"""The Incus simulator behaves like the daemon: envelopes, listings, cancel, wait, exec websockets."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mcp_cloudops.sandbox.incus import IncusSimulator
from mcp_cloudops.sandbox.runner import run_sandbox

pytestmark = pytest.mark.anyio

ENVELOPE_KEYS = {"type", "status", "status_code", "operation", "error_code", "error", "metadata"}
OPERATION_KEYS = {
    "id",
    "class",
    "description",
    "created_at",
    "updated_at",
    "status",
    "status_code",
    "resources",
    "metadata",
    "may_cancel",
    "err",
    "location",
}


class Incus:
    """A running simulator, an HTTP client on its socket, and websocket helpers."""

    def __init__(self, sim: IncusSimulator, socket: str, client: httpx.AsyncClient) -> None:
        self.sim, self.socket, self.client = sim, socket, client

    async def get(self, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
        response = await self.client.get(path, params=params)
        return response.status_code, response.json()

    def ws(self, op: dict[str, Any], fd: str, secret: str | None = None) -> Any:
        secret = secret if secret is not None else op["metadata"]["fds"][fd]
        return unix_connect(self.socket, f"ws://incus/1.0/operations/{op['id']}/websocket?secret={secret}")


@asynccontextmanager
async def incus(**options: Any) -> AsyncIterator[Incus]:
    sim = IncusSimulator(**options)
    async with run_sandbox([sim]) as sandbox:
        socket = sandbox.env["INCUS_SOCKET"]
        transport = httpx.AsyncHTTPTransport(uds=socket)
        async with httpx.AsyncClient(transport=transport, base_url="http://incus", timeout=10) as client:
            yield Incus(sim, socket, client)


async def read_stream(ws: ClientConnection) -> tuple[bytes, list[bytes]]:
    """Binary frames up to the empty text barrier; returns the data and the frames."""
    frames: list[bytes] = []
    while True:
        message = await ws.recv()
        if isinstance(message, str):
            assert message == ""
            return b"".join(frames), frames
        frames.append(message)


async def dropped(ws: ClientConnection) -> int | None:
    """Wait until the server ends the connection; the close code the client saw (1006 = dropped)."""
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()
    return ws.close_code


def assert_envelope(body: dict[str, Any], kind: str) -> None:
    assert set(body) == ENVELOPE_KEYS
    assert body["type"] == kind


async def test_server_info_and_unknown_routes() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            status, body = await api.get("/1.0")
            assert status == 200
            assert_envelope(body, "sync")
            assert (body["status"], body["status_code"], body["operation"], body["error"]) == ("Success", 200, "", "")
            assert body["metadata"]["environment"]["server"] == "incus"

            status, body = await api.get("/1.0/nothing-here")
            assert (status, body["error_code"], body["error"]) == (404, 404, "not found")
            assert_envelope(body, "error")
            assert body["metadata"] is None

            response = await api.client.post("/1.0/operations")
            assert response.status_code == 501
            assert response.json()["error"] == "not implemented"


async def test_listing_with_and_without_recursion() -> None:
    with anyio.fail_after(10):
        async with incus() as api:
            other = api.sim.add_operation("task", project="p2")
            done = api.sim.add_operation("task", status="Success")

            status, body = await api.get("/1.0/operations")
            assert status == 200
            assert_envelope(body, "sync")
            listing = body["metadata"]
            assert set(listing) == {"running", "success"}
            assert sorted(listing["running"]) == sorted(f"/1.0/operations/{i}" for i in api.sim.seeded.values())
            assert listing["success"] == [f"/1.0/operations/{done['id']}"]

            _, body = await api.get("/1.0/operations", recursion="1")
            objects = body["metadata"]
            assert set(objects) == {"running", "success"}
            assert {op["id"] for op in objects["running"]} == set(api.sim.seeded.values())
            for op in objects["running"]:
                assert set(op) == OPERATION_KEYS
                assert (op["status"], op["status_code"], op["location"]) == ("Running", 103, "none")
                assert op["created_at"].endswith("Z")
            classes = {op["class"]: op for op in objects["running"]}
            assert classes["token"]["may_cancel"] is True
            assert set(classes["websocket"]["metadata"]["fds"]) == {"0", "1", "2", "control"}

            _, body = await api.get("/1.0/operations", project="p2")
            assert body["metadata"] == {"running": [f"/1.0/operations/{other['id']}"]}
            _, body = await api.get("/1.0/operations", **{"all-projects": "true"})
            assert len(body["metadata"]["running"]) == 4

            status, body = await api.get("/1.0/operations", project="p2", **{"all-projects": "true"})
            assert status == 400
            assert_envelope(body, "error")
            assert body["error_code"] == 400

            _, body = await api.get("/1.0/operations", project="empty")
            assert body["metadata"] == {}


async def test_unknown_operation_is_404_everywhere() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            for method, path in [
                ("GET", "/1.0/operations/nope"),
                ("DELETE", "/1.0/operations/nope"),
                ("GET", "/1.0/operations/nope/wait?timeout=0"),
            ]:
                response = await api.client.request(method, path)
                body = response.json()
                assert response.status_code == 404
                assert body == {
                    "type": "error",
                    "status": "",
                    "status_code": 0,
                    "operation": "",
                    "error_code": 404,
                    "error": "Operation not found",
                    "metadata": None,
                }


async def test_cancel_semantics_and_finished_operations_vanish() -> None:
    with anyio.fail_after(10):
        async with incus(linger=0.3) as api:
            token, task = api.sim.seeded["token"], api.sim.seeded["task"]

            response = await api.client.delete(f"/1.0/operations/{token}")
            assert response.status_code == 200
            assert_envelope(response.json(), "sync")
            assert response.json()["metadata"] == {}
            _, body = await api.get(f"/1.0/operations/{token}")
            assert (body["metadata"]["status"], body["metadata"]["status_code"]) == ("Cancelled", 401)

            response = await api.client.delete(f"/1.0/operations/{token}")
            assert (response.status_code, response.json()["error"]) == (400, "Only running operations can be cancelled")

            response = await api.client.delete(f"/1.0/operations/{task}")
            assert (response.status_code, response.json()["error"]) == (400, "This operation can't be cancelled")
            assert response.json()["error_code"] == 400

            await anyio.sleep(0.4)
            status, _ = await api.get(f"/1.0/operations/{token}")
            assert status == 404
            _, body = await api.get("/1.0/operations")
            assert f"/1.0/operations/{token}" not in json.dumps(body)


async def test_wait_blocks_until_timeout_or_end() -> None:
    with anyio.fail_after(10):
        async with incus(task_seconds=0.5) as api:
            task = api.sim.add_operation("task")["id"]

            started = anyio.current_time()
            status, body = await api.get(f"/1.0/operations/{task}/wait", timeout="1")
            assert status == 200
            assert 0.9 <= anyio.current_time() - started < 3
            assert body["metadata"]["status"] == "Running"

            status, body = await api.get(f"/1.0/operations/{task}/wait", timeout="soon")
            assert (status, body["error_code"]) == (500, 500)
            assert body["error"] == 'strconv.Atoi: parsing "soon": invalid syntax'

            async def fail_later() -> None:
                await anyio.sleep(0.2)
                api.sim.finish(task, status="Failure", err="disk full")

            async with anyio.create_task_group() as tg:
                tg.start_soon(fail_later)
                status, body = await api.get(f"/1.0/operations/{task}/wait")  # no timeout: forever
            assert status == 200
            assert (body["metadata"]["status_code"], body["metadata"]["err"]) == (400, "disk full")

            # The seeded task finishes by itself, its clock started by the first request.
            seeded = api.sim.seeded["task"]
            status, body = await api.get(f"/1.0/operations/{seeded}/wait", timeout="-1")
            assert (status, body["metadata"]["status"]) == (200, "Success")


async def test_public_wait_needs_the_operation_secret() -> None:
    with anyio.fail_after(10):
        async with incus() as api:
            token = api.sim.operations[api.sim.seeded["token"]]
            secret = token.metadata["secret"]
            url = f"/1.0/operations/{token.id}/wait"

            for query in ["public&timeout=0", "public&secret=wrong&timeout=0"]:
                response = await api.client.get(f"{url}?{query}")
                assert (response.status_code, response.json()["error"]) == (403, "not authorized")

            response = await api.client.get(f"{url}?public&secret={secret}&timeout=0")
            assert response.status_code == 200
            assert response.json()["metadata"]["id"] == token.id

            task = api.sim.seeded["task"]
            response = await api.client.get(f"/1.0/operations/{task}/wait?public&secret={secret}&timeout=0")
            assert response.status_code == 403  # only token operations carry a secret


async def test_exec_streams_output_and_records_the_exit_code() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            body = {
                "command": ["echo", "hello", "world"],
                "wait-for-websocket": True,
                "interactive": False,
                "environment": {},
                "record-output": False,
            }
            response = await api.client.post("/1.0/instances/c1/exec", json=body)
            assert response.status_code == 202
            envelope = response.json()
            assert_envelope(envelope, "async")
            assert (envelope["status"], envelope["status_code"]) == ("Operation created", 100)
            op = envelope["metadata"]
            assert envelope["operation"] == f"/1.0/operations/{op['id']}"
            assert (op["class"], op["may_cancel"], op["status"]) == ("websocket", False, "Running")
            assert set(op["metadata"]["fds"]) == {"0", "1", "2", "control"}
            assert op["metadata"]["command"] == ["echo", "hello", "world"]

            async with api.ws(op, "0") as stdin, api.ws(op, "1") as stdout, api.ws(op, "2") as stderr:
                out, _ = await read_stream(stdout)
                err, _ = await read_stream(stderr)
                assert (out, err) == (b"hello world\n", b"")
                assert await dropped(stdout) == 1006  # the daemon drops the sockets, no close frame
                await dropped(stdin)

            status, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            assert (status, body["metadata"]["status"]) == (200, "Success")
            assert body["metadata"]["metadata"]["return"] == 0


async def test_exec_unknown_command_and_chunked_output() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            op = api.sim.create_exec(["frobnicate"])
            async with api.ws(op, "0"), api.ws(op, "1") as stdout, api.ws(op, "2") as stderr:
                assert (await read_stream(stdout))[0] == b""
                assert (await read_stream(stderr))[0] == b"sh: frobnicate: not found\n"
            _, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            assert body["metadata"]["metadata"]["return"] == 127

            op = api.sim.create_exec(["anything"], output=b"x" * 3000, return_code=3)
            async with api.ws(op, "0"), api.ws(op, "1") as stdout, api.ws(op, "2"):
                data, frames = await read_stream(stdout)
            assert data == b"x" * 3000
            assert [len(frame) for frame in frames] == [1024, 1024, 952]
            _, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            assert body["metadata"]["metadata"]["return"] == 3


async def test_exec_stdin_reaches_the_command() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            op = api.sim.create_exec(["cat"])
            async with api.ws(op, "0") as stdin, api.ws(op, "1") as stdout, api.ws(op, "2"):
                await stdin.send(b"line one\n")
                await stdin.send(b"line two\n")
                await stdin.send("")  # the barrier: EOF on stdin
                assert (await read_stream(stdout))[0] == b"line one\nline two\n"
            _, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            assert body["metadata"]["metadata"]["return"] == 0


async def test_interactive_exec_runs_under_a_pty() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            body = {"command": ["sh"], "wait-for-websocket": True, "interactive": True}
            op = (await api.client.post("/1.0/instances/c1/exec", json=body)).json()["metadata"]
            assert set(op["metadata"]["fds"]) == {"0", "control"}
            async with api.ws(op, "0") as tty, api.ws(op, "control"):
                await tty.send(b"echo hi\r")
                text = b""
                while b"hi\r\n" not in text.removeprefix(b"echo hi\r\n"):
                    text += await tty.recv()
                assert text == b"echo hi\r\nhi\r\n"  # the echo, then the output
                await tty.send(b"exit 5\r")
                await read_stream(tty)
            _, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            assert body["metadata"]["metadata"]["return"] == 5


async def test_exec_websocket_refusals_happen_before_the_upgrade() -> None:
    with anyio.fail_after(10):
        async with incus() as api:
            op = api.sim.operations[api.sim.seeded["exec"]].render()
            with pytest.raises(InvalidStatus) as refused:
                async with api.ws(op, "1", secret="not-the-secret"):
                    pass
            assert refused.value.response.status_code == 403
            assert json.loads(refused.value.response.body)["error"] == "Forbidden"

            token = api.sim.operations[api.sim.seeded["token"]].render()
            with pytest.raises(InvalidStatus) as refused:
                async with api.ws(token, "1", secret=token["metadata"]["secret"]):
                    pass
            assert refused.value.response.status_code == 500

            with pytest.raises(InvalidStatus) as refused:
                async with unix_connect(api.socket, "ws://incus/1.0/operations/nope/websocket?secret=x"):
                    pass
            assert refused.value.response.status_code == 404


async def test_exec_waits_for_every_stream_then_times_out() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False, exec_connect_timeout=0.5) as api:
            op = api.sim.create_exec(["echo", "never"])
            async with api.ws(op, "1") as stdout:
                assert await dropped(stdout) == 1006
            _, body = await api.get(f"/1.0/operations/{op['id']}")
            assert (body["metadata"]["status"], body["metadata"]["err"]) == (
                "Failure",
                "Timed out waiting for websockets to connect",
            )


async def test_endless_output_is_killed_when_stdout_goes_away() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            op = api.sim.create_exec(["yes"])
            async with api.ws(op, "0"), api.ws(op, "2"), api.ws(op, "1") as stdout:
                received = 0
                while received < 50_000:
                    received += len(await stdout.recv())
            _, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            assert (body["metadata"]["status"], body["metadata"]["metadata"]["return"]) == ("Success", 137)


async def test_exec_validation_and_task_mode_with_recorded_output() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            post = api.client.post
            response = await post("/1.0/instances/c2/exec", json={"command": ["ls"], "wait-for-websocket": True})
            assert (response.status_code, response.json()["error"]) == (400, "Instance is not running")
            response = await post("/1.0/instances/ghost/exec", json={"command": ["ls"]})
            assert (response.status_code, response.json()["error"]) == (404, "Instance not found")
            response = await post(
                "/1.0/instances/c1/exec", json={"command": ["ls"], "wait-for-websocket": True, "record-output": True}
            )
            assert response.status_code == 400

            response = await post("/1.0/instances/c1/exec", json={"command": ["hostname"], "record-output": True})
            assert response.status_code == 202
            op = response.json()["metadata"]
            assert (op["class"], op["metadata"]) == ("task", None)
            _, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            result = body["metadata"]["metadata"]
            assert (body["metadata"]["status"], result["return"]) == ("Success", 0)
            log = await api.client.get(result["output"]["1"])
            assert log.content == b"c1\n"

            response = await api.client.get("/1.0/instances")
            assert response.json()["metadata"] == ["/1.0/instances/c1", "/1.0/instances/vm1", "/1.0/instances/c2"]


async def test_the_recorder_sees_every_request() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            op = api.sim.create_exec(["true"], connect_timeout=math.inf)
            await api.client.get("/1.0/operations", params={"recursion": "1"})
            async with api.ws(op, "0"), api.ws(op, "1") as stdout, api.ws(op, "2"):
                await read_stream(stdout)
            requests = api.sim.requests
            assert requests[0].method == "GET"
            assert (requests[0].path, requests[0].query) == ("/1.0/operations", {"recursion": ["1"]})
            sockets = [r for r in requests if r.websocket]
            assert len(sockets) == 3
            assert all(r.path == f"/1.0/operations/{op['id']}/websocket" for r in sockets)


STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110}
DESCRIPTIONS = {
    "start": "Starting instance",
    "stop": "Stopping instance",
    "restart": "Restarting instance",
    "freeze": "Freezing instance",
    "unfreeze": "Unfreezing instance",
}


async def instance_status(api: Incus, name: str) -> str:
    """The instance's status as GET /state says it, checked against GET /1.0/instances/{name}."""
    _, state = await api.get(f"/1.0/instances/{name}/state")
    _, instance = await api.get(f"/1.0/instances/{name}")
    status = state["metadata"]["status"]
    assert state["metadata"]["status_code"] == instance["metadata"]["status_code"] == STATUS_CODES[status]
    assert instance["metadata"]["status"] == status
    return status


@pytest.mark.parametrize(
    ("before", "action", "after"),
    [
        ("Stopped", "start", "Running"),
        ("Running", "stop", "Stopped"),
        ("Frozen", "stop", "Stopped"),
        ("Running", "restart", "Running"),
        ("Running", "freeze", "Frozen"),
        ("Frozen", "unfreeze", "Running"),
    ],
)
async def test_a_state_change_is_an_operation_that_changes_the_status_when_it_ends(
    before: str, action: str, after: str
) -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            api.sim.instances["c2"]["status"] = before
            started = anyio.current_time()
            response = await api.client.put("/1.0/instances/c2/state", json={"action": action, "timeout": 30})
            assert response.status_code == 202 and response.headers["location"].startswith("/1.0/operations/")
            envelope = response.json()
            assert_envelope(envelope, "async")
            op = envelope["metadata"]
            assert envelope["operation"] == f"/1.0/operations/{op['id']}"
            assert (op["class"], op["status"], op["description"]) == ("task", "Running", DESCRIPTIONS[action])
            assert op["resources"] == {"instances": ["/1.0/instances/c2"]}
            assert await instance_status(api, "c2") == before  # not yet: it takes a moment

            status, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            assert (status, body["metadata"]["status"], body["metadata"]["err"]) == (200, "Success", "")
            assert anyio.current_time() - started >= 0.5
            assert await instance_status(api, "c2") == after


@pytest.mark.parametrize(
    ("before", "action", "refusal"),
    [
        ("Running", "start", "The instance is already running"),
        ("Stopped", "stop", "The instance is already stopped"),
        ("Stopped", "restart", "The instance isn't running"),
        ("Frozen", "restart", "The instance isn't running"),
        ("Frozen", "freeze", "The instance isn't running"),
        ("Running", "unfreeze", "The instance isn't frozen"),
    ],
)
async def test_a_refused_state_change_fails_inside_its_operation(before: str, action: str, refusal: str) -> None:
    """As LXD 5.0 does: the request is accepted (202), and the operation it made ends in Failure."""
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            api.sim.instances["c1"]["status"] = before
            response = await api.client.put("/1.0/instances/c1/state", json={"action": action})
            assert response.status_code == 202
            assert_envelope(response.json(), "async")
            op_id = response.json()["metadata"]["id"]
            status, body = await api.get(f"/1.0/operations/{op_id}/wait", timeout="5")
            assert status == 200
            assert (body["metadata"]["status"], body["metadata"]["status_code"]) == ("Failure", 400)
            assert body["metadata"]["err"] == refusal
            await anyio.sleep(0.6)  # past the moment a change would have ended
            assert await instance_status(api, "c1") == before


async def test_a_state_change_the_daemon_cannot_parse_is_refused_at_once() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            put = api.client.put
            response = await put("/1.0/instances/c1/state", json={"action": "reboot"})
            assert (response.status_code, response.json()["error"]) == (400, "Unknown action: 'reboot'")
            assert_envelope(response.json(), "error")
            response = await put("/1.0/instances/c1/state", content=b"{not json")
            assert response.status_code == 400
            response = await put("/1.0/instances/ghost/state", json={"action": "start"})
            assert (response.status_code, response.json()["error"]) == (404, "Instance not found")
            status, body = await api.get("/1.0/instances/ghost/state")
            assert (status, body["error"]) == (404, "Instance not found")
            response = await api.client.post("/1.0/instances/c1/state", json={"action": "stop"})
            assert (response.status_code, response.json()["error"]) == (501, "not implemented")
            assert api.sim.operations == {} and api.sim.instances["c1"]["status"] == "Running"


async def test_exec_in_a_frozen_instance_is_refused_until_it_is_unfrozen() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            api.sim.instances["c1"]["status"] = "Frozen"
            body = {"command": ["true"], "record-output": True}
            response = await api.client.post("/1.0/instances/c1/exec", json=body)
            assert (response.status_code, response.json()["error"]) == (400, "Instance is frozen")
            assert_envelope(response.json(), "error")
            op_id = (await api.client.put("/1.0/instances/c1/state", json={"action": "unfreeze"})).json()["metadata"][
                "id"
            ]
            await api.get(f"/1.0/operations/{op_id}/wait", timeout="5")
            assert (await api.client.post("/1.0/instances/c1/exec", json=body)).status_code == 202


async def test_another_project_holds_no_instances() -> None:
    """The sandbox has one project, `default`: as in LXD 5.0, another one's listing is empty and its
    instances are not found, whatever is asked of them."""
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            _, body = await api.get("/1.0/instances", project="p2")
            assert body["metadata"] == []
            _, body = await api.get("/1.0/instances", project="p2", recursion="1")
            assert body["metadata"] == []
            _, body = await api.get("/1.0/instances", project="default")
            assert body["metadata"] == ["/1.0/instances/c1", "/1.0/instances/vm1", "/1.0/instances/c2"]
            status, body = await api.get("/1.0/instances", project="p2", **{"all-projects": "true"})
            assert (status, body["error"]) == (400, "Cannot specify a project when requesting all projects")

            for method, path, payload in [
                ("GET", "/1.0/instances/c1", None),
                ("GET", "/1.0/instances/c1/state", None),
                ("PUT", "/1.0/instances/c1/state", {"action": "stop"}),
                ("POST", "/1.0/instances/c1/exec", {"command": ["true"], "record-output": True}),
            ]:
                response = await api.client.request(method, path, params={"project": "p2"}, json=payload)
                assert (response.status_code, response.json()["error"]) == (404, "Instance not found"), path
                assert_envelope(response.json(), "error")
            assert api.sim.operations == {} and api.sim.instances["c1"]["status"] == "Running"

            status, body = await api.get("/1.0/instances/c1", project="default")
            assert (status, body["metadata"]["name"], body["metadata"]["project"]) == (200, "c1", "default")


async def test_exec_output_files_can_be_deleted() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            body = {"command": ["sh", "-c", "echo out; echo err >&2"], "record-output": True}
            op = (await api.client.post("/1.0/instances/c1/exec", json=body)).json()["metadata"]
            _, body = await api.get(f"/1.0/operations/{op['id']}/wait", timeout="5")
            stdout, stderr = (body["metadata"]["metadata"]["output"][fd] for fd in ("1", "2"))
            assert (await api.client.get(stdout)).content == b"out\n"
            assert (await api.client.get(stderr)).content == b"err\n"

            response = await api.client.delete(stdout)
            assert response.status_code == 200
            assert_envelope(response.json(), "sync")
            assert response.json()["metadata"] == {}
            assert (await api.client.get(stdout)).status_code == 404
            assert (await api.client.delete(stdout)).status_code == 404
            assert list(api.sim.exec_outputs.values()) == [b"err\n"]  # the other stream's file stays
            assert (await api.client.get(stderr)).content == b"err\n"


async def test_an_instance_has_its_new_status_once_the_change_had_time_to_end() -> None:
    with anyio.fail_after(10):
        async with incus(seed=False) as api:
            response = await api.client.put("/1.0/instances/c2/state", json={"action": "start"})
            assert response.status_code == 202
            await anyio.sleep(1.0)  # twice the time a state change takes; nobody waits on it
            _, listing = await api.get("/1.0/instances", recursion="1")
            assert {i["name"]: i["status"] for i in listing["metadata"]}["c2"] == "Running"
            _, state = await api.get("/1.0/instances/c2/state")
            assert state["metadata"]["status"] == "Running"
