"""What the call measurements talk to: the sandbox simulators in a process of their own (the upstream)
and MCP servers started over streamable HTTP.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
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
