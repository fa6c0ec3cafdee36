"""The Incus tools against a real Incus-compatible daemon: LXD 5.0 from Debian bookworm.

`.ci/lxd-up DIR` starts the daemon and writes DIR/env (INCUS_LXD_*); source it before pytest. Without
INCUS_LXD_SOCKET every test here is skipped, saying why. Without INCUS_LXD_CONTAINER (containers
cannot start on this machine) only the exec/websocket tests are skipped.

Real operations come from a direct client on the daemon's unix socket: a certificate add token
(class token, cancelable, metadata.secret), exec on the container with wait-for-websocket (class
websocket, metadata.fds) or record-output (class task), and a stop with a timeout the container's
init ignores (class task, ends in Failure). Finished operations vanish ~5 s after they end; tests
cancel their tokens and delete what they recorded. All traffic stays on the unix socket or loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp_types import ElicitResult
from websockets.asyncio.client import unix_connect

from mcp_cloudops.calls import HIDDEN
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

TEST_SECONDS = 30  # every test's whole body, fixtures' set-up aside
UNKNOWN_OP = "00000000-0000-4000-8000-000000000000"
RECORDED = {"wait-for-websocket": False, "record-output": True}  # exec as a task, output kept in log files


@dataclass(frozen=True)
class Lxd:
    socket: str
    url: str
    client_cert: str
    client_key: str
    server_cert: str
    container: str
    container_reason: str

    def https_env(self, cert: str | None = None, key: str | None = None) -> dict[str, str]:
        return {
            "INCUS_URL": self.url,
            "INCUS_CLIENT_CERT": cert or self.client_cert,
            "INCUS_CLIENT_KEY": key or self.client_key,
            "INCUS_SERVER_CERT": self.server_cert,
        }


@pytest.fixture(autouse=True)
def lxd() -> Lxd:
    """The daemon .ci/lxd-up started, or a loud skip."""
    env = os.environ
    if not env.get("INCUS_LXD_SOCKET"):
        why = env.get("INCUS_LXD_UNAVAILABLE")
        pytest.skip("no LXD daemon: .ci/lxd-up could not start one (see its output)" + (f": {why}" if why else ""))
    return Lxd(
        socket=env["INCUS_LXD_SOCKET"],
        url=env.get("INCUS_LXD_URL", ""),
        client_cert=env.get("INCUS_LXD_CLIENT_CERT", ""),
        client_key=env.get("INCUS_LXD_CLIENT_KEY", ""),
        server_cert=env.get("INCUS_LXD_SERVER_CERT", ""),
        container=env.get("INCUS_LXD_CONTAINER", ""),
        container_reason=env.get("INCUS_LXD_CONTAINER_REASON", ""),
    )


@pytest.fixture
def container(lxd: Lxd) -> str:
    if not lxd.container:
        pytest.skip(
            "no running LXD container: .ci/lxd-up could not start one"
            + (f" ({lxd.container_reason})" if lxd.container_reason else "")
        )
    return lxd.container


@pytest.fixture
async def api(lxd: Lxd) -> AsyncIterator[httpx.AsyncClient]:
    """A direct client on the daemon's socket: makes the operations the tools then look at."""
    transport = httpx.AsyncHTTPTransport(uds=lxd.socket)
    async with httpx.AsyncClient(transport=transport, base_url="http://lxd", timeout=20) as client:
        yield client


@pytest.fixture
async def client(lxd: Lxd) -> AsyncIterator[Client]:
    """The MCP server reaching LXD over its unix socket, as with INCUS_SOCKET."""
    async with Client(build_server(Settings.from_env({"INCUS_SOCKET": lxd.socket}))) as connected:
        yield connected


@dataclass(frozen=True)
class Token:
    id: str
    secret: str
    name: str


@pytest.fixture
async def token(api: httpx.AsyncClient) -> AsyncIterator[Token]:
    """A certificate add token: a cancelable operation that runs until used or cancelled."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    with anyio.fail_after(10):
        response = await api.post("/1.0/certificates", json={"type": "client", "name": name, "token": True})
    assert response.status_code == 202, response.text
    op = response.json()["metadata"]
    assert (op["class"], op["status"], op["may_cancel"]) == ("token", "Running", True)
    yield Token(op["id"], op["metadata"]["secret"], name)
    with anyio.fail_after(10):
        await api.delete(f"/1.0/operations/{op['id']}")  # 400 if already cancelled, 404 once gone: both fine
        certs = (await api.get("/1.0/certificates", params={"recursion": "1"})).json()["metadata"] or []
        for cert in certs:
            if cert.get("name") == name:
                await api.delete(f"/1.0/certificates/{cert['fingerprint']}")


async def start_exec(api: httpx.AsyncClient, container: str, command: list[str], **options: Any) -> dict[str, Any]:
    """POST an exec; returns the operation. Defaults to a non-interactive exec waiting for websockets.

    An exec nobody attaches to ends by itself in Failure ("Timed out waiting for websockets to
    connect") after ~5 s, and every exec here is short: nothing is left behind.
    """
    body = {"command": command, "wait-for-websocket": True, "interactive": False, **options}
    response = await api.post(f"/1.0/instances/{container}/exec", json=body)
    assert response.status_code == 202, response.text
    return response.json()["metadata"]


async def wait_op(api: httpx.AsyncClient, op_id: str, timeout: int = 10) -> dict[str, Any]:
    response = await api.get(f"/1.0/operations/{op_id}/wait", params={"timeout": str(timeout)})
    assert response.status_code == 200, response.text
    return response.json()["metadata"]


def make_cert(directory: Path, name: str) -> tuple[str, str]:
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", f"/CN={name}"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return str(crt), str(key)


def text(result: Any) -> str:
    return result.content[0].text


# ---------------------------------------------------------------- get-operations, get-operations-2


async def test_list_operations_of_the_default_project(client: Client, token: Token) -> None:
    with anyio.fail_after(TEST_SECONDS):
        listed = await client.call_tool("get-operations", {"project": "default"})
        assert not listed.is_error, text(listed)
        assert f"/1.0/operations/{token.id}" in listed.structured_content["running"]
        assert all(isinstance(url, str) for urls in listed.structured_content.values() for url in urls)

        full = await client.call_tool("get-operations-2", {"project": "default"})
        assert not full.is_error, text(full)
        running = {op["id"]: op for op in full.structured_content["running"]}
        op = running[token.id]
        assert (op["class"], op["status"], op["status_code"], op["may_cancel"]) == ("token", "Running", 103, True)
        assert op["metadata"]["secret"] == HIDDEN  # a join token's secret: not for the agent by default
        assert token.secret not in text(full)
        assert set(full.structured_content) <= {"running", "pending", "success", "failure", "cancelled"}


async def test_list_operations_project_filters_and_all_projects(client: Client, token: Token) -> None:
    """LXD 5.0 has no all-projects on /1.0/operations: it ignores the parameter, even next to project
    (Incus answers 400 to both together). An unknown project is no error either: the listing then
    holds only the operations that belong to no project (the daemon's own housekeeping tasks)."""
    mine = f"/1.0/operations/{token.id}"
    with anyio.fail_after(TEST_SECONDS):
        listed = await client.call_tool("get-operations", {"all-projects": True})
        assert not listed.is_error, text(listed)
        assert mine in listed.structured_content["running"]

        both = await client.call_tool("get-operations", {"project": "default", "all-projects": True})
        assert not both.is_error, text(both)  # Incus: HTTP 400
        assert mine in both.structured_content["running"]

        full = await client.call_tool("get-operations-2", {"all-projects": True})
        assert not full.is_error, text(full)
        assert token.id in {op["id"] for op in full.structured_content["running"]}

        elsewhere = await client.call_tool("get-operations-2", {"project": f"nope-{token.name}"})
        assert not elsewhere.is_error, text(elsewhere)
        ids = {op["id"] for ops in elsewhere.structured_content.values() for op in ops}
        assert token.id not in ids


# ---------------------------------------------------------------- get-operation-state


async def test_get_operation_state(client: Client, token: Token) -> None:
    with anyio.fail_after(TEST_SECONDS):
        state = await client.call_tool("get-operation-state", {"id": token.id})
        assert not state.is_error, text(state)
        op = state.structured_content
        assert (op["id"], op["class"], op["status"], op["status_code"]) == (token.id, "token", "Running", 103)
        assert op["may_cancel"] is True and op["err"] == ""
        assert op["metadata"]["request"]["name"] == token.name

        missing = await client.call_tool("get-operation-state", {"id": UNKNOWN_OP})
        assert missing.is_error
        assert "HTTP 404" in text(missing) and "Operation not found" in text(missing)
        assert "get-operations" in text(missing)  # the lookup tool is named


# ---------------------------------------------------------------- wait-operation


async def test_wait_with_a_short_timeout_returns_the_running_operation(client: Client, token: Token) -> None:
    with anyio.fail_after(TEST_SECONDS):
        started = anyio.current_time()
        waited = await client.call_tool("wait-operation", {"id": token.id, "timeout": 1})
        elapsed = anyio.current_time() - started
        assert not waited.is_error, text(waited)
        assert (waited.structured_content["id"], waited.structured_content["status"]) == (token.id, "Running")
        assert 0.8 <= elapsed < 10

        missing = await client.call_tool("wait-operation", {"id": UNKNOWN_OP, "timeout": 1})
        assert missing.is_error and "HTTP 404" in text(missing)


async def test_wait_returns_a_finished_task_and_a_failed_one(
    client: Client, api: httpx.AsyncClient, container: str
) -> None:
    with anyio.fail_after(TEST_SECONDS):
        # exec with record-output: a task; exit status 4 is still a successful operation.
        op = await start_exec(api, container, ["sh", "-c", "echo hi; echo err >&2; exit 4"], **RECORDED)
        assert op["class"] == "task"
        try:
            waited = await client.call_tool("wait-operation", {"id": op["id"], "timeout": 15})
            assert not waited.is_error, text(waited)
            done = waited.structured_content
            assert (done["status"], done["status_code"], done["metadata"]["return"]) == ("Success", 200, 4)
            # LXD 5.0 records under /1.0/instances/<name>/logs/exec_<id>.stdout (newer: logs/exec-output/).
            output = done["metadata"]["output"]
            assert (await api.get(output["1"])).content == b"hi\n"
            assert (await api.get(output["2"])).content == b"err\n"
        finally:
            listing = (await api.get(f"/1.0/instances/{container}/logs")).json()["metadata"] or []
            for path in listing:
                if op["id"] in path:
                    await api.delete(path)

        # A stop whose timeout the container's init (sleep, which ignores SIGPWR) outlives: the
        # operation fails, and the wait is still a success carrying status_code 400 and err.
        response = await api.put(f"/1.0/instances/{container}/state", json={"action": "stop", "timeout": 1})
        assert response.status_code == 202, response.text
        stop = response.json()["metadata"]["id"]
        waited = await client.call_tool("wait-operation", {"id": stop, "timeout": 15})
        assert not waited.is_error, text(waited)
        failed = waited.structured_content
        assert (failed["status"], failed["status_code"]) == ("Failure", 400)
        assert "Failed shutting down instance" in failed["err"]
        state = (await api.get(f"/1.0/instances/{container}/state")).json()["metadata"]
        assert state["status"] == "Running"  # the container is left as it was


# ---------------------------------------------------------------- cancel-operation


async def test_cancel_a_token_operation(client: Client, api: httpx.AsyncClient, token: Token) -> None:
    with anyio.fail_after(TEST_SECONDS):
        cancelled = await client.call_tool("cancel-operation", {"id": token.id})
        assert not cancelled.is_error, text(cancelled)
        assert cancelled.structured_content == {}  # LXD's sync answer carries empty metadata

        state = await client.call_tool("get-operation-state", {"id": token.id})
        if state.is_error:  # already vanished
            assert "HTTP 404" in text(state)
        else:
            assert (state.structured_content["status"], state.structured_content["status_code"]) == ("Cancelled", 401)

        again = await client.call_tool("cancel-operation", {"id": token.id})
        assert again.is_error
        assert "HTTP 400" in text(again) or "HTTP 404" in text(again), text(again)
        if "HTTP 400" in text(again):
            assert "Only running operations can be cancelled" in text(again)

        missing = await client.call_tool("cancel-operation", {"id": UNKNOWN_OP})
        assert missing.is_error and "HTTP 404" in text(missing)

        # Nothing was added to the trust store.
        certs = (await api.get("/1.0/certificates", params={"recursion": "1"})).json()["metadata"]
        assert token.name not in {cert["name"] for cert in certs}


async def test_cancel_refuses_a_running_operation_that_cannot_be_cancelled(
    client: Client, api: httpx.AsyncClient, container: str
) -> None:
    with anyio.fail_after(TEST_SECONDS):
        op = await start_exec(api, container, ["sleep", "2"], **RECORDED)
        try:
            assert op["may_cancel"] is False
            refused = await client.call_tool("cancel-operation", {"id": op["id"]})
            assert refused.is_error
            assert "HTTP 400" in text(refused) and "This operation can't be cancelled" in text(refused)
            assert (await wait_op(api, op["id"], 15))["status"] == "Success"
        finally:
            listing = (await api.get(f"/1.0/instances/{container}/logs")).json()["metadata"] or []
            for path in listing:
                if op["id"] in path:
                    await api.delete(path)


# ---------------------------------------------------------------- wait-operation-2 (public)


async def test_public_wait_with_the_token_secret(client: Client, token: Token) -> None:
    with anyio.fail_after(TEST_SECONDS):
        waited = await client.call_tool("wait-operation-2", {"id": token.id, "secret": token.secret, "timeout": 1})
        assert not waited.is_error, text(waited)
        assert (waited.structured_content["id"], waited.structured_content["status"]) == (token.id, "Running")

        # Even on the (trusted) unix socket, a wrong secret is refused.
        wrong = await client.call_tool("wait-operation-2", {"id": token.id, "secret": "0" * 64, "timeout": 1})
        assert wrong.is_error
        assert "HTTP 403" in text(wrong) and "not authorized" in text(wrong)

        missing = await client.call_tool("wait-operation-2", {"id": UNKNOWN_OP, "secret": token.secret, "timeout": 1})
        assert missing.is_error and "HTTP 404" in text(missing)  # not 403: the lookup comes first


async def test_public_wait_works_for_an_untrusted_certificate(lxd: Lxd, token: Token, tmp_path: Path) -> None:
    """What ?public is for: a caller LXD does not trust may wait on a token it holds the secret of."""
    crt, key = make_cert(tmp_path, "stranger")
    with anyio.fail_after(TEST_SECONDS):
        async with Client(build_server(Settings.from_env(lxd.https_env(crt, key)))) as stranger:
            waited = await stranger.call_tool(
                "wait-operation-2", {"id": token.id, "secret": token.secret, "timeout": 1}
            )
            assert not waited.is_error, text(waited)
            assert waited.structured_content["status"] == "Running"
            wrong = await stranger.call_tool("wait-operation-2", {"id": token.id, "secret": "bad", "timeout": 1})
            assert wrong.is_error and "HTTP 403" in text(wrong)
            listed = await stranger.call_tool("get-operations", {})
            assert listed.is_error and "HTTP 403" in text(listed)


# ---------------------------------------------------------------- get-websocket-stream


async def test_websocket_stream_runs_an_exec_to_its_end(client: Client, api: httpx.AsyncClient, container: str) -> None:
    with anyio.fail_after(TEST_SECONDS):
        op = await start_exec(api, container, ["echo", "hello"])
        assert op["class"] == "websocket"
        assert set(op["metadata"]["fds"]) == {"0", "1", "2", "control"}
        streamed = await client.call_tool("get-websocket-stream", {"id": op["id"]})
        assert not streamed.is_error, text(streamed)
        result = streamed.structured_content
        assert (result["stdout"], result["stderr"], result["exit_code"]) == ("hello\n", "", 0)
        assert (result["status"], result["stopped"], result["truncated"]) == ("Success", "closed", False)

        op = await start_exec(api, container, ["sh", "-c", "echo out; echo oops >&2; exit 3"])
        streamed = await client.call_tool("get-websocket-stream", {"id": op["id"], "max_seconds": 10})
        assert not streamed.is_error, text(streamed)
        result = streamed.structured_content
        assert (result["stdout"], result["stderr"], result["exit_code"]) == ("out\n", "oops\n", 3)

        # A quiet spell is not the end of an exec: idle_seconds does not cut it short.
        op = await start_exec(api, container, ["sh", "-c", "sleep 2; echo late"])
        streamed = await client.call_tool("get-websocket-stream", {"id": op["id"], "idle_seconds": 0.5})
        assert (streamed.structured_content["stdout"], streamed.structured_content["exit_code"]) == ("late\n", 0)

        # Output beyond max_bytes is cut; the command is not left waiting on a full pipe for long.
        op = await start_exec(api, container, ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"])
        streamed = await client.call_tool("get-websocket-stream", {"id": op["id"], "max_bytes": 1000})
        assert not streamed.is_error, text(streamed)
        result = streamed.structured_content
        assert result["truncated"] is True and result["stdout"] == "x" * 1000
        await wait_op(api, op["id"], 15)


async def test_websocket_stream_refuses_what_is_not_an_exec(client: Client, token: Token) -> None:
    with anyio.fail_after(TEST_SECONDS):
        refused = await client.call_tool("get-websocket-stream", {"id": token.id})
        assert refused.is_error
        assert "not a non-interactive exec" in text(refused) and "'token'" in text(refused)
        missing = await client.call_tool("get-websocket-stream", {"id": UNKNOWN_OP})
        assert missing.is_error and "HTTP 404" in text(missing)


# ---------------------------------------------------------------- exec-instance, update-instance-state


async def exec_logs(api: httpx.AsyncClient, container: str) -> list[str]:
    return (await api.get(f"/1.0/instances/{container}/logs")).json()["metadata"] or []


async def test_exec_instance_reads_its_output_back_and_removes_the_logs(
    client: Client, api: httpx.AsyncClient, container: str
) -> None:
    with anyio.fail_after(TEST_SECONDS):
        ran = await client.call_tool("exec-instance", {"name": container, "command": ["sh", "-c", "seq 1 3; exit 2"]})
        assert not ran.is_error, text(ran)
        result = ran.structured_content
        assert (result["stdout"], result["stderr"], result["exit_code"]) == ("1\n2\n3\n", "", 2)
        assert not any(result["operation_id"] in path for path in await exec_logs(api, container))

        # stdout and stderr share max_bytes; what is cut is said.
        big = ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x; echo e >&2"]
        cut = await client.call_tool("exec-instance", {"name": container, "command": big, "max_bytes": 1000})
        assert not cut.is_error, text(cut)
        assert cut.structured_content["stdout"] == "x" * 1000 and cut.structured_content["stderr"] == ""
        assert cut.structured_content["output_truncated"] is True

        missing = await client.call_tool("exec-instance", {"name": container, "command": ["no-such-program"]})
        assert missing.is_error and "ended in Failure (Command not found)" in text(missing)
        assert "list-instances" in text(missing)
        unknown = await client.call_tool("exec-instance", {"name": "no-such-instance", "command": ["true"]})
        assert unknown.is_error and "HTTP 404" in text(unknown) and "list them with list-instances" in text(unknown)


async def test_restart_and_a_refused_start(client: Client, container: str) -> None:
    with anyio.fail_after(TEST_SECONDS):
        restarted = await client.call_tool(
            "update-instance-state", {"name": container, "action": "restart", "force": True, "wait": True}
        )
        assert not restarted.is_error, text(restarted)
        assert restarted.structured_content["status"] == "Running"  # read back from LXD once the restart ended
        assert set(restarted.structured_content) == {"status", "operation_id"}
        listed = (await client.call_tool("list-instances", {})).structured_content["result"]
        assert {i["name"]: i["status"] for i in listed}[container] == "Running"
        # LXD refuses inside the operation, not the request: still a tool error, saying why.
        again = await client.call_tool("update-instance-state", {"name": container, "action": "start", "wait": True})
        assert again.is_error and "already running" in text(again)


async def test_attaching_asks_with_the_command_the_daemon_reports(
    lxd: Lxd, api: httpx.AsyncClient, container: str
) -> None:
    """The question of get-websocket-stream shows the exec's command and environment as LXD reports them
    (second red-team round, finding 1); declined, nothing attaches and the exec never starts."""
    asked: list[str] = []

    async def decline(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="decline")

    server = build_server(Settings.from_env({"INCUS_SOCKET": lxd.socket}))
    with anyio.fail_after(TEST_SECONDS):
        op = await start_exec(api, container, ["sh", "-c", "echo wiped"], environment={"MODE": "wipe"})
        async with Client(server, elicitation_callback=decline) as asking:
            refused = await asking.call_tool("get-websocket-stream", {"id": op["id"]})
        assert refused.is_error and "did not confirm" in text(refused)
        (question,) = asked
        assert '["sh", "-c", "echo wiped"]' in question and '"MODE": "wipe"' in question
        ended = await wait_op(api, op["id"], 15)
        assert ended["err"] == "Timed out waiting for websockets to connect"  # it never ran


async def test_the_read_only_stream_tool_refuses_stdin_and_control(
    client: Client, api: httpx.AsyncClient, container: str
) -> None:
    """Connecting the last of fds 0, 1 and 2 starts a pending exec: the read-only tool never connects 0."""
    with anyio.fail_after(TEST_SECONDS):
        op = await start_exec(api, container, ["echo", "hello"])
        fds = op["metadata"]["fds"]
        for fd in ("0", "control"):
            refused = await client.call_tool("get-websocket-stream-2", {"id": op["id"], "secret": fds[fd]})
            assert refused.is_error and "nothing was connected" in text(refused), text(refused)


# ---------------------------------------------------------------- get-websocket-stream-2 (public)


async def test_public_websocket_stream_reads_one_fd(
    lxd: Lxd, client: Client, api: httpx.AsyncClient, container: str, tmp_path: Path
) -> None:
    """LXD 5.0 serves an exec's fd websocket to anyone holding its secret, trusted or not (no
    "Requestor mismatch" as in Incus since 2025). But a non-interactive exec starts only once fds
    0, 1 and 2 are all attached: reading fd 1 alone gets nothing (the stream goes idle) and the
    operation then fails with "Timed out waiting for websockets to connect". With the other fds
    held by whoever started the exec, the public tool reads the command's stdout, when the server's
    credentials can read the operation to check that the secret opens an output stream (second
    red-team round, finding 3): an untrusted server could be completing the exec's attachment."""
    crt, key = make_cert(tmp_path, "stranger")
    with anyio.fail_after(TEST_SECONDS):
        # Alone: the command never starts.
        op = await start_exec(api, container, ["echo", "hello"])
        fds = op["metadata"]["fds"]
        alone = await client.call_tool(
            "get-websocket-stream-2", {"id": op["id"], "secret": fds["1"], "idle_seconds": 1, "max_seconds": 3}
        )
        assert not alone.is_error, text(alone)
        assert (alone.structured_content["output"], alone.structured_content["stopped"]) == ("", "idle")
        ended = await wait_op(api, op["id"], 15)
        assert (ended["status"], ended["err"]) == ("Failure", "Timed out waiting for websockets to connect")

        # Shared: the starter holds stdin and stderr on the socket; an untrusted caller reads stdout.
        op = await start_exec(api, container, ["sh", "-c", "echo hello; echo oops >&2"])
        fds = op["metadata"]["fds"]
        # A wrong fd secret opens none of the operation's streams: refused before any connection.
        wrong = await client.call_tool("get-websocket-stream-2", {"id": op["id"], "secret": "bad"})
        assert wrong.is_error
        assert "opens none of the streams" in text(wrong) and "nothing was connected" in text(wrong), text(wrong)

        def ws(fd: str) -> Any:
            return unix_connect(lxd.socket, f"ws://lxd/1.0/operations/{op['id']}/websocket?secret={fds[fd]}")

        async with AsyncExitStack() as stack:
            stdin = await stack.enter_async_context(ws("0"))
            stderr = await stack.enter_async_context(ws("2"))
            await stdin.send("")  # EOF on stdin
            # Untrusted, the server cannot read the operation to tell which stream a secret opens (it could
            # be the last one the exec waits for): it connects nothing. Trusted, it reads stdout.
            stranger = await stack.enter_async_context(Client(build_server(Settings.from_env(lxd.https_env(crt, key)))))
            unread = await stranger.call_tool("get-websocket-stream-2", {"id": op["id"], "secret": fds["1"]})
            assert unread.is_error and "nothing was connected" in text(unread) and "HTTP 403" in text(unread)
            read = await client.call_tool("get-websocket-stream-2", {"id": op["id"], "secret": fds["1"]})
            assert not read.is_error, text(read)
            assert (read.structured_content["output"], read.structured_content["stopped"]) == ("hello\n", "closed")
            assert await stderr.recv() == b"oops\n"
        assert (await wait_op(api, op["id"]))["metadata"]["return"] == 0

        # Once the exec has ended (until it vanishes), LXD 5.0 answers 500, even to the right secret.
        late = await client.call_tool("get-websocket-stream-2", {"id": op["id"], "secret": fds["1"]})
        assert late.is_error
        assert "HTTP 500" in text(late) and "Only running operations can be connected" in text(late)


# ---------------------------------------------------------------- HTTPS with a client certificate


async def test_https_with_the_trusted_client_certificate(lxd: Lxd, api: httpx.AsyncClient, token: Token) -> None:
    with anyio.fail_after(TEST_SECONDS):
        async with Client(build_server(Settings.from_env(lxd.https_env()))) as remote:
            listed = await remote.call_tool("get-operations-2", {"project": "default"})
            assert not listed.is_error, text(listed)
            assert token.id in {op["id"] for op in listed.structured_content["running"]}
            state = await remote.call_tool("get-operation-state", {"id": token.id})
            assert not state.is_error and state.structured_content["class"] == "token"
            waited = await remote.call_tool("wait-operation", {"id": token.id, "timeout": 1})
            assert not waited.is_error and waited.structured_content["status"] == "Running"
            cancelled = await remote.call_tool("cancel-operation", {"id": token.id})
            assert not cancelled.is_error, text(cancelled)
            if lxd.container:  # the three exec websockets over wss, with the client certificate
                op = await start_exec(api, lxd.container, ["echo", "over", "tls"])
                streamed = await remote.call_tool("get-websocket-stream", {"id": op["id"]})
                assert not streamed.is_error, text(streamed)
                assert (streamed.structured_content["stdout"], streamed.structured_content["exit_code"]) == (
                    "over tls\n",
                    0,
                )


async def test_https_with_an_untrusted_certificate_is_refused(lxd: Lxd, token: Token, tmp_path: Path) -> None:
    """LXD accepts any client certificate in the TLS handshake, then answers 403 to an untrusted one."""
    crt, key = make_cert(tmp_path, "stranger")
    with anyio.fail_after(TEST_SECONDS):
        async with Client(build_server(Settings.from_env(lxd.https_env(crt, key)))) as stranger:
            for name, args in [
                ("get-operations", {}),
                ("get-operations-2", {"project": "default"}),
                ("get-operation-state", {"id": token.id}),
                ("wait-operation", {"id": token.id, "timeout": 0}),
                ("cancel-operation", {"id": token.id}),
            ]:
                result = await stranger.call_tool(name, args)
                assert result.is_error, (name, text(result))
                assert "HTTP 403" in text(result) and "not authorized" in text(result), (name, text(result))
        unpinned = {k: v for k, v in lxd.https_env().items() if k != "INCUS_SERVER_CERT"}
        async with Client(build_server(Settings.from_env(unpinned))) as unpinned_client:
            result = await unpinned_client.call_tool("get-operations", {})
        assert result.is_error and "Cannot reach Incus at 127.0.0.1" in text(result)


# ---------------------------------------------------------------- accounts: one trusted, one restricted


@pytest.fixture
async def restricted(lxd: Lxd, api: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    """A project of its own and a client certificate restricted to it (`lxc config trust add --restricted
    --projects`, through the API): (project, certificate, key). Both removed afterwards."""
    project, name = f"team-{uuid.uuid4().hex[:8]}", f"restricted-{uuid.uuid4().hex[:8]}"
    crt, key = make_cert(tmp_path, name)
    body = "".join(line for line in Path(crt).read_text().splitlines() if "-----" not in line)
    config = {"features.profiles": "false", "features.images": "false"}
    with anyio.fail_after(TEST_SECONDS):
        assert (await api.post("/1.0/projects", json={"name": project, "config": config})).status_code == 201
        trust = {"type": "client", "name": name, "certificate": body, "restricted": True, "projects": [project]}
        assert (await api.post("/1.0/certificates", json=trust)).status_code == 201
    try:
        yield project, crt, key
    finally:
        with anyio.fail_after(TEST_SECONDS):
            certs = (await api.get("/1.0/certificates", params={"recursion": "1"})).json()["metadata"] or []
            for cert in certs:
                if cert.get("name") == name:
                    await api.delete(f"/1.0/certificates/{cert['fingerprint']}")
            await api.delete(f"/1.0/projects/{project}")


async def test_a_restricted_account_acts_in_its_project_and_lxd_refuses_it_elsewhere(
    lxd: Lxd, container: str, restricted: tuple[str, str, str], tmp_path: Path
) -> None:
    """Two Incus accounts: the environment's (the socket, fully trusted) and `team`, a certificate LXD
    restricts to one project, which is the account's default project (INCUS_PROJECT, as a remote's)."""
    project, crt, key = restricted
    team = {**lxd.https_env(crt, key), "INCUS_PROJECT": project}
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(json.dumps({"accounts": {"incus": {"team": {"variables": team}}}}))
    accounts.chmod(0o600)
    env = {"INCUS_SOCKET": lxd.socket, "MCP_CLOUDOPS_ACCOUNTS": str(accounts)}
    with anyio.fail_after(TEST_SECONDS):
        async with Client(build_server(Settings.from_env(env))) as client:
            mine = await client.call_tool("list-instances", {})
            theirs = await client.call_tool("list-instances", {"account": "team"})
            everywhere = await client.call_tool("list-instances", {"account": "team", "all-projects": True})
            elsewhere = await client.call_tool("list-instances", {"account": "team", "project": "default"})
    assert not mine.is_error and container in text(mine)
    assert not theirs.is_error, text(theirs)
    assert container not in text(theirs)  # the project's instances only: none
    for refused in (everywhere, elsewhere):  # LXD itself refuses the certificate outside its project
        assert refused.is_error and "HTTP 403" in text(refused), text(refused)
