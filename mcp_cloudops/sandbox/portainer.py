"""A stateful Portainer CE simulator: the four `/api/websocket/*` routes, and the calls that find
their ids (environments, Docker containers, Kubernetes pods) and make a Docker exec, with
Portainer's auth, errors and stream quirks.

What it follows from Portainer (`api/http/handler/websocket/*.go`, `api/ws`, the request bouncer):

- Auth: `X-API-Key` (header, or a query parameter of that name in any case) or a JWT
  (`Authorization: Bearer`, or `token` query). Anything else is 401
  `{"message":"A valid authorisation token is missing","details":"Unauthorized"}`; an API key
  sent as a bearer token is not a JWT, so it is refused too. The sandbox JWT is `SANDBOX_JWT`.
- Parameters and the environment are checked before the upgrade (400, 404 with
  `{"message","details"}`); what Docker or Kubernetes refuse (unknown exec or container, an exec
  that already ran, an unknown pod) is only found after it: the socket opens, then drops (1006, no
  bytes, no HTTP error status). Portainer's handlers call `connectionUpgrader.Upgrade` first and only
  then hijack Docker's `POST /containers/{id}/attach` or `/exec/{id}/start` (`hijackRequest`:
  "unable to upgrade to tcp, received 404|409") or start the Kubernetes exec; the error they return
  goes to an already hijacked connection (logged, never sent) and the deferred `Close` drops the
  socket. So Docker's "No such container: <id>", "No such exec instance: <id>", the 409 "Exec
  command <id> has already run" and Kubernetes' `pods "x" not found` never reach the client; a
  client learns them from the HTTP routes (`GET .../exec/{id}/json`, the container and pod lists).
- Output is relayed as text frames of at most 2048 bytes with invalid UTF-8 dropped, stdout and
  stderr merged. Portainer ends a session by dropping the TCP connection (no close frame: the
  client sees 1006). A client frame over 2048 bytes is refused with close code 1009.
- exec: Portainer starts the exec with `Tty: true`, so the stream is raw; the socket drops when
  the process ends and the exit code is only in `GET .../docker/exec/{id}/json`.
- attach: a live stream of the container (no log replay); without a TTY Docker multiplexes it,
  so each frame starts with the 8-byte stream header. It never ends by itself.
- pod and kubernetes-shell run under a TTY (`\\n` becomes `\\r\\n`, input is echoed) and the socket
  stays open after the command ends: clients need an idle or deadline cutoff.
- `GET /api/endpoints`: `search` (name, URL, or "up"/"down"), `types[]`, then `start` (from 1; 0
  counts as 1) and `limit` (0: all); `X-Total-Count` is the count before the page is cut.
  `excludeSnapshots=true` leaves out each environment's snapshot (its whole container list).
- Docker and Kubernetes calls are proxied: past the environment check, errors are the engine's own
  (`{"message"}` from Docker, a `Status` from Kubernetes). A Kubernetes path on a Docker
  environment reaches Docker, which answers 404 "page not found". An exec only relays the streams
  it was created with (`AttachStdout`, `AttachStderr`; Docker's default is neither).

Test helpers (see `PortainerSimulator`): `create_exec`, `get_exec`, `endpoints`, seeded ids.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.base import Simulator
from mcp_cloudops.sandbox.shell import Proc, Stdin, is_known, run_command, run_shell
from mcp_cloudops.sandbox.shell_fs import ROOT, FileSystem, User
from mcp_cloudops.sandbox.shell_io import DEFAULT_PATH

SANDBOX_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6MSwidXNlcm5hbWUiOiJhZG1pbiIsInJvbGUiOjF9.sandbox"
"""A JWT the simulator accepts as `Authorization: Bearer` or `?token=` (public by design)."""
TEAM_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6MiwidXNlcm5hbWUiOiJ0ZWFtIiwicm9sZSI6MX0.sandbox-team"
"""The `team` Portainer's JWT (user "team"): the default one is refused there, and this one here."""

FRAME_LIMIT = 2048
"""Portainer's read buffer: the most bytes one output frame carries, and the largest client frame."""

DOCKER, DOCKER_AGENT = 1, 2  # Portainer environment types: Docker (local), Docker through the Portainer agent
KUBERNETES, KUBERNETES_AGENT = 5, 6  # Kubernetes (local), Kubernetes through the agent
UP, DOWN = 1, 2  # Portainer environment statuses
_UNAUTHORIZED = {"message": "A valid authorisation token is missing", "details": "Unauthorized"}
_NO_ENDPOINT = "Unable to find the environment associated to the stack inside the database"
_CREATED = 1735689600  # 2025-01-01T00:00:00Z: every sandbox object's creation time
DOCKER_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _hex_id(seed: str) -> str:
    """A stable 64-hex Docker id, so sandbox ids stay the same between runs."""
    return hashlib.sha256(seed.encode()).hexdigest()


def perror(status: int, message: str, details: str | None = None) -> JSONResponse:
    """Portainer's error body."""
    return JSONResponse({"message": message, "details": details or message}, status_code=status)


def docker_error(status: int, message: str) -> JSONResponse:
    """Docker's error body, relayed as-is by Portainer's Docker proxy."""
    return JSONResponse({"message": message}, status_code=status)


def _first(params: Any, name: str) -> str:
    values = params.getlist(name)
    return values[0] if values else ""


def _number(text: str | None) -> int:
    """Go's `strconv.Atoi` as Portainer reads an optional number: anything unparsable is 0."""
    return int(text) if text and re.fullmatch(r"[+-]?\d+", text) else 0


def kube_status(code: int, reason: str, message: str) -> JSONResponse:
    """The Kubernetes API's error body, relayed as-is by Portainer's Kubernetes proxy."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    return JSONResponse({**body, "message": message, "reason": reason, "code": code}, status_code=code)


def docker_filters(raw: str) -> dict[str, list[str]] | JSONResponse:
    """Docker's `filters` query: JSON {key: [values]} (or the legacy {key: {value: true}})."""
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return docker_error(400, "invalid filter")
    filters = {key: list(values) for key, values in parsed.items() if isinstance(values, list | dict)}
    if len(filters) != len(parsed) or not all(isinstance(v, str) for vs in filters.values() for v in vs):
        return docker_error(400, "invalid filter")
    for key, values in filters.items():
        if key not in ("id", "name", "status", "label"):
            return docker_error(400, f"invalid filter '{key}'")
        if key == "status" and (bad := [v for v in values if v not in DOCKER_STATES]):
            return docker_error(400, f"invalid filter 'status={bad[0]}'")
    return filters


@dataclass(eq=False)
class Container:
    """A Docker container: `log` is what it prints after an attach, one line per `interval`."""

    name: str
    image: str
    state: str = "running"
    tty: bool = False
    log: list[str] = field(default_factory=list)
    endless: bool = False
    interval: float = 0.05
    labels: dict[str, str] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or _hex_id(f"container:{self.name}")

    def summary(self) -> dict[str, Any]:
        """The container as `GET /containers/json` lists it (the fields agents use, not all of them)."""
        status = "Up 3 days" if self.state == "running" else "Exited (0) 2 hours ago"
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Image": self.image,
            "ImageID": "sha256:" + _hex_id(f"image:{self.image}"),
            "Command": "/docker-entrypoint.sh",
            "Created": _CREATED,
            "Ports": [],
            "Labels": self.labels,
            "State": self.state,
            "Status": status,
        }

    def matches(self, filters: dict[str, list[str]]) -> bool:
        """Docker's filters: each key must match, by any of its values; `name` is a regular expression."""
        tests: dict[str, Callable[[str], bool]] = {
            "id": self.id.startswith,
            "name": lambda pattern: _searches(pattern, f"/{self.name}"),
            "status": lambda state: state == self.state,
            "label": self._labelled,
        }
        return all(any(tests[key](value) for value in values) for key, values in filters.items())

    def _labelled(self, label: str) -> bool:
        """Docker's `label` filter: `key` (present) or `key=value`."""
        key, equals, value = label.partition("=")
        return key in self.labels and (not equals or self.labels[key] == value)


def _compose(service: str, project: str = "shop") -> dict[str, str]:
    """The labels Docker Compose puts on a service's container."""
    return {"com.docker.compose.project": project, "com.docker.compose.service": service}


def _searches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


@dataclass(eq=False)
class DockerExec:
    """A Docker exec instance: it can start once; `exit_code` is None until it has run."""

    container: Container
    cmd: list[str]
    attach_stdin: bool = False
    tty: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    user: str = ""
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    id: str = field(default_factory=lambda: secrets.token_hex(32))
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0

    @property
    def streams(self) -> frozenset[int]:
        """The output streams it was created attached to (1 stdout, 2 stderr): only they are relayed."""
        return frozenset(n for n, attached in ((1, self.attach_stdout), (2, self.attach_stderr)) if attached)

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "entrypoint": self.cmd[0] if self.cmd else "",
                "arguments": self.cmd[1:],
                "privileged": False,
                "tty": self.tty,
                "user": self.user,
            },
            "OpenStdin": self.attach_stdin,
            "OpenStdout": self.attach_stdout,
            "OpenStderr": self.attach_stderr,
            "CanRemove": False,
            "ContainerID": self.container.id,
            "DetachKeys": "",
            "Pid": self.pid,
        }


@dataclass(eq=False)
class Endpoint:
    """A Portainer environment: Docker containers and execs, or Kubernetes pods."""

    id: int
    name: str
    type: int
    url: str
    status: int = UP
    containers: dict[str, Container] = field(default_factory=dict)
    execs: dict[str, DockerExec] = field(default_factory=dict)
    pods: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """namespace -> pod -> container names"""

    @property
    def kubernetes(self) -> bool:
        return self.type in (5, 6, 7)

    def summary(self, *, snapshots: bool = False) -> dict[str, Any]:
        """As `GET /api/endpoints` lists it; a snapshot (with every container) only when asked."""
        snapshot = None
        if snapshots and not self.kubernetes:
            running = sum(c.state == "running" for c in self.containers.values())
            raw = {"Containers": [c.summary() for c in self.containers.values()]}
            snapshot = [
                {
                    "DockerVersion": "27.3.1",
                    "RunningContainerCount": running,
                    "StoppedContainerCount": len(self.containers) - running,
                    "Time": _CREATED,
                    "DockerSnapshotRaw": raw,
                }
            ]
        return {
            "Id": self.id,
            "Name": self.name,
            "Type": self.type,
            "ContainerEngine": "" if self.kubernetes else "docker",
            "URL": self.url,
            "GroupId": 1,
            "PublicURL": "",
            "TagIds": [],
            "Status": self.status,
            "Snapshots": snapshot,
            "Kubernetes": {"Snapshots": None},
        }

    def searched(self, search: str) -> bool:
        """Portainer's `search`: lower-case text in the name or URL, or "up"/"down" for the status."""
        status = {UP: "up", DOWN: "down"}.get(self.status)
        return search in self.name.lower() or search in self.url.lower() or search == status

    def pod_list(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's pods as the Kubernetes API returns them (a namespace it lacks has none)."""
        return [_pod(namespace, name, containers) for name, containers in self.pods.get(namespace, {}).items()]

    def find_container(self, ref: str) -> Container | None:
        """Docker's lookup: full id, name, or a unique id prefix."""
        if ref in self.containers:
            return self.containers[ref]
        by_name = [c for c in self.containers.values() if c.name == ref.lstrip("/")]
        by_prefix = [c for c in self.containers.values() if c.id.startswith(ref)]
        matches = by_name or by_prefix
        return matches[0] if len(matches) == 1 else None


def _pod(namespace: str, name: str, containers: list[str]) -> dict[str, Any]:
    """A running pod as the Kubernetes API lists it, less what no test reads (managedFields, volumes...)."""
    uid = hashlib.sha256(f"pod:{namespace}/{name}".encode()).hexdigest()
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}",
            "labels": {"app": name.rsplit("-", 1)[0]},
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": c, "image": f"{c}:1.0"} for c in containers], "nodeName": "sandbox"},
        "status": {"phase": "Running"},
    }


def _namespace(name: str) -> dict[str, Any]:
    uid = hashlib.sha256(f"namespace:{name}".encode()).hexdigest()
    return {
        "metadata": {
            "name": name,
            "uid": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}",
            "labels": {"kubernetes.io/metadata.name": name},
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


class TextFrames:
    """Output as Portainer relays it: text frames of at most 2048 bytes, invalid UTF-8 dropped,
    stdout and stderr merged. Under a TTY, `\\n` goes out as `\\r\\n`."""

    def __init__(self, ws: WebSocket, *, tty: bool, streams: frozenset[int] = frozenset({1, 2})) -> None:
        self.ws, self.tty, self.streams = ws, tty, streams

    async def write(self, stream: int, data: bytes) -> None:
        if (1 if self.tty else stream) not in self.streams:
            return  # not attached: Docker discards it (under a TTY, stderr is the terminal too)
        if self.tty:
            data = data.replace(b"\n", b"\r\n")
        for start in range(0, len(data), FRAME_LIMIT):
            try:
                await self.ws.send_text(data[start : start + FRAME_LIMIT].decode("utf-8", errors="ignore"))
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                raise BrokenPipeError from exc


class _Process:
    """A program run under a cancel scope, so the socket side can kill it."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.kill_code: int | None = None
        self.done = False

    def kill(self, code: int) -> None:
        if not self.done and self.kill_code is None:
            self.kill_code = code
            self.scope.cancel()

    async def run(self, program: Callable[[], Awaitable[int]]) -> int:
        code = 137
        with self.scope:
            try:
                code = await program()
            except BrokenPipeError:
                code = 141  # SIGPIPE: its output had nowhere to go
        self.done = True
        return self.kill_code if self.kill_code is not None else code


def _tty_input(data: bytes) -> bytes:
    """What a TTY line discipline hands the program: carriage returns become newlines."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


class PortainerSimulator(Simulator):
    """Portainer CE on 127.0.0.1, authenticated by its `api_key` (`credentials.PORTAINER_API_KEY`) or `jwt`
    (`SANDBOX_JWT`).

    Constructor: `seed=True`, `log_interval=0.05` (between attach lines), `tick_interval=0.5`
    (the endless container), `disconnect_grace=1.0` (seconds a Docker exec may run on after its
    socket closes before it is killed; real Docker would let it run).

    Seeded environment 1 "local" (Docker): containers `web` (nginx, no TTY, prints three access log
    lines on attach), `ticker` (TTY, prints "tick N" forever) and `db` (exited); ids in
    `container_ids` (`container_id` is web's). Exec instances on web: `exec_id` runs
    `echo hello from web`, `shell_exec_id` runs `sh` with stdin attached. Environment 2 "k8s"
    (Kubernetes): namespace "default" with pods "web-0" and "web-1" (container "web"), "kube-system"
    with "coredns-0". web and db carry Docker Compose labels (project "shop").

    Helpers: `create_exec(endpoint_id, container_id, cmd, attach_stdin=False, tty=False) -> exec id`,
    `get_exec(exec_id) -> DockerExec`; state in `endpoints` (id -> `Endpoint`).
    """

    provider = "portainer"

    def __init__(
        self,
        *,
        seed: bool = True,
        log_interval: float = 0.05,
        tick_interval: float = 0.5,
        disconnect_grace: float = 1.0,
        api_key: str = credentials.PORTAINER_API_KEY,
        jwt: str = SANDBOX_JWT,
    ) -> None:
        self.api_key = api_key  # the only X-API-Key accepted (another is 401, as upstream), and env()'s
        self.jwt = jwt
        self.disconnect_grace = disconnect_grace
        self.endpoints: dict[int, Endpoint] = {}
        self.container_ids: dict[str, str] = {}
        self.container_id = self.exec_id = self.shell_exec_id = ""
        self.filesystems: dict[str, FileSystem] = {}  # each container's and pod's files, made at its first exec
        if seed:
            self._seed(log_interval, tick_interval)
        super().__init__()

    def env(self, address: str) -> dict[str, str]:
        return {"PORTAINER_URL": address, "PORTAINER_API_KEY": self.api_key}

    # -- helpers for tests and the sandbox -------------------------------------------------

    def create_exec(
        self, endpoint_id: int, container_id: str, cmd: list[str], *, attach_stdin: bool = False, tty: bool = False
    ) -> str:
        """An exec instance as `POST .../docker/containers/{id}/exec` makes it; returns its id."""
        endpoint = self.endpoints[endpoint_id]
        container = endpoint.find_container(container_id)
        if container is None:
            raise KeyError(container_id)
        instance = DockerExec(container, list(cmd), attach_stdin=attach_stdin, tty=tty)
        endpoint.execs[instance.id] = instance
        return instance.id

    def get_exec(self, exec_id: str) -> DockerExec:
        for endpoint in self.endpoints.values():
            if exec_id in endpoint.execs:
                return endpoint.execs[exec_id]
        raise KeyError(exec_id)

    def _seed(self, log_interval: float, tick_interval: float) -> None:
        access = '172.17.0.1 - - [01/Jan/2025:00:00:0{n} +0000] "GET /{path} HTTP/1.1" 200 615'
        web = Container(
            "web",
            "nginx:1.27",
            log=[access.format(n=n, path=path) for n, path in enumerate(["", "health", "favicon.ico"])],
            interval=log_interval,
            labels=_compose("web"),
        )
        ticker = Container("ticker", "busybox:1.36", tty=True, endless=True, interval=tick_interval)
        db = Container("db", "postgres:16", state="exited", labels=_compose("db"))
        docker = Endpoint(1, "local", DOCKER, "unix:///var/run/docker.sock")
        docker.containers = {c.id: c for c in (web, ticker, db)}
        self.endpoints[1] = docker
        self.container_ids = {c.name: c.id for c in (web, ticker, db)}
        self.container_id = web.id
        self.exec_id = self._seeded_exec(docker, web, ["echo", "hello from web"], "echo")
        self.shell_exec_id = self._seeded_exec(docker, web, ["sh"], "shell", attach_stdin=True)
        kube = Endpoint(2, "k8s", KUBERNETES, "https://kubernetes.default.svc")
        kube.pods = {"default": {"web-0": ["web"], "web-1": ["web"]}, "kube-system": {"coredns-0": ["coredns"]}}
        self.endpoints[2] = kube

    @staticmethod
    def _seeded_exec(endpoint: Endpoint, container: Container, cmd: list[str], name: str, **kw: Any) -> str:
        instance = DockerExec(container, cmd, id=_hex_id(f"exec:{name}"), **kw)
        endpoint.execs[instance.id] = instance
        return instance.id

    # -- auth and parameters ----------------------------------------------------------------

    def _authorized(self, conn: HTTPConnection) -> bool:
        api_key = conn.headers.get("x-api-key") or next(
            (value for name, value in conn.query_params.multi_items() if name.lower() == "x-api-key"), ""
        )
        if api_key and secrets.compare_digest(api_key, self.api_key):
            return True
        token = _first(conn.query_params, "token")
        if "authorization" in conn.headers:
            token = conn.headers["authorization"].removeprefix("Bearer ")
        return bool(token) and secrets.compare_digest(token, self.jwt)

    def _endpoint_param(self, params: Any) -> Endpoint | JSONResponse:
        raw = _first(params, "endpointId")
        if not raw:
            return perror(400, "Invalid query parameter: endpointId", "Missing query parameter")
        if not re.fullmatch(r"[+-]?\d+", raw):
            return perror(400, "Invalid query parameter: endpointId", f'strconv.Atoi: parsing "{raw}": invalid syntax')
        endpoint = self.endpoints.get(int(raw))
        if endpoint is None:
            return perror(404, _NO_ENDPOINT, "object not found inside the database")
        return endpoint

    def _docker_id_params(self, params: Any) -> tuple[Endpoint, str] | JSONResponse:
        """attach and exec: a hexadecimal `id`, then the environment."""
        ref = _first(params, "id")
        if not ref:
            return perror(400, "Invalid query parameter: id", "Missing query parameter")
        if not re.fullmatch(r"[0-9a-fA-F]+", ref):
            return perror(400, "Invalid query parameter: id (must be hexadecimal identifier)")
        endpoint = self._endpoint_param(params)
        return endpoint if isinstance(endpoint, JSONResponse) else (endpoint, ref)

    def _pod_params(self, params: Any) -> tuple[Endpoint, str, str, str, str] | JSONResponse:
        endpoint = self._endpoint_param(params)
        if isinstance(endpoint, JSONResponse):
            return endpoint
        values = []
        for name in ("namespace", "podName", "containerName", "command"):
            value = _first(params, name)
            if not value:
                return perror(400, f"Invalid query parameter: {name}", "Missing query parameter")
            values.append(value)
        if not endpoint.kubernetes:
            return perror(500, "Unable to create Kubernetes client", "environment is not a Kubernetes environment")
        namespace, pod, container, command = values
        return endpoint, namespace, pod, container, command

    def _shell_params(self, params: Any) -> Endpoint | JSONResponse:
        endpoint = self._endpoint_param(params)
        if isinstance(endpoint, Endpoint) and not endpoint.kubernetes:
            return perror(500, "Unable to create Kubernetes client", "environment is not a Kubernetes environment")
        return endpoint

    # -- routes -----------------------------------------------------------------------------

    def build_app(self) -> Starlette:
        websockets = {
            "attach": (self._docker_id_params, self._attach),
            "exec": (self._docker_id_params, self._exec),
            "pod": (self._pod_params, self._pod),
            "kubernetes-shell": (self._shell_params, self._shell),
        }
        routes: list[Any] = [Route("/api/status", self._status)]
        for name, (check, run) in websockets.items():
            routes.append(WebSocketRoute(f"/api/websocket/{name}", self._websocket(check, run)))
            routes.append(Route(f"/api/websocket/{name}", self._plain_http(check)))
        routes += [
            Route("/api/endpoints", self._list_endpoints),
            Route("/api/endpoints/{eid}", self._get_endpoint),
            Route("/api/endpoints/{eid}/docker/containers/json", self._list_containers),
            Route("/api/endpoints/{eid}/docker/containers/{cid}/exec", self._exec_create, methods=["POST"]),
            Route("/api/endpoints/{eid}/docker/exec/{xid}/json", self._exec_inspect),
            Route("/api/endpoints/{eid}/kubernetes/api/v1/namespaces", self._list_namespaces),
            Route("/api/endpoints/{eid}/kubernetes/api/v1/namespaces/{ns}/pods", self._list_pods),
        ]

        async def not_found(request: Request, exc: Exception) -> Response:
            return PlainTextResponse("404 page not found\n", status_code=404)

        async def not_allowed(request: Request, exc: Exception) -> Response:
            return PlainTextResponse("405 method not allowed\n", status_code=405)

        return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})

    def _websocket(self, check: Callable[[Any], Any], run: Callable[[WebSocket, Any], Awaitable[None]]) -> Any:
        async def endpoint(ws: WebSocket) -> None:
            if not self._authorized(ws):
                await ws.send_denial_response(JSONResponse(_UNAUTHORIZED, status_code=401))
                return
            outcome = check(ws.query_params)
            if isinstance(outcome, Response):
                await ws.send_denial_response(outcome)
                return
            await ws.accept()
            await run(ws, outcome)
            # Returning without a close frame drops the connection, as Portainer does.

        return endpoint

    def _plain_http(self, check: Callable[[Any], Any]) -> Any:
        async def endpoint(request: Request) -> Response:
            if not self._authorized(request):
                return JSONResponse(_UNAUTHORIZED, status_code=401)
            outcome = check(request.query_params)
            if isinstance(outcome, Response):
                return outcome
            return PlainTextResponse("Bad Request\n", status_code=400, headers={"Sec-Websocket-Version": "13"})

        return endpoint

    async def _status(self, request: Request) -> Response:
        return JSONResponse({"Version": "2.27.0", "InstanceID": "sandbox"})

    # -- websocket sessions -----------------------------------------------------------------

    async def _exec(self, ws: WebSocket, params: tuple[Endpoint, str]) -> None:
        endpoint, exec_id = params
        instance = endpoint.execs.get(exec_id)
        if instance is None or instance.started or instance.container.state != "running":
            return  # Docker's 404 "No such exec instance" / 409 "has already run": the socket just drops
        instance.started = instance.running = True
        instance.pid = 1000 + len(endpoint.execs)
        argv = instance.cmd
        container = instance.container
        hostname = container.id[:12]
        fs = self._files(container.id, hostname, container.image)
        user = _docker_user(fs, instance.user)
        cwd = FileSystem.resolve("/", instance.working_dir or "/")
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname} | ({"TERM": "xterm"} if instance.tty else {})
        env |= dict(item.split("=", 1) for item in instance.env if "=" in item)
        if isinstance(user, User):
            env.setdefault("HOME", user.home)

        async def program(proc: Proc) -> int:
            failure = _start_failure(user, fs, cwd, argv, container.image)
            if failure is not None:
                await proc.out(failure[0] + "\r\n")
                return failure[1]
            return await run_command(argv, proc)

        code = await self._session(
            ws,
            program,
            hostname,
            stdin=instance.attach_stdin,
            tty=instance.tty,
            streams=instance.streams,
            context={
                "fs": fs,
                "env": env,
                "cwd": cwd,
                "user": user if isinstance(user, User) else ROOT,
                "image": container.image,
            },
        )
        instance.running, instance.exit_code = False, code

    async def _pod(self, ws: WebSocket, params: tuple[Endpoint, str, str, str, str]) -> None:
        endpoint, namespace, pod, container, command = params
        argv = command.split(" ")
        image = f"{container}:1.0"  # as the pod list shows it
        if container not in endpoint.pods.get(namespace, {}).get(pod, []) or not is_known(argv[0], image):
            return  # Kubernetes refused the exec: "Unable to start exec process inside container"
        fs = self._files(f"{endpoint.id}/{namespace}/{pod}/{container}", pod, image)
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": pod, "TERM": "xterm", "HOME": "/root"} | _KUBERNETES_ENV
        context = {"fs": fs, "env": env, "cwd": "/", "image": image}
        await self._session(
            ws, lambda proc: run_command(argv, proc), pod, stdin=True, tty=True, keep_open=True, context=context
        )

    async def _shell(self, ws: WebSocket, endpoint: Endpoint) -> None:
        fs = self._files(f"{endpoint.id}/kubectl-shell", "kubectl-shell", "")
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": "kubectl-shell", "TERM": "xterm", "HOME": "/root"} | _KUBERNETES_ENV
        await self._session(
            ws,
            lambda proc: run_shell(proc, prompt="$ "),
            "kubectl-shell",
            stdin=True,
            tty=True,
            keep_open=True,
            context={"fs": fs, "env": env, "cwd": "/root", "cluster": endpoint.pods},
        )

    def _files(self, key: str, hostname: str, image: str) -> FileSystem:
        """A container's or pod's files: made at its first exec, kept for as long as the sandbox runs."""
        return self.filesystems.setdefault(key, FileSystem(hostname, image))

    async def _session(
        self,
        ws: WebSocket,
        program: Callable[[Proc], Awaitable[int]],
        hostname: str,
        *,
        stdin: bool,
        tty: bool,
        keep_open: bool = False,
        streams: frozenset[int] = frozenset({1, 2}),
        context: dict[str, Any] | None = None,
    ) -> int:
        """Run a program wired to the socket; with `keep_open` the socket outlives it (pod, shell).
        Only `streams` (1 stdout, 2 stderr) reach the socket. `context` is the rest of the Proc (fs, env...)."""
        frames = TextFrames(ws, tty=tty, streams=streams)
        proc = Proc(frames.write, Stdin() if stdin else Stdin.empty(), hostname, **(context or {}))
        process = _Process()
        code = 137
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, ws, proc.stdin if stdin else None, frames, process)
            code = await process.run(lambda: program(proc))
            if not keep_open:
                tg.cancel_scope.cancel()  # the process ended: Portainer drops the socket
        return code

    async def _pump(self, ws: WebSocket, stdin: Stdin | None, frames: TextFrames, process: _Process) -> None:
        """Client frames go to stdin (echoed under a TTY) until the client leaves or sends too much."""
        while True:
            message = await ws.receive()
            data = message.get("bytes") if message.get("bytes") is not None else (message.get("text") or "").encode()
            if message["type"] == "websocket.disconnect" or len(data) > FRAME_LIMIT:
                if message["type"] != "websocket.disconnect":
                    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                        await ws.close(1009, "read limit exceeded")
                if stdin is not None:
                    stdin.close()
                if frames.tty:
                    process.kill(129)  # the terminal hung up: SIGHUP
                elif not process.done:
                    await anyio.sleep(self.disconnect_grace)
                    process.kill(137)
                return
            if stdin is None or process.done:
                continue
            if frames.tty:
                data = _tty_input(data)
                with contextlib.suppress(BrokenPipeError):
                    await frames.write(1, data)  # the terminal's echo
            stdin.feed(data)

    async def _attach(self, ws: WebSocket, params: tuple[Endpoint, str]) -> None:
        endpoint, ref = params
        container = endpoint.find_container(ref)
        if container is None or container.state != "running":
            return  # "You cannot attach to a stopped container": the socket just drops

        async def stream() -> None:
            lines = iter(container.log) if not container.endless else (f"tick {n}" for n in range(1, 1 << 62))
            for line in lines:
                await anyio.sleep(container.interval)
                data = (line + "\n").encode()
                if container.tty:
                    await ws.send_text(data.replace(b"\n", b"\r\n").decode())
                else:  # Docker's multiplexed stream: an 8-byte header (stream 1, length) per chunk
                    await ws.send_text((struct.pack(">BxxxL", 1, len(data)) + data).decode("utf-8", errors="ignore"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(_suppress_disconnect, stream)
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass  # attach stdin: the container's main process reads it, nothing to show
            tg.cancel_scope.cancel()

    # -- HTTP routes ------------------------------------------------------------------------

    def _environment(self, request: Request) -> Endpoint | JSONResponse:
        """The proxy's checks (`api/http/handler/endpointproxy`): a numeric id of a known environment."""
        raw = request.path_params["eid"]
        if not re.fullmatch(r"\d+", raw):
            return perror(400, "Invalid environment identifier route variable", f'strconv.Atoi: parsing "{raw}"')
        endpoint = self.endpoints.get(int(raw))
        if endpoint is None:
            return perror(
                404,
                "Unable to find an environment with the specified identifier inside the database",
                "object not found inside the database",
            )
        return endpoint

    def _kubernetes(self, request: Request) -> Endpoint | Response:
        """The Kubernetes environment a proxied Kubernetes API call names, or why it is refused: no key, no
        such environment, or a Docker one (the path then reaches the Docker engine, which has no such page)."""
        if not self._authorized(request):
            return JSONResponse(_UNAUTHORIZED, status_code=401)
        endpoint = self._environment(request)
        if isinstance(endpoint, Endpoint) and not endpoint.kubernetes:
            return docker_error(404, "page not found")
        return endpoint

    def _endpoint_from_path(self, request: Request) -> Endpoint | JSONResponse:
        endpoint = self._environment(request)
        if isinstance(endpoint, Endpoint) and endpoint.kubernetes:
            return perror(400, "Invalid environment type", "the environment is not a Docker environment")
        return endpoint

    async def _list_endpoints(self, request: Request) -> Response:
        """`GET /api/endpoints` as `endpoint_list.go` serves it: filter, count, then cut the page."""
        if not self._authorized(request):
            return JSONResponse(_UNAUTHORIZED, status_code=401)
        params = request.query_params
        types = params.getlist("types[]")
        if any(not re.fullmatch(r"[+-]?\d+", kind) for kind in types):
            return perror(400, "Invalid query parameters", "Unable to parse parameter types")
        search = params.get("search", "").lower()
        found = [
            endpoint
            for endpoint in self.endpoints.values()
            if (not search or endpoint.searched(search)) and (not types or endpoint.type in {int(t) for t in types})
        ]
        start, limit = max(_number(params.get("start")) - 1, 0), _number(params.get("limit"))
        page = found[start : start + limit] if limit > 0 else found
        snapshots = params.get("excludeSnapshots", "").lower() not in ("1", "t", "true")
        headers = {"X-Total-Count": str(len(found)), "X-Total-Available": str(len(self.endpoints))}
        return JSONResponse([endpoint.summary(snapshots=snapshots) for endpoint in page], headers=headers)

    async def _get_endpoint(self, request: Request) -> Response:
        """`GET /api/endpoints/{id}` (`endpoint_inspect.go`): one environment, its snapshot included."""
        if not self._authorized(request):
            return JSONResponse(_UNAUTHORIZED, status_code=401)
        endpoint = self._environment(request)
        return endpoint if isinstance(endpoint, JSONResponse) else JSONResponse(endpoint.summary(snapshots=True))

    async def _list_containers(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(_UNAUTHORIZED, status_code=401)
        endpoint = self._endpoint_from_path(request)
        if isinstance(endpoint, JSONResponse):
            return endpoint
        filters = docker_filters(request.query_params.get("filters", ""))
        if isinstance(filters, JSONResponse):
            return filters
        show_all = request.query_params.get("all", "").lower() in ("1", "true")
        containers = [
            c for c in endpoint.containers.values() if (show_all or c.state == "running") and c.matches(filters)
        ]
        return JSONResponse([c.summary() for c in containers])

    async def _list_namespaces(self, request: Request) -> Response:
        """The Kubernetes API's namespace list, through Portainer's proxy (not paged: clusters have few)."""
        endpoint = self._kubernetes(request)
        if isinstance(endpoint, Response):
            return endpoint
        items = [_namespace(name) for name in sorted(endpoint.pods)]
        return JSONResponse(
            {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1000"}, "items": items}
        )

    async def _list_pods(self, request: Request) -> Response:
        """The Kubernetes API's pod list, through Portainer's proxy; `limit` and `continue` page it."""
        endpoint = self._kubernetes(request)
        if isinstance(endpoint, Response):
            return endpoint
        namespace = request.path_params["ns"]
        pods = endpoint.pod_list(namespace)
        start = _continue_start(request.query_params.get("continue", ""), namespace)
        if start is None:
            return kube_status(400, "BadRequest", "continue key is not valid: the sandbox did not issue it")
        limit = _number(request.query_params.get("limit"))
        end = start + limit if limit > 0 else len(pods)
        metadata: dict[str, Any] = {"resourceVersion": "1000"}
        if end < len(pods):
            metadata["continue"] = _continue_key(namespace, end)
            metadata["remainingItemCount"] = len(pods) - end
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": pods[start:end]})

    async def _exec_create(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(_UNAUTHORIZED, status_code=401)
        endpoint = self._endpoint_from_path(request)
        if isinstance(endpoint, JSONResponse):
            return endpoint
        ref = request.path_params["cid"]
        container = endpoint.find_container(ref)
        if container is None:
            return docker_error(404, f"No such container: {ref}")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return docker_error(400, str(exc))
        if container.state != "running":
            return docker_error(409, f"Container {container.id} is not running")
        cmd = body.get("Cmd") if isinstance(body, dict) else None
        cmd = [cmd] if isinstance(cmd, str) else cmd
        if not cmd or not all(isinstance(word, str) for word in cmd):
            return docker_error(400, "No exec command specified")
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(item, str) for item in env):
            return docker_error(400, "json: cannot unmarshal Env into Go struct field ExecConfig.Env of type []string")
        instance = DockerExec(
            container,
            cmd,
            attach_stdin=bool(body.get("AttachStdin")),
            tty=bool(body.get("Tty")),
            attach_stdout=bool(body.get("AttachStdout")),  # Docker's default: not attached
            attach_stderr=bool(body.get("AttachStderr")),
            user=str(body.get("User") or ""),
            env=env,
            working_dir=str(body.get("WorkingDir") or ""),
        )
        endpoint.execs[instance.id] = instance
        return JSONResponse({"Id": instance.id}, status_code=201)

    async def _exec_inspect(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(_UNAUTHORIZED, status_code=401)
        endpoint = self._endpoint_from_path(request)
        if isinstance(endpoint, JSONResponse):
            return endpoint
        instance = endpoint.execs.get(request.path_params["xid"])
        if instance is None:
            return docker_error(404, f"No such exec instance: {request.path_params['xid']}")
        return JSONResponse(instance.inspect())


_KUBERNETES_ENV = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
}


def _docker_user(fs: FileSystem, spec: str) -> User | str:
    """An exec's `User` ("", "name", "uid", "name:group", "uid:gid") as Docker resolves it against the
    container's /etc/passwd and /etc/group: a name must exist, a number need not. A string is Docker's error."""
    name, _, group = spec.partition(":")
    if not name:
        user = ROOT
    elif name.isdigit():
        user = fs.user_of(int(name))
    else:
        found = fs.user_named(name)
        if found is None:
            return f"unable to find user {name}: no matching entries in passwd file"
        user = found
    if not group:
        return user
    gid = int(group) if group.isdigit() else fs.group_id(group)
    if gid is None:
        return f"unable to find group {group}: no matching entries in group file"
    return User(user.uid, gid, user.name, (gid,), user.home)


def _start_failure(user: User | str, fs: FileSystem, cwd: str, argv: list[str], image: str) -> tuple[str, int] | None:
    """Why Docker cannot start an exec, as it writes it to the hijacked stream, and the exit code it records:
    the daemon resolves the user first (126), then runc changes directory and looks the program up (127)."""
    if isinstance(user, str):
        return user, 126
    runc = "OCI runtime exec failed: exec failed: unable to start container process: {}: unknown"
    node = fs.get(cwd)
    if node is None or not node.is_dir:
        return runc.format(f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory'), 127
    if argv and not is_known(argv[0], image) and fs.get(FileSystem.resolve(cwd, argv[0])) is None:
        return runc.format(f'exec: "{argv[0]}": executable file not found in $PATH'), 127
    return None


def _continue_key(namespace: str, start: int) -> str:
    """An opaque continue token, as the Kubernetes API hands out (its own are base64 JSON too)."""
    return base64.urlsafe_b64encode(json.dumps({"ns": namespace, "start": start}).encode()).decode()


def _continue_start(key: str, namespace: str) -> int | None:
    """Where a continue token resumes; 0 without one, None for a token this namespace never issued."""
    if not key:
        return 0
    try:
        state = json.loads(base64.urlsafe_b64decode(key.encode()))
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("ns") != namespace or not isinstance(state.get("start"), int):
        return None
    return state["start"]


async def _suppress_disconnect(stream: Callable[[], Awaitable[None]]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await stream()


class TeamPortainerSimulator(PortainerSimulator):
    """The sandbox's `team` account: another Portainer (its own API key and JWT) whose environments are 3
    "team-docker" (a Docker agent: containers `api`, `worker` with a TTY printing "tick N", `cache` exited;
    Compose project "billing") and 4 "team-k8s" (Kubernetes: namespace "billing" with pods "api-0", "api-1").
    Exec instances on api: `exec_id` runs `echo hello from api`, `shell_exec_id` runs `sh` with stdin."""

    def __init__(
        self, *, api_key: str = credentials.TEAM_PORTAINER_API_KEY, jwt: str = TEAM_JWT, **options: Any
    ) -> None:
        super().__init__(api_key=api_key, jwt=jwt, **options)

    def _seed(self, log_interval: float, tick_interval: float) -> None:
        access = 'INFO:     10.0.3.5:{port} - "GET /{path} HTTP/1.1" 200 OK'
        api = Container(
            "api",
            "python:3.12-slim",
            log=[access.format(port=51200 + n, path=path) for n, path in enumerate(["health", "invoices", "health"])],
            interval=log_interval,
            labels=_compose("api", "billing"),
        )
        worker = Container("worker", "busybox:1.36", tty=True, endless=True, interval=tick_interval)
        cache = Container("cache", "redis:7.4", state="exited", labels=_compose("cache", "billing"))
        docker = Endpoint(3, "team-docker", DOCKER_AGENT, "tcp://10.0.3.10:9001")
        docker.containers = {c.id: c for c in (api, worker, cache)}
        self.endpoints[3] = docker
        self.container_ids = {c.name: c.id for c in (api, worker, cache)}
        self.container_id = api.id
        self.exec_id = self._seeded_exec(docker, api, ["echo", "hello from api"], "team-echo")
        self.shell_exec_id = self._seeded_exec(docker, api, ["sh"], "team-shell", attach_stdin=True)
        kube = Endpoint(4, "team-k8s", KUBERNETES_AGENT, "tcp://10.0.3.20:9001")
        kube.pods = {"billing": {"api-0": ["api"], "api-1": ["api"]}, "kube-system": {"coredns-0": ["coredns"]}}
        self.endpoints[4] = kube
