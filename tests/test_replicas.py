"""Replicas (issue 15 item 5): with `serve --transport http --stateless` any replica serves any request.

deploy/haproxy.cfg itself runs here (its addresses from the environment) in front of three sandboxed
replicas: one is killed (SIGKILL) while a few hundred MCP calls go through the balancer, and none of them
may fail. Beside it: which requests the balancer sends again once a replica took them (reads, never
writes), against stand-in replicas that die holding every request; the list of retry-safe tools against
tools.yaml; and deploy/kubernetes.yaml's shape.

HAProxy is Debian's package (`.ci/run` installs it as root). Without it the balancer tests skip saying
why, except under CI=true, where they fail: CI must run them. Every process is stopped in a finally,
every wait has a deadline, and everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import anyio
import httpx
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult
from support import MCP_HEADERS, HttpServer, free_port, stop_process

from mcp_cloudops.cli import parser
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox.exoscale import INSTANCE_RUNNING, INSTANCE_STOPPED
from mcp_cloudops.sandbox.nirvana import OPERATION_DONE

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"
RETRY_SAFE = DEPLOY / "haproxy-retry-safe-tools.lst"
KUBERNETES = DEPLOY / "kubernetes.yaml"
BACKEND = "mcp_replicas"  # deploy/haproxy.cfg's backend
RETRIES = int(re.search(r"^\s*retries\s+(\d+)\s*$", HAPROXY_CFG.read_text(), re.M).group(1))  # type: ignore[union-attr]

MODERN = "2026-07-28"
REPLICAS = 3
CLIENTS, LANES, CALLS_EACH = 6, 5, 12  # 6 clients, each with 5 lanes of 12 calls in a row: 360 calls, 30 in flight
TOTAL = CLIENTS * LANES * CALLS_EACH
KILL_AFTER = TOTAL // 3  # calls answered before one replica is killed
CALL_TIMEOUT = 30  # seconds, one call; the whole load has LOAD_TIMEOUT
LOAD_TIMEOUT = 150
STATE_KEY = "replicas-share-this-request-state-key-0123456789"  # 32 bytes or more


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the replica tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def haproxy() -> str:
    found = shutil.which("haproxy")
    if found is None:
        unavailable("haproxy is not installed: `apt-get install haproxy` (Debian), as `bash .ci/run` does as root")
    return found


# --- HAProxy, running deploy/haproxy.cfg -------------------------------------------------------------------


@dataclass
class Balancer:
    """`haproxy -db -f deploy/haproxy.cfg` in the foreground, its log collected as it comes."""

    proc: subprocess.Popen[bytes]
    port: int
    stats: Path  # its runtime API socket
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def logs(self) -> str:
        return "".join(self.lines[-60:])

    @classmethod
    def start(cls, replicas: list[int], rundir: Path) -> Balancer:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "MCP_FRONTEND": f"127.0.0.1:{port}",
            "MCP_PUBLIC_HOST": "127.0.0.1",
            "MCP_RETRY_SAFE_TOOLS": str(RETRY_SAFE),
            "HAPROXY_STATS_SOCKET": str(rundir / "haproxy.sock"),
            **{f"MCP_REPLICA_{n}": f"127.0.0.1:{replica}" for n, replica in enumerate(replicas, 1)},
        }
        proc = subprocess.Popen(
            [haproxy(), "-db", "-f", str(HAPROXY_CFG)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        balancer = cls(proc, port, rundir / "haproxy.sock")
        threading.Thread(target=balancer._read, daemon=True).start()
        return balancer

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.append(line.decode("utf-8", "replace"))

    def stat(self) -> dict[str, dict[str, str]]:
        """The backend's rows of `show stat`, by server name (and BACKEND)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats))
            sock.sendall(b"show stat\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        rows = csv.DictReader(received.decode().lstrip("# ").splitlines())
        return {row["svname"]: row for row in rows if row["pxname"] == BACKEND}

    def wait_for(self, what: str, ok: Callable[[dict[str, dict[str, str]]], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, dict[str, str]] = {}
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"haproxy exited ({self.proc.returncode}) waiting for {what}:\n{self.logs}")
            try:
                seen = self.stat()
                if ok(seen):
                    return
            except (OSError, KeyError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                states = {name: (row.get("status"), row.get("check_status")) for name, row in seen.items()}
                pytest.fail(f"haproxy: no {what} within {timeout} s: {states}\n{self.logs}")
            time.sleep(0.1)

    def wait_all_up(self, names: list[str]) -> None:
        """Every server UP after a good check of its own (a server starts UP before any check)."""
        self.wait_for(
            "healthy replicas", lambda s: all(s[n]["status"] == "UP" and s[n]["check_status"] == "L7OK" for n in names)
        )

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def rundir() -> Iterator[Path]:
    """A short directory for HAProxy's socket (a unix socket path must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="haproxy-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


SERVERS = [f"mcp{n}" for n in range(1, REPLICAS + 1)]  # deploy/haproxy.cfg's server names


# --- three real replicas behind it --------------------------------------------------------------------------


@dataclass
class Cluster:
    replicas: list[HttpServer]
    balancer: Balancer


def wait_ready(replica: HttpServer, timeout: float = 30) -> None:
    """Until the replica's GET /readyz answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{replica.base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if replica.proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"replica on port {replica.port}: GET /readyz not 200 within {timeout} s:\n{replica.logs}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(rundir: Path) -> Iterator[Cluster]:
    haproxy()
    replicas: list[HttpServer] = []
    balancer: Balancer | None = None
    try:
        for _ in range(REPLICAS):  # each with its own sandbox; WARNING keeps three servers' logs cheap
            replicas.append(
                HttpServer.start("--stateless", MCP_CLOUDOPS_LOG_LEVEL="WARNING", MCP_CLOUDOPS_STATE_KEYS=STATE_KEY)
            )
        for replica in replicas:
            replica.wait_ready(timeout=60)
            wait_ready(replica)
        balancer = Balancer.start([replica.port for replica in replicas], rundir)
        balancer.wait_all_up(SERVERS)
        yield Cluster(replicas, balancer)
    finally:
        if balancer is not None:
            balancer.stop()
        for replica in replicas:
            replica.stop()


def modern(method: str, params: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """A raw MCP 2026-07-28 request, its headers and body: a stateless server needs no session."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    headers = MCP_HEADERS | {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    return headers, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params | {"_meta": meta}}


def modern_call(name: str, arguments: dict[str, Any], *, header_name: str = "") -> tuple[dict, dict]:
    """A raw MCP 2026-07-28 tools/call, its Mcp-Name header naming the tool (or `header_name`)."""
    headers, body = modern("tools/call", {"name": name, "arguments": arguments})
    return headers | {"Mcp-Name": header_name or name}, body


def legacy(method: str, params: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """A handshake-era request: no Mcp-Method or Mcp-Name header, the body alone says what it is."""
    headers = MCP_HEADERS | {"MCP-Protocol-Version": "2025-06-18"}
    return headers, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def test_the_balancer_refuses_a_host_it_does_not_serve(cluster: Cluster) -> None:
    headers, body = modern_call("list-compute-instances", {})
    with httpx.Client(timeout=10) as http:
        refused = http.post(cluster.balancer.url, headers=headers | {"Host": "evil.example"}, json=body)
        assert refused.status_code == 421, refused.text
        served = http.post(cluster.balancer.url, headers=headers, json=body)
        assert served.status_code == 200, served.text
        assert not served.json()["result"].get("isError"), served.text


def test_a_header_cannot_make_a_write_look_like_a_retry_safe_read(cluster: Cluster) -> None:
    """The balancer re-sends a call whose Mcp-Name is on the retry-safe list: the replica must refuse a body
    naming another tool, before anything runs (deploy/haproxy.cfg relies on it)."""
    delete = {"id": INSTANCE_STOPPED}
    headers, body = modern_call("delete-compute-instance", delete, header_name="list-compute-instances")
    with httpx.Client(timeout=10) as http:
        for _ in range(REPLICAS):  # round robin: once through each replica
            refused = http.post(cluster.balancer.url, headers=headers, json=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == -32020, refused.text
        for replica in cluster.replicas:  # and nothing was deleted anywhere
            headers, body = modern_call("list-compute-instances", {})
            listed = http.post(replica.url, headers=headers, json=body)
            assert INSTANCE_STOPPED in listed.text, listed.text


def accepting(asked: list[str]) -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    return callback


@pytest.mark.anyio
async def test_a_confirmation_answered_on_another_replica_runs_the_call(cluster: Cluster) -> None:
    """A 2026-07-28 confirmation is a round trip: the user's answer may reach another replica, which opens the
    sealed state with the key all replicas share (MCP_CLOUDOPS_STATE_KEYS)."""
    asked: list[str] = []
    try:
        with anyio.fail_after(60):
            async with Client(cluster.balancer.url, elicitation_callback=accepting(asked)) as client:
                # Another instance than the one the later tests list: this deletes it on one replica's sandbox.
                result = await client.call_tool("delete-compute-instance", {"id": INSTANCE_RUNNING})
    except BaseExceptionGroup as group:  # the client's task group wraps what the call raised
        (error,) = leaves(group)
        raise error from group
    assert len(asked) == 1 and INSTANCE_RUNNING in asked[0]
    assert not result.is_error, result.content


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside nested exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def check_listing(result: Any) -> bool:
    return any(item["id"] == INSTANCE_STOPPED for item in result.structured_content["instances"])


def check_operation(result: Any) -> bool:
    return result.structured_content["id"] == OPERATION_DONE


# Read-only calls on seeded data: the same answer from every replica's own sandbox.
CALLS = (
    ("list-compute-instances", {}, check_listing),
    ("get-nirvana-operation", {"operation_id": OPERATION_DONE}, check_operation),
)


@pytest.mark.anyio
async def test_killing_a_replica_under_load_fails_no_call(cluster: Cluster) -> None:
    """Runs after the other tests of the shared cluster (file order): it kills one of its replicas."""
    balancer, victim = cluster.balancer, cluster.replicas[1]
    balancer.wait_all_up(SERVERS)
    failures: list[str] = []
    done = after_kill = 0
    killed = anyio.Event()
    before: dict[str, dict[str, str]] = {}

    async def lane(client: Client, n: int) -> None:
        nonlocal done, after_kill
        for i in range(CALLS_EACH):
            tool, arguments, check = CALLS[(n + i) % len(CALLS)]
            try:
                with anyio.fail_after(CALL_TIMEOUT):
                    result = await client.call_tool(tool, arguments)
            except Exception as exc:  # a transport error, a timeout: each one is a failed call
                failures.append(f"{tool}: {type(exc).__name__}: {exc}"[:300])
            else:
                if result.is_error or not check(result):
                    failures.append(f"{tool}: {result.content[0].text if result.content else result}"[:300])
            done += 1
            after_kill += killed.is_set()

    async def one_client(n: int) -> None:
        timeout = httpx2.Timeout(CALL_TIMEOUT, connect=5)
        try:
            async with (
                httpx2.AsyncClient(timeout=timeout) as http,
                Client(streamable_http_client(balancer.url, http_client=http)) as client,
                anyio.create_task_group() as lanes,
            ):
                for lane_number in range(LANES):
                    lanes.start_soon(lane, client, n * LANES + lane_number)
        except Exception as exc:  # the SDK may end the whole client on a transport error: its calls failed
            failures.extend(f"client {n}: {type(leaf).__name__}: {leaf}"[:300] for leaf in leaves(exc))

    async def kill_when_under_way() -> None:
        while done < KILL_AFTER:
            await anyio.sleep(0.002)
        before.update(await anyio.to_thread.run_sync(balancer.stat))
        victim.proc.kill()  # SIGKILL: no goodbye, connections and calls in hand simply vanish
        killed.set()

    started = time.monotonic()
    with anyio.fail_after(LOAD_TIMEOUT):
        async with anyio.create_task_group() as load:
            load.start_soon(kill_when_under_way)
            for n in range(CLIENTS):
                load.start_soon(one_client, n)
    took = time.monotonic() - started
    after = balancer.stat()

    assert victim.proc.wait(timeout=5) == -9
    # HAProxy's log lines whose termination state is not "----" (e.g. SD--: the replica died mid-answer).
    trouble = "".join(line for line in balancer.lines if re.search(r" (?!----)[A-Za-z-]{4} [\d/]+ ", line))
    calls = "\n".join(failures[:20])
    assert failures == [], f"{len(failures)} of {TOTAL} calls failed:\n{calls}\nhaproxy:\n{trouble[-4000:]}"
    assert done == TOTAL
    assert after_kill >= TOTAL // 2, f"only {after_kill} calls ran after the kill"
    down = SERVERS[1]
    balancer.wait_for(f"{down} DOWN", lambda s: s[down]["status"].startswith("DOWN"), timeout=10)
    for name in (SERVERS[0], SERVERS[2]):  # the survivors served the rest
        assert int(after[name]["stot"]) > int(before[name]["stot"]), (name, before[name], after[name])
    retried = {key: int(after["BACKEND"][key] or 0) for key in ("wretr", "wredis")}
    assert sum(retried.values()) > 0, f"the kill was never felt (no retry): {retried}"
    print(f"{TOTAL} calls in {took:.1f} s through {REPLICAS} replicas, one killed after {KILL_AFTER}: {retried}")


# --- which requests are sent again, against replicas that die holding every request -------------------------


class DyingHandler(BaseHTTPRequestHandler):
    """Answers the health check; takes every POST and closes the connection without an answer, as a replica
    killed mid-call does (HAProxy sees an empty response)."""

    protocol_version = "HTTP/1.1"
    server: Dying

    def do_GET(self) -> None:
        status, body = (200, b"ok") if self.path == "/readyz" else (404, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.taken.append(body)
        self.close_connection = True  # and no answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Dying(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a health check that hung up before reading the whole answer

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), DyingHandler)
        self.lock = threading.Lock()
        self.taken: list[bytes] = []


@dataclass
class DyingCluster:
    replicas: list[Dying]
    balancer: Balancer

    def taken(self) -> int:
        return sum(len(replica.taken) for replica in self.replicas)

    def forget(self) -> None:
        for replica in self.replicas:
            with replica.lock:
                replica.taken.clear()


@pytest.fixture(scope="module")
def dying(rundir: Path) -> Iterator[DyingCluster]:
    haproxy()
    replicas = [Dying() for _ in range(REPLICAS)]
    threads = [threading.Thread(target=replica.serve_forever, kwargs={"poll_interval": 0.1}) for replica in replicas]
    balancer: Balancer | None = None
    sub = rundir / "dying"
    sub.mkdir()
    try:
        for thread in threads:
            thread.start()
        balancer = Balancer.start([replica.server_address[1] for replica in replicas], sub)
        balancer.wait_all_up(SERVERS)
        yield DyingCluster(replicas, balancer)
    finally:
        if balancer is not None:
            balancer.stop()
        for replica in replicas:
            replica.shutdown()
            replica.server_close()
        for thread in threads:
            thread.join(timeout=5)


SENT_AGAIN = 1 + RETRIES  # the first attempt and every retry, each on another replica when one is left
SENT_ONCE = 1

REQUESTS = {
    "a read-only call (2026-07-28)": (modern_call("list-compute-instances", {}), SENT_AGAIN),
    "a credential read (2026-07-28)": (modern_call("reveal-password-used-during-instance", {"id": "x"}), SENT_AGAIN),
    "the toolset switch (2026-07-28)": (modern_call("enable-toolset", {"toolset": "exoscale"}), SENT_AGAIN),
    "tools/list (2026-07-28)": (modern("tools/list", {}), SENT_AGAIN),
    "a delete (2026-07-28)": (modern_call("delete-compute-instance", {"id": "x"}), SENT_ONCE),
    "an exec (2026-07-28)": (modern_call("exec-instance", {"name": "c1", "command": ["id"]}), SENT_ONCE),
    "a call without Mcp-Name (2026-07-28)": (modern("tools/call", {"name": "list-compute-instances"}), SENT_ONCE),
    "tools/list (handshake era)": (legacy("tools/list", {}), SENT_AGAIN),
    "a read-only call (handshake era)": (legacy("tools/call", {"name": "list-compute-instances"}), SENT_ONCE),
    "a delete (handshake era)": (legacy("tools/call", {"name": "delete-compute-instance"}), SENT_ONCE),
}


@pytest.mark.parametrize("what", list(REQUESTS))
def test_only_what_is_safe_to_run_twice_is_sent_again(dying: DyingCluster, what: str) -> None:
    (headers, body), expected = REQUESTS[what]
    dying.forget()
    with httpx.Client(timeout=30) as http:
        answer = http.post(dying.balancer.url, headers=headers, json=body)
    assert answer.status_code == 502, answer.text  # every replica that took it died
    assert dying.taken() == expected, f"{what}: sent {dying.taken()} times, expected {expected}\n{dying.balancer.logs}"


# --- deploy/ kept in step with the code ---------------------------------------------------------------------


def test_the_retry_safe_list_is_the_read_only_idempotent_tools() -> None:
    registry = load_registry()
    discovery = registry.discovery_tools()
    expected = {tool.name for tool in registry.tools if tool.hints.readOnly and tool.hints.idempotent}
    expected |= {discovery.list.name, discovery.enable.name}
    lines = [line.strip() for line in RETRY_SAFE.read_text().splitlines()]
    listed = [line for line in lines if line and not line.startswith("#")]
    assert len(listed) == len(set(listed))
    assert set(listed) == expected
    for name in listed:
        spec = registry.by_name.get(name)
        assert spec is None or not spec.hints.destructive, name


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD|CREDENTIAL", re.I)


def test_the_kubernetes_manifest_runs_stateless_non_root_replicas_with_probes_and_secrets() -> None:
    docs = [doc for doc in yaml.safe_load_all(KUBERNETES.read_text()) if doc]
    kinds = [doc["kind"] for doc in docs]
    assert "Secret" not in kinds  # secrets are created apart, never written in the manifest
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == REPLICAS
    pod = deployment["spec"]["template"]["spec"]
    (container,) = containers(deployment)

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"ghcr.io/mcp-cloudops/mcp-cloudops:{version}"
    assert container["args"][0] == "serve"
    args = parser().parse_args(container["args"])  # the real CLI takes them
    assert (args.transport, args.host, args.stateless) == ("http", "0.0.0.0", True)

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports.get(get["port"], get["port"]) == 8000, (probe, get)
        assert "httpHeaders" not in get or all(h["name"].lower() != "authorization" for h in get["httpHeaders"])

    assert pod["securityContext"]["runAsNonRoot"] is True
    user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert user is not None and pod["securityContext"]["runAsUser"] == int(user.group(1))
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]

    env = {item["name"]: item for item in container.get("env", [])}
    assert env["MCP_CLOUDOPS_HTTP_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]
    credentials = {name for provider in load_registry().providers.values() for name in provider.auth.env_names}
    for name, item in env.items():
        if name in credentials or SECRET_NAME.search(name):
            assert "value" not in item and "secretKeyRef" in item["valueFrom"], f"{name} is inlined"
    assert any("secretRef" in source for source in container["envFrom"])  # provider credentials
    assert "MCP_CLOUDOPS_STATELESS" not in env or env["MCP_CLOUDOPS_STATELESS"].get("value") != "0"

    labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = [doc for doc in docs if doc["kind"] == "Service"]
    assert services
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert ports.get(port["targetPort"], port["targetPort"]) == 8000
    assert json.dumps(docs).count("sessionAffinity") == 0  # stateless: no affinity needed
