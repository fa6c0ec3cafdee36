"""A stateful Incus `/1.0` simulator served on a unix socket, with operations that behave like the
daemon's: the 7-key envelope, cancel/wait/websocket semantics, and finished operations that
vanish a few seconds after they end.

What it follows from the daemon (lxc/incus `cmd/incusd/operations.go`, `instance_exec.go`):

- `DELETE` checks "running?" before "cancelable?"; both refusals are 400. Cancel answers `{}`.
- `/wait` checks trust/secret first, then parses `timeout` (Go `strconv.Atoi`, so a bad value is
  a 500), then looks the operation up, then compares `secret` with `metadata.secret`.
  `?public` marks the caller as untrusted (the unix socket itself is always trusted).
- An exec operation with `wait-for-websocket` starts its command only once every required
  websocket is connected (stdin, stdout and stderr; stdin and control when interactive) and
  fails after 10 s otherwise. Output goes out as binary frames; each stream ends with an empty
  text frame, then the daemon drops the connections without a close frame (the client sees
  1006) and `metadata.return` holds the exit code. Closing stdout without a control socket, or
  closing the control socket, kills the command (exit code 137). Interactive execs run under a
  PTY: input is echoed and `\n` goes out as `\r\n`.

Test helpers (see `IncusSimulator`): `add_operation`, `create_exec`, `finish`, `operations`,
`seeded`, `instances`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mcp_cloudops.sandbox.base import Simulator
from mcp_cloudops.sandbox.shell import Proc, Stdin, Write, run_command
from mcp_cloudops.sandbox.shell_fs import FileSystem

# --------------------------------------------------------------------------------------------
# Exec programs
# --------------------------------------------------------------------------------------------

Program = Callable[[Write, Stdin], Awaitable[int]]
"""What an exec runs: it writes output, may read stdin, and returns the exit code."""


def canned(stdout: bytes, stderr: bytes = b"", return_code: int = 0) -> Program:
    """A program that prints fixed output: for tests that need exact bytes."""

    async def program(write: Write, stdin: Stdin) -> int:
        if stdout:
            await write(1, stdout)
        if stderr:
            await write(2, stderr)
        return return_code

    return program


# --------------------------------------------------------------------------------------------
# Envelopes
# --------------------------------------------------------------------------------------------

_STATUS = {
    100: "Operation created",
    103: "Running",
    104: "Cancelling",
    105: "Pending",
    200: "Success",
    400: "Failure",
    401: "Cancelled",
}
_CODES = {name: code for code, name in _STATUS.items()}


def sync(metadata: Any, http_status: int = 200) -> JSONResponse:
    body = {
        "type": "sync",
        "status": "Success",
        "status_code": 200,
        "operation": "",
        "error_code": 0,
        "error": "",
        "metadata": metadata,
    }
    return JSONResponse(body, status_code=http_status)


def async_(op: Operation) -> JSONResponse:
    body = {
        "type": "async",
        "status": "Operation created",
        "status_code": 100,
        "operation": op.url,
        "error_code": 0,
        "error": "",
        "metadata": op.render(),
    }
    return JSONResponse(body, status_code=202, headers={"Location": op.url})


def error(code: int, message: str) -> JSONResponse:
    body = {
        "type": "error",
        "status": "",
        "status_code": 0,
        "operation": "",
        "error_code": code,
        "error": message,
        "metadata": None,
    }
    return JSONResponse(body, status_code=code)


def rfc3339(timestamp: float) -> str:
    """Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped, `Z` suffix."""
    text = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def _first(params: Any, name: str) -> str:
    """Go's FormValue: the first value of a query parameter, "" if absent."""
    values = params.getlist(name)
    return values[0] if values else ""


def _is_true(value: str) -> bool:
    return value.lower() in ("true", "1", "yes", "on")


def _parse_int(text: str) -> int | None:
    """Go's strconv.Atoi: an optionally signed decimal, else None."""
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Operation:
    """One background operation, rendered exactly as `GET /1.0/operations/{id}` shows it."""

    cls: str
    description: str
    resources: dict[str, list[str]] | None = None
    metadata: dict[str, Any] | None = None
    may_cancel: bool = False
    project: str = "default"
    status_code: int = 103
    err: str = ""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    finish_after: float | None = None
    """Seconds after which the operation succeeds by itself (its clock starts on the next request)."""
    finish_at: float | None = None
    result_metadata: dict[str, Any] | None = None
    """Merged into `metadata` when the operation finishes by itself."""
    effect: Callable[[], None] | None = None
    """What the operation does when it finishes by itself (an instance changing state)."""
    ended_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    exec: ExecSession | None = None

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at

    @property
    def url(self) -> str:
        return f"/1.0/operations/{self.id}"

    @property
    def status(self) -> str:
        return _STATUS[self.status_code]

    @property
    def finished(self) -> bool:
        return self.status_code >= 200

    def extend_metadata(self, extra: dict[str, Any]) -> None:
        self.metadata = {**(self.metadata or {}), **extra}
        self.updated_at = time.time()

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": self.cls,
            "description": self.description,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "status": self.status,
            "status_code": self.status_code,
            "resources": self.resources,
            "metadata": self.metadata,
            "may_cancel": self.may_cancel,
            "err": self.err,
            "location": "none",
        }


class _WriteFailed(Exception):
    """The peer of an output websocket went away."""


async def _cancel_when(event: asyncio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _send_quietly(ws: WebSocket | None, text: str) -> None:
    if ws is None:
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await ws.send_text(text)


class ExecSession:
    """The websockets of one `wait-for-websocket` exec operation, and the command they carry."""

    def __init__(
        self,
        op: Operation,
        program: Program,
        *,
        interactive: bool,
        connect_timeout: float,
        chunk_size: int,
        end: Callable[[Operation, int, str], None],
    ) -> None:
        names = ["0", "control"] if interactive else ["0", "1", "2", "control"]
        self.op = op
        self.program = program
        self.interactive = interactive
        self.fds = {name: secrets.token_hex(32) for name in names}
        self.conns: dict[str, WebSocket | None] = dict.fromkeys(names)
        self.required = {"0", "control"} if interactive else {"0", "1", "2"}
        self.deadline = None if math.isinf(connect_timeout) else time.monotonic() + connect_timeout
        self.chunk_size = chunk_size
        self.stdin = Stdin()
        self.ready = asyncio.Event()
        self.ended = asyncio.Event()
        self.started = False
        self._end = end
        self._scope: anyio.CancelScope | None = None
        self._kill_code: int | None = None

    def fd_for(self, secret: str) -> str | None:
        return next((fd for fd, value in self.fds.items() if secrets.compare_digest(value, secret)), None)

    def kill(self, code: int = 137) -> None:
        """Kill the running command; it exits with `code` (128 + signal)."""
        if self._scope is not None and self._kill_code is None:
            self._kill_code = code
            self._scope.cancel()

    def timed_out(self) -> bool:
        return not self.started and self.deadline is not None and time.monotonic() >= self.deadline

    async def serve(self, fd: str, ws: WebSocket) -> None:
        """Run one accepted websocket until the command ends or its peer leaves; the caller then
        drops the connection without a close frame, as the daemon does."""
        if self.conns[fd] is not None or self.ended.is_set():
            return  # "Websocket number already connected": the daemon drops it after the upgrade
        self.conns[fd] = ws
        if all(self.conns[name] is not None for name in self.required):
            self.ready.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_when, self.ended, tg.cancel_scope)
            tg.start_soon(self._watchdog)
            if fd == ("0" if self.interactive else "1"):
                tg.start_soon(self._watch_driver, ws, tg.cancel_scope)
                await self._drive()
            elif fd == "0":
                await self._pump_stdin(ws)
            elif fd == "control":
                await self._control(ws)
            else:
                await _until_disconnect(ws)  # stderr: nothing should arrive
            tg.cancel_scope.cancel()

    async def _watchdog(self) -> None:
        if self.deadline is None:
            return
        await anyio.sleep(max(0.0, self.deadline - time.monotonic()))
        if not self.ready.is_set():
            self._end(self.op, 400, "Timed out waiting for websockets to connect")

    async def _drive(self) -> None:
        await self.ready.wait()
        self.started = True
        code = 137
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                code = await self.program(self._write, self.stdin)
            except _WriteFailed:
                code = 137
        self._scope = None
        if self._kill_code is not None:
            code = self._kill_code
        for name in ("0",) if self.interactive else ("1", "2"):
            await _send_quietly(self.conns[name], "")  # the end-of-stream barrier
        self.op.extend_metadata({"return": code})
        self._end(self.op, 200, "")

    async def _write(self, stream: int, data: bytes) -> None:
        ws = self.conns["0" if self.interactive else str(stream)]
        assert ws is not None
        if self.interactive:
            data = data.replace(b"\n", b"\r\n")  # the server-side PTY
        for start in range(0, len(data), self.chunk_size):
            try:
                await ws.send_bytes(data[start : start + self.chunk_size])
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                raise _WriteFailed from exc

    async def _watch_driver(self, ws: WebSocket, serve_scope: anyio.CancelScope) -> None:
        if self.interactive:
            await self._pump_stdin(ws)
        else:
            # Nothing should arrive on stdout: a read (or the peer leaving) means the client is
            # gone, and without a control socket nobody else would stop the command.
            await ws.receive()
        if not self.ready.is_set():
            serve_scope.cancel()  # gone before the command started: stop serving this socket
            return
        if not self.interactive and self.conns["control"] is None:
            self.kill(137)

    async def _pump_stdin(self, ws: WebSocket) -> None:
        """Feed binary frames to stdin; a text frame (the barrier) or the peer leaving is EOF."""
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                self.stdin.close()
                return
            data = message.get("bytes")
            if data is None:
                self.stdin.close()
                continue
            if self.interactive:  # the PTY echoes input and hands the program newlines
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                with contextlib.suppress(_WriteFailed):
                    await self._write(1, data)
            self.stdin.feed(data)

    async def _control(self, ws: WebSocket) -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                self.kill(137)
                return
            try:
                request = json.loads(message.get("text") or message.get("bytes") or b"")
            except ValueError:
                continue
            if isinstance(request, dict) and request.get("command") == "signal":
                signal = request.get("signal")
                if signal in (1, 2, 9, 15):
                    self.kill(128 + signal)


async def _until_disconnect(ws: WebSocket) -> None:
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------

_DEFAULT_INSTANCES = {
    "c1": {"type": "container", "status": "Running"},
    "vm1": {"type": "virtual-machine", "status": "Running"},
    "c2": {"type": "container", "status": "Stopped"},
}
_TEAM_INSTANCES = {  # the sandbox's `team` account: another daemon, other instances
    "team-c1": {"type": "container", "status": "Running"},
    "team-db1": {"type": "container", "status": "Stopped"},
    "team-vm1": {"type": "virtual-machine", "status": "Running"},
}
STATE_CHANGE_SECONDS = 0.5  # how long starting, stopping or freezing an instance takes
_INSTANCE_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110}
# action -> (states it applies to, the state it leaves, the operation's description)
_STATE_CHANGES = {
    "start": (("Stopped",), "Running", "Starting instance"),
    "stop": (("Running", "Frozen"), "Stopped", "Stopping instance"),
    "restart": (("Running",), "Running", "Restarting instance"),
    "freeze": (("Running",), "Frozen", "Freezing instance"),
    "unfreeze": (("Frozen",), "Running", "Unfreezing instance"),
}
_STATE_REFUSALS = {
    "start": "The instance is already running",
    "stop": "The instance is already stopped",
    "restart": "The instance isn't running",
    "freeze": "The instance isn't running",
    "unfreeze": "The instance isn't frozen",
}
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RECORD_CAP = 1 << 20


class _Overflow(Exception):
    """A recorded command produced more output than the simulator keeps: it never finishes."""


class IncusSimulator(Simulator):
    """Incus over a unix socket (trusted: no authentication).

    Constructor: `seed=True` (three operations, below), `linger=5.0` (seconds a finished
    operation stays visible), `exec_connect_timeout=10.0` (how long an exec waits for its
    websockets), `task_seconds=8.0` (how long the seeded task runs), `chunk_size=1024` (bytes per
    output frame).

    Seeded (ids in `seeded`): `"token"` a cancelable token operation with `metadata.secret`;
    `"task"` a non-cancelable "Snapshotting instance" task that succeeds `task_seconds` after the
    first request; `"exec"` an exec websocket operation running `uname -a` in `c1` that, unlike
    real Incus, waits for its websockets forever (so a newcomer has time to connect). Instances:
    `c1` (running container), `vm1` (running VM), `c2` (stopped).

    Helpers: `add_operation(...)`, `create_exec(command, output=None, return_code=0, ...)`,
    `finish(op_id, status="Success", err="")`; state in `operations` (id -> `Operation`).
    """

    provider = "incus"
    transport = "unix"
    seed_instances: ClassVar[dict[str, dict[str, str]]] = _DEFAULT_INSTANCES
    seed_container: ClassVar[str] = "c1"  # the running container the seeded operations act on
    server_name: ClassVar[str] = "sandbox"

    def __init__(
        self,
        *,
        seed: bool = True,
        linger: float = 5.0,
        exec_connect_timeout: float = 10.0,
        task_seconds: float = 8.0,
        chunk_size: int = 1024,
    ) -> None:
        self.linger = linger
        self.exec_connect_timeout = exec_connect_timeout
        self.chunk_size = chunk_size
        self.operations: dict[str, Operation] = {}
        self.instances: dict[str, dict[str, str]] = {k: dict(v) for k, v in self.seed_instances.items()}
        self.exec_outputs: dict[tuple[str, str], bytes] = {}
        self.filesystems: dict[str, FileSystem] = {}  # each instance's files, made at its first exec
        self.seeded: dict[str, str] = {}
        if seed:
            self._seed(task_seconds)
        super().__init__()

    def env(self, address: str) -> dict[str, str]:
        return {"INCUS_SOCKET": address}

    # -- helpers for tests and the sandbox -------------------------------------------------

    def add_operation(
        self,
        cls: str = "task",
        *,
        description: str = "Executing operation",
        status: str = "Running",
        may_cancel: bool = False,
        metadata: dict[str, Any] | None = None,
        resources: dict[str, list[str]] | None = None,
        project: str = "default",
        err: str = "",
        finish_after: float | None = None,
    ) -> dict[str, Any]:
        """Add an operation and return it rendered. Token operations always get a
        `metadata.secret` and are cancelable, as in the daemon."""
        if cls == "token":
            metadata = {"secret": secrets.token_hex(32), **(metadata or {})}
            may_cancel = True
        op = Operation(
            cls=cls,
            description=description,
            resources=resources,
            metadata=metadata,
            may_cancel=may_cancel,
            project=project,
            finish_after=finish_after,
        )
        self.operations[op.id] = op
        if _CODES[status] >= 200:
            self._end(op, _CODES[status], err)
        else:
            op.status_code, op.err = _CODES[status], err
        return op.render()

    def create_exec(
        self,
        command: Sequence[str],
        output: bytes | None = None,
        return_code: int = 0,
        *,
        stderr: bytes = b"",
        instance: str = "c1",
        interactive: bool = False,
        environment: dict[str, str] | None = None,
        connect_timeout: float | None = None,
        cwd: str = "",
        user: int = 0,
        group: int = 0,
    ) -> dict[str, Any]:
        """An exec websocket operation as `POST /1.0/instances/{instance}/exec` makes it.

        `output` (with `stderr`, `return_code`) replaces the interpreter's answer.
        `connect_timeout` defaults to `exec_connect_timeout`; `math.inf` waits forever."""
        program = canned(output, stderr, return_code) if output is not None else None
        timeout = self.exec_connect_timeout if connect_timeout is None else connect_timeout
        env = _exec_environment(environment or {}, user)
        op = self._new_exec(list(command), instance, interactive, env, program, timeout, _As(cwd, user, group))
        return op.render()

    def finish(self, op_id: str, status: str = "Success", err: str = "") -> None:
        """End an operation now (its websockets close; a running command is killed)."""
        self._end(self.operations[op_id], _CODES[status], err)

    # -- state ------------------------------------------------------------------------------

    def _seed(self, task_seconds: float) -> None:
        self.seeded["token"] = self.add_operation(
            "token",
            description="Certificate add token",
            metadata={"request": {"name": "sandbox-client", "type": "client", "restricted": False}},
        )["id"]
        self.seeded["task"] = self.add_operation(
            "task",
            description="Snapshotting instance",
            resources={
                "instances": [f"/1.0/instances/{self.seed_container}"],
                "instances_snapshots": [f"/1.0/instances/{self.seed_container}/snapshots/snap0"],
            },
            finish_after=task_seconds,
        )["id"]
        waiting = self.create_exec(["uname", "-a"], instance=self.seed_container, connect_timeout=math.inf)
        self.seeded["exec"] = waiting["id"]

    def _new_exec(
        self,
        command: list[str],
        instance: str,
        interactive: bool,
        env: dict[str, str],
        program: Program | None,
        connect_timeout: float,
        run_as: _As,
    ) -> Operation:
        op = Operation(
            cls="websocket",
            description="Executing command",
            resources={"instances": [f"/1.0/instances/{instance}"]},
        )
        run = program or (lambda write, stdin: run_command(command, self._proc(write, stdin, instance, env, run_as)))
        op.exec = ExecSession(
            op,
            run,
            interactive=interactive,
            connect_timeout=connect_timeout,
            chunk_size=self.chunk_size,
            end=self._end,
        )
        op.metadata = {
            "command": command,
            "environment": env,
            "fds": op.exec.fds,
            "interactive": interactive,
        }
        self.operations[op.id] = op
        return op

    def _proc(
        self, write: Write, stdin: Stdin, instance: str, env: dict[str, str], run_as: _As, sleep: Any = anyio.sleep
    ) -> Proc:
        """The shell's view of an exec: the instance's own files (kept while the sandbox runs), its environment,
        and liblxc's working directory (`cwd`, else $HOME; one that does not exist only draws a warning in the
        daemon's log, and the command runs at the container's root) and ids (no passwd entry needed)."""
        fs = self.filesystems.setdefault(instance, FileSystem(instance))
        cwd = FileSystem.resolve("/", run_as.cwd or env.get("HOME") or "/")
        node = fs.get(cwd)
        cwd = cwd if node is not None and node.is_dir else "/"
        user = fs.user_of(run_as.user, run_as.group)
        return Proc(write, stdin, instance, sleep, fs=fs, env=dict(env), cwd=cwd, user=user)

    def _end(self, op: Operation, status_code: int, err: str) -> None:
        if op.finished:
            return
        op.status_code, op.err = status_code, err
        op.ended_at = time.monotonic()
        op.done.set()
        if op.exec is not None:
            op.exec.kill(137)
            op.exec.ended.set()

    def _tick(self) -> None:
        """Advance the clock lazily: self-finishing operations end, finished ones vanish."""
        now = time.monotonic()
        for op in list(self.operations.values()):
            if op.finish_after is not None and op.finish_at is None:
                op.finish_at = now + op.finish_after
            if not op.finished and op.finish_at is not None and now >= op.finish_at:
                if op.result_metadata is not None:
                    op.extend_metadata(op.result_metadata)
                if op.effect is not None:
                    op.effect()
                self._end(op, 200, "")
            if op.exec is not None and op.exec.timed_out() and not op.finished:
                self._end(op, 400, "Timed out waiting for websockets to connect")
            if op.ended_at is not None and now - op.ended_at >= self.linger:
                del self.operations[op.id]

    # -- routes -----------------------------------------------------------------------------

    def build_app(self) -> Starlette:
        routes = [
            Route("/", self._root),
            Route("/1.0", self._server),
            Route("/1.0/operations", self._list_operations),
            Route("/1.0/operations/{id}", self._operation, methods=["GET", "DELETE"]),
            Route("/1.0/operations/{id}/wait", self._wait),
            Route("/1.0/operations/{id}/websocket", self._websocket_over_http),
            WebSocketRoute("/1.0/operations/{id}/websocket", self._websocket),
            Route("/1.0/instances", self._list_instances),
            Route("/1.0/instances/{name}", self._instance),
            Route("/1.0/instances/{name}/exec", self._exec, methods=["POST"]),
            Route("/1.0/instances/{name}/state", self._state, methods=["GET", "PUT"]),
            Route("/1.0/instances/{name}/logs/exec-output/{file}", self._exec_output, methods=["GET", "DELETE"]),
            WebSocketRoute("/{path:path}", self._websocket_not_found),
        ]

        async def not_found(request: Request, exc: Exception) -> Response:
            return error(404, "not found")

        async def not_implemented(request: Request, exc: Exception) -> Response:
            return error(501, "not implemented")

        return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_implemented})

    async def _root(self, request: Request) -> Response:
        return sync(["/1.0"])

    async def _server(self, request: Request) -> Response:
        return sync(
            {
                "config": {},
                "api_extensions": ["operation_location", "operation_wait", "instances", "container_exec_recording"],
                "api_status": "stable",
                "api_version": "1.0",
                "auth": "trusted",
                "auth_methods": ["tls"],
                "auth_user_name": "root",
                "auth_user_method": "unix",
                "public": False,
                "environment": {
                    "server": "incus",
                    "server_name": self.server_name,
                    "server_version": "6.0.0",
                    "server_clustered": False,
                    "project": "default",
                    "kernel": "Linux",
                    "architectures": ["x86_64"],
                },
            }
        )

    async def _list_operations(self, request: Request) -> Response:
        self._tick()
        project = _first(request.query_params, "project")
        all_projects = _is_true(_first(request.query_params, "all-projects"))
        if all_projects and project:
            return error(400, "Cannot specify a project when requesting all projects")
        project = project or "default"
        recursion = _parse_int(_first(request.query_params, "recursion")) or 0
        listing: dict[str, list[Any]] = {}
        for op in self.operations.values():
            if all_projects or op.project == project:
                listing.setdefault(op.status.lower(), []).append(op.render() if recursion else op.url)
        return sync(listing)

    async def _operation(self, request: Request) -> Response:
        self._tick()
        op = self.operations.get(request.path_params["id"])
        if op is None:
            return error(404, "Operation not found")
        if request.method == "GET":
            return sync(op.render())
        if op.status_code != 103:
            return error(400, "Only running operations can be cancelled")
        if not op.may_cancel:
            return error(400, "This operation can't be cancelled")
        self._end(op, 401, "")
        return sync({})

    async def _wait(self, request: Request) -> Response:
        self._tick()
        query = request.query_params
        secret = _first(query, "secret")
        if "public" in query and not secret:
            return error(403, "not authorized")
        raw_timeout = _first(query, "timeout")
        timeout = -1
        if raw_timeout:
            parsed = _parse_int(raw_timeout)
            if parsed is None:
                return error(500, f'strconv.Atoi: parsing "{raw_timeout}": invalid syntax')
            timeout = parsed
        op = self.operations.get(request.path_params["id"])
        if op is None:
            return error(404, "Operation not found")
        if secret and not secrets.compare_digest(str((op.metadata or {}).get("secret", "")), secret):
            return error(403, "not authorized")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, request, tg.cancel_scope)
            await self._wait_for(op, timeout)
            tg.cancel_scope.cancel()
        return sync(op.render())

    async def _wait_for(self, op: Operation, timeout: int) -> None:
        deadline = time.monotonic() + timeout if timeout >= 0 else float("inf")
        while not op.finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with anyio.move_on_after(min(remaining, 0.25)):
                await op.done.wait()
            self._tick()

    def _connect_check(self, op_id: str, secret: str) -> tuple[JSONResponse | None, str]:
        """Why a websocket to this operation is refused (before the upgrade), or the fd it is for."""
        self._tick()
        op = self.operations.get(op_id)
        if op is None:
            return error(400, "Missing websocket secret") if not secret else error(404, "Operation not found"), ""
        if op.cls != "websocket":
            return error(500, "Only websocket operations can be connected"), ""
        if op.status_code != 103:
            return error(500, "Only running operations can be connected"), ""
        if not secret:
            return error(500, "missing secret"), ""
        if op.exec is not None:
            fd = op.exec.fd_for(secret)
        else:
            values = [str(v) for v in (op.metadata or {}).values()]
            fd = "stream" if any(secrets.compare_digest(v, secret) for v in values) else None
        if fd is None:
            return error(403, "Forbidden"), ""
        return None, fd

    async def _websocket(self, ws: WebSocket) -> None:
        op_id = ws.path_params["id"]
        refusal, fd = self._connect_check(op_id, _first(ws.query_params, "secret"))
        if refusal is not None:
            await ws.send_denial_response(refusal)
            return
        op = self.operations[op_id]
        await ws.accept()
        if op.exec is not None:
            await op.exec.serve(fd, ws)
            return
        async with anyio.create_task_group() as tg:  # a generic websocket operation: no data
            tg.start_soon(_cancel_when, op.done, tg.cancel_scope)
            await _until_disconnect(ws)
            tg.cancel_scope.cancel()
        # returning without a close frame drops the connection, as the daemon does

    async def _websocket_over_http(self, request: Request) -> Response:
        refusal, _ = self._connect_check(request.path_params["id"], _first(request.query_params, "secret"))
        if refusal is not None:
            return refusal
        return error(400, "websocket: the client is not using the websocket protocol")

    async def _websocket_not_found(self, ws: WebSocket) -> None:
        await ws.send_denial_response(error(404, "not found"))

    async def _list_instances(self, request: Request) -> Response:
        self._tick()
        if (refusal := _project_refusal(request, listing=True)) is not None:
            return refusal
        recursion = _parse_int(_first(request.query_params, "recursion")) or 0
        if recursion:
            return sync([self._render_instance(name) for name in self.instances])
        return sync([f"/1.0/instances/{name}" for name in self.instances])

    async def _instance(self, request: Request) -> Response:
        self._tick()
        found = self._instance_of(request)
        if isinstance(found, Response):
            return found
        return sync(self._render_instance(request.path_params["name"]))

    def _instance_of(self, request: Request) -> dict[str, str] | Response:
        """The instance a `/1.0/instances/{name}...` request names, or the daemon's 404 (also for another
        project, which the sandbox does not have)."""
        if (refusal := _project_refusal(request)) is not None:
            return refusal
        instance = self.instances.get(request.path_params["name"])
        return error(404, "Instance not found") if instance is None else instance

    def _render_instance(self, name: str) -> dict[str, Any]:
        instance = self.instances[name]
        return {
            "name": name,
            "type": instance["type"],
            "status": instance["status"],
            "status_code": _INSTANCE_CODES[instance["status"]],
            "project": "default",
            "location": "none",
            "architecture": "x86_64",
            "description": "",
            "created_at": "2026-01-05T09:00:00Z",
            "ephemeral": False,
            "stateful": False,
            "profiles": ["default"],
            "config": {"image.os": "Debian", "image.release": "bookworm"},
        }

    async def _state(self, request: Request) -> Response:
        """`GET`/`PUT /1.0/instances/{name}/state`: a state change is a task that takes a moment."""
        self._tick()
        name = request.path_params["name"]
        instance = self._instance_of(request)
        if isinstance(instance, Response):
            return instance
        if request.method == "GET":
            return sync({"status": instance["status"], "status_code": _INSTANCE_CODES[instance["status"]]})
        try:
            put = json.loads(await request.body())
        except ValueError as exc:
            return error(400, str(exc))
        action = put.get("action") if isinstance(put, dict) else None
        change = _STATE_CHANGES.get(action) if isinstance(action, str) else None
        if change is None:
            return error(400, f"Unknown action: {action!r}")
        allowed_from, to, description = change

        def effect() -> None:
            instance["status"] = to

        resources = {"instances": [f"/1.0/instances/{name}"]}
        op = Operation(cls="task", description=description, resources=resources, effect=effect)
        op.finish_at = time.monotonic() + STATE_CHANGE_SECONDS
        self.operations[op.id] = op
        answer = async_(op)
        if instance["status"] not in allowed_from:  # the daemon refuses inside the operation, not the request
            self._end(op, 400, _STATE_REFUSALS[action])
        return answer

    async def _exec(self, request: Request) -> Response:
        self._tick()
        try:
            post = json.loads(await request.body())
        except ValueError as exc:
            return error(400, str(exc))
        if not isinstance(post, dict):
            return error(400, "json: cannot unmarshal into Go value of type api.InstanceExecPost")
        command = post.get("command") or []
        if not isinstance(command, list) or not all(isinstance(word, str) for word in command):
            return error(400, "json: cannot unmarshal into Go struct field InstanceExecPost.command of type []string")
        wait_ws = bool(post.get("wait-for-websocket"))
        interactive, record = bool(post.get("interactive")), bool(post.get("record-output"))
        if record and wait_ws:
            return error(400, 'Cannot use "record-output" in combination with "wait-for-websocket"')
        if interactive and record:
            return error(400, 'Cannot use "interactive" in combination with "record-output"')
        name = request.path_params["name"]
        instance = self._instance_of(request)
        if isinstance(instance, Response):
            return instance
        if instance["status"] == "Frozen":
            return error(400, "Instance is frozen")
        if instance["status"] != "Running":
            return error(400, "Instance is not running")
        run_as = _run_as(post)
        if isinstance(run_as, Response):
            return run_as
        environment = {str(k): str(v) for k, v in (post.get("environment") or {}).items()}
        env = _exec_environment(environment, run_as.user)
        if wait_ws:
            op = self._new_exec(command, name, interactive, env, None, self.exec_connect_timeout, run_as)
            return async_(op)
        return async_(await self._exec_task(command, name, record, env, run_as))

    async def _exec_task(
        self, command: list[str], name: str, record: bool, env: dict[str, str], run_as: _As
    ) -> Operation:
        """An exec without websockets: run it in virtual time, finish it lazily."""
        output: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        elapsed = 0.0

        async def write(stream: int, data: bytes) -> None:
            output[stream].extend(data)
            if len(output[1]) + len(output[2]) > _RECORD_CAP:
                raise _Overflow

        async def sleep(seconds: float) -> None:
            nonlocal elapsed
            elapsed += seconds

        resources = {"instances": [f"/1.0/instances/{name}"]}
        if self.instances[name]["type"] == "container":
            resources["containers"] = resources["instances"]
        op = Operation(cls="task", description="Executing command", resources=resources)
        try:
            code = await run_command(command, self._proc(write, Stdin.empty(), name, env, run_as, sleep))
        except _Overflow:
            self.operations[op.id] = op  # like `yes` on a real daemon: it runs until stopped
            return op
        result: dict[str, Any] = {"return": code}
        if record:
            files = {stream: f"exec_{op.id}.std{'out' if stream == 1 else 'err'}" for stream in (1, 2)}
            for stream, file in files.items():
                self.exec_outputs[(name, file)] = bytes(output[stream])
            result["output"] = {
                str(stream): f"/1.0/instances/{name}/logs/exec-output/{file}" for stream, file in files.items()
            }
        op.finish_at, op.result_metadata = time.monotonic() + elapsed, result
        self.operations[op.id] = op
        return op

    async def _exec_output(self, request: Request) -> Response:
        key = (request.path_params["name"], request.path_params["file"])
        if key not in self.exec_outputs:
            return error(404, "not found")
        if request.method == "DELETE":
            del self.exec_outputs[key]
            return sync({})
        return Response(self.exec_outputs[key], media_type="application/octet-stream")


@dataclass(frozen=True)
class _As:
    """An exec's `cwd`, `user` and `group` (uid and gid: Incus takes numbers, not names)."""

    cwd: str = ""
    user: int = 0
    group: int = 0


def _run_as(post: dict[str, Any]) -> _As | Response:
    """`cwd`, `user`, `group` from an exec body, or the daemon's 400 for what Go's JSON decoding refuses."""
    cwd = post.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        return error(
            400, f"json: cannot unmarshal {_json_type(cwd)} into Go struct field InstanceExecPost.cwd of type string"
        )
    ids = []
    for name in ("user", "group"):
        value = post.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32):
            shown = (
                f"number {value}"
                if isinstance(value, int | float) and not isinstance(value, bool)
                else _json_type(value)
            )
            return error(
                400, f"json: cannot unmarshal {shown} into Go struct field InstanceExecPost.{name} of type uint32"
            )
        ids.append(value or 0)
    return _As(cwd or "", ids[0], ids[1])


def _json_type(value: Any) -> str:
    return {bool: "bool", str: "string", list: "array", dict: "object"}.get(type(value), "number")


def _exec_environment(environment: dict[str, str], user: int) -> dict[str, str]:
    """The daemon's defaults under what the request sets: PATH and LANG always, HOME and USER for root only."""
    defaults = {"PATH": _DEFAULT_PATH} | ({"HOME": "/root", "USER": "root"} if user == 0 else {}) | {"LANG": "C.UTF-8"}
    return defaults | environment


def _project_refusal(request: Request, *, listing: bool = False) -> Response | None:
    """The sandbox has one project, `default`. Like LXD 5.0, a listing of another project is empty and
    an instance in it is not found."""
    project = _first(request.query_params, "project")
    if listing and project and _is_true(_first(request.query_params, "all-projects")):
        return error(400, "Cannot specify a project when requesting all projects")
    if project not in ("", "default"):
        return sync([]) if listing else error(404, "Instance not found")
    return None


async def _cancel_on_disconnect(request: Request, scope: anyio.CancelScope) -> None:
    """Stop a long-poll when its client goes away (so the server can shut down)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


class TeamIncusSimulator(IncusSimulator):
    """The sandbox's `team` account: another Incus daemon (another unix socket; the socket's permissions are
    the credential), whose instances are `team-c1` (running container), `team-db1` (stopped container) and
    `team-vm1` (running VM); the seeded operations act on `team-c1`."""

    seed_instances: ClassVar[dict[str, dict[str, str]]] = _TEAM_INSTANCES
    seed_container: ClassVar[str] = "team-c1"
    server_name: ClassVar[str] = "sandbox-team"
