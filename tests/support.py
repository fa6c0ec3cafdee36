"""Small helpers the test modules share (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from registries import REAL

from mcp_cloudops.accounts import provider_variables
from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.base import Simulator

# Every credential the sandbox hands out, its `team` account's too: none may ever appear in a result, an error
# or a log line.
SECRETS = tuple(value for name, value in vars(credentials).items() if name.isupper() and isinstance(value, str))
TEAM_SECRETS = tuple(value for name, value in vars(credentials).items() if name.startswith("TEAM_"))

# A raw MCP `initialize`, for tests that speak HTTP without the SDK client.
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "hostile-test", "version": "0"},
    },
}


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on `host`, a loopback address (the only addresses tests listen on)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# The first word of every provider variable (INCUS_, SCW_...): a server under test inherits no variable that
# starts with one, so neither the user's own providers nor their CLIs' settings (SCW_PROFILE, CI's INCUS_LXD_*).
PROVIDER_ENV = tuple(dict.fromkeys(name.split("_")[0] + "_" for name in provider_variables(REAL)))


def server_env(*, strip: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """This run's environment for a server under test: no provider's settings or credentials (the
    sandbox sets its own; CI also exports a real LXD's), nothing starting with `strip`, unbuffered,
    plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_ENV + strip)}
    return env | {"PYTHONUNBUFFERED": "1"} | extra


def wait_until_serving(
    port: int,
    proc: subprocess.Popen[Any],
    output: Callable[[], str] = str,
    timeout: float = 30,
    host: str = "127.0.0.1",
) -> None:
    """Return once the server on `host`:`port` answers HTTP; fail the test, quoting `output()`,
    if its process exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"http://{host}:{port}/", timeout=0.5)
            return
        except httpx.TransportError:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}) before answering:\n{output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"server on port {port} did not answer within {timeout} s:\n{output()}")
            time.sleep(0.05)


def debug_server_env(**extra: str) -> dict[str, str]:
    """A server environment without any mcp-cloudops setting either, logging at DEBUG, plus `extra`."""
    return server_env(strip=("MCP_CLOUDOPS_",), **{"MCP_CLOUDOPS_LOG_LEVEL": "DEBUG", **extra})


def open_files_limit(limit: int) -> Callable[[], None]:
    """For Popen's preexec_fn: the child may hold at most `limit` file descriptors (to exhaust them on purpose)."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@dataclass
class HttpServer:
    """`mcp-cloudops serve --sandbox --transport http` in a subprocess; stderr collected as it comes."""

    port: int
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def logs(self) -> str:
        return "".join(self.lines)

    @classmethod
    def start(
        cls, *flags: str, host: str = "127.0.0.1", max_open_files: int | None = None, sandbox: bool = True, **env: str
    ) -> HttpServer:
        """Start it on a free port of `host` (a loopback address), optionally with few file descriptors; without
        `sandbox`, `env` says where the providers are (e.g. simulators the test runs itself)."""
        port = free_port(host)
        command = [
            sys.executable,
            "-m",
            "mcp_cloudops",
            "serve",
            *(["--sandbox"] if sandbox else []),
            "--transport",
            "http",
        ]
        proc = subprocess.Popen(
            [*command, "--host", host, "--port", str(port), *flags],
            env=debug_server_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=open_files_limit(max_open_files) if max_open_files else None,
        )
        server = cls(port, proc, host)
        threading.Thread(target=server._read_stderr, daemon=True).start()
        return server

    @classmethod
    @contextmanager
    def running(
        cls, *flags: str, host: str = "127.0.0.1", max_open_files: int | None = None, sandbox: bool = True, **env: str
    ) -> Iterator[HttpServer]:
        """`start`, ready to answer, and stopped when the block ends, whatever happens in it."""
        server = cls.start(*flags, host=host, max_open_files=max_open_files, sandbox=sandbox, **env)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.lines.append(line.decode("utf-8", "replace"))

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until_serving(self.port, self.proc, lambda: self.logs, timeout, self.host)

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Ask a process a test started to stop (SIGTERM), and kill it if it has not within `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


AUTH_HEADERS = ("authorization", "x-auth-token", "x-api-key")


CALL_SECONDS = 30  # one tool call through the in-memory client; a hang fails the test, not the run


def text_of(result: Any) -> str:
    return result.content[0].text


async def call(client: Client, tool: str, arguments: dict[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
    """What an agent reads back from `tool`: its structured result. A failed call fails the test with the
    error text the agent would have read. Arguments with dashes in their names go in `arguments`."""
    with anyio.fail_after(CALL_SECONDS):
        result = await client.call_tool(tool, {**(arguments or {}), **more})
    assert not result.is_error, f"{tool} failed: {text_of(result)}"
    assert isinstance(result.structured_content, dict), f"{tool} returned no structured result"
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any] | None = None, /, **more: Any) -> str:
    """The error text of a call that must fail; a success fails the test with what it returned."""
    with anyio.fail_after(CALL_SECONDS):
        result = await client.call_tool(tool, {**(arguments or {}), **more})
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return text_of(result)


def assert_nothing_leaked(sims: Iterable[Simulator], result: Any, logs: str) -> None:
    """No credential, and no auth header value any simulator ever received, in the result or the logs."""
    sent = {
        value
        for sim in sims
        for request in sim.requests
        for name, value in request.headers.items()
        if name in AUTH_HEADERS
    }
    said = text_of(result) + json.dumps(result.structured_content) + logs
    for secret in (*SECRETS, *sent):
        assert secret not in said
