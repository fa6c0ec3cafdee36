"""What the call measurements talk to: the sandbox simulators in a process of their own (the upstream)
and MCP servers started over streamable HTTP, and where each runs (pinned).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BENCH, PY, ROOT, BenchError, base_env, stop, wait_port


@dataclass
class Sandbox:
    proc: subprocess.Popen[Any]
    env: dict[str, str]
    addresses: dict[str, str]

    @property
    def nirvana(self) -> str:
        return self.addresses["nirvana"]

    @property
    def exoscale_zone_url(self) -> str:
        return self.env["EXOSCALE_API_URL"].replace("{zone}", "ch-gva-2")


def start_sandbox() -> Sandbox:
    proc = subprocess.Popen(
        [PY, str(BENCH / "sandbox_host.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=base_env(),
        cwd=ROOT,
    )
    assert proc.stdout
    line = proc.stdout.readline()
    if not line:
        stop(proc)
        raise BenchError("the sandbox host exited before listening")
    info = json.loads(line)
    return Sandbox(proc, info["env"], info["addresses"])


def peer_env(sandbox: Sandbox | None) -> dict[str, str]:
    if sandbox is None:
        return base_env()
    return base_env(
        PEER_NIRVANA_URL=sandbox.nirvana,
        PEER_EXOSCALE_URL=sandbox.exoscale_zone_url,
        NIRVANA_LABS_API_KEY=sandbox.env["NIRVANA_LABS_API_KEY"],
        EXOSCALE_API_KEY=sandbox.env["EXOSCALE_API_KEY"],
        EXOSCALE_API_SECRET=sandbox.env["EXOSCALE_API_SECRET"],
    )


@dataclass
class HttpServer:
    key: str
    label: str
    proc: subprocess.Popen[Any]
    port: int
    tool_name: Callable[[str], str]
    start_seconds: float = 0.0
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def start_http(
    key: str, label: str, argv: list[str], env: dict[str, str], port: int, tool_name: Callable[[str], str], log: Path
) -> HttpServer:
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT
        )
    server = HttpServer(key, label, proc, port, tool_name, log=log)
    try:
        server.start_seconds = wait_port(port, proc)
    except BenchError as exc:
        stop(proc)
        raise BenchError(f"{label}: {exc}; its stderr: {log.read_text(errors='replace')[-400:]}") from None
    return server


def halves(cores: list[int]) -> tuple[set[int], set[int]] | None:
    """(load generator's cores, servers' cores), or None on a single core."""
    if len(cores) < 2:
        return None
    cut = len(cores) // 2
    return set(cores[:cut]), set(cores[cut:])


@contextlib.contextmanager
def pinned(servers: list[HttpServer], sandbox: Sandbox) -> Iterator[dict[str, list[int]] | None]:
    """For the calls over HTTP: this process (the load generator, the SDK's own client) and the upstream on
    one half of the cores, the servers under test on the other, as a load test runs its client on another
    machine. Sharing two cores, all three servers stopped at one ceiling set by the client's own CPU, and
    the scheduler moving processes between cores set the p99. Yields which cores went where (None when
    the machine cannot be split); undone on exit."""
    split = halves(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_setaffinity") else None
    if split is None:
        yield None
        return
    load, serving = split
    before = {pid: os.sched_getaffinity(pid) for pid in (0, sandbox.proc.pid)}
    for pid in before:
        os.sched_setaffinity(pid, load)
    for s in servers:
        os.sched_setaffinity(s.proc.pid, serving)
    try:
        yield {"load_generator_and_upstream": sorted(load), "server_under_test": sorted(serving)}
    finally:
        for pid, cores in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, cores)
