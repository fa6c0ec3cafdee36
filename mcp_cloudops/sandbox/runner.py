"""Serve simulators on loopback (or a unix socket) for as long as a context is open; with `team`, a second
set beside them as every provider's `team` account (an accounts file), so several accounts can be tried."""

from __future__ import annotations

import os
import queue
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import uvicorn
import yaml

from mcp_cloudops.accounts import ACCOUNTS_ENV
from mcp_cloudops.sandbox.base import Simulator

TEAM = "team"  # the second account's name
TEAM_DESCRIPTION = "Sandbox team account"


@dataclass
class Sandbox:
    """Running simulators by provider key, and the environment that points the server at them; `team`, when
    started with it, is the second set (the `team` account's), which `env` names in an accounts file."""

    simulators: dict[str, Simulator]
    addresses: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    team: Sandbox | None = None

    def __getitem__(self, provider: str) -> Simulator:
        return self.simulators[provider]


def default_simulators() -> list[Simulator]:
    from mcp_cloudops.sandbox.exoscale import ExoscaleSimulator
    from mcp_cloudops.sandbox.incus import IncusSimulator
    from mcp_cloudops.sandbox.nirvana import NirvanaSimulator
    from mcp_cloudops.sandbox.portainer import PortainerSimulator
    from mcp_cloudops.sandbox.scaleway import ScalewaySimulator

    return [
        IncusSimulator(),
        ExoscaleSimulator(),
        ScalewaySimulator(),
        PortainerSimulator(),
        NirvanaSimulator(),
    ]


def team_simulators() -> list[Simulator]:
    """The five simulators of the `team` account: their own credentials and resources."""
    from mcp_cloudops.sandbox.exoscale import TeamExoscaleSimulator
    from mcp_cloudops.sandbox.incus import TeamIncusSimulator
    from mcp_cloudops.sandbox.nirvana import TeamNirvanaSimulator
    from mcp_cloudops.sandbox.portainer import TeamPortainerSimulator
    from mcp_cloudops.sandbox.scaleway import TeamScalewaySimulator

    return [
        TeamIncusSimulator(),
        TeamExoscaleSimulator(),
        TeamScalewaySimulator(),
        TeamPortainerSimulator(),
        TeamNirvanaSimulator(),
    ]


def _bind(sim: Simulator, workdir: Path) -> tuple[socket.socket, str]:
    if sim.transport == "unix":
        path = workdir / f"{sim.provider}.socket"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        return sock, str(path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, a keep-alive request stalls ~40 ms on delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def run_sandbox(
    simulators: Sequence[Simulator] | None = None, workdir: Path | None = None, *, team: bool = False
) -> AsyncIterator[Sandbox]:
    """Start each simulator, yield the Sandbox, stop them all on exit (servers bound to loopback). With
    `team`, also the team simulators (`Sandbox.team`, sockets in `<workdir>/team`) and `<workdir>/accounts.yaml`
    naming them every provider's `team` account, which `Sandbox.env` points the server at."""
    sims = list(simulators) if simulators is not None else default_simulators()
    with tempfile.TemporaryDirectory(prefix="mcp-cloudops-sandbox-") as tmp:
        where = workdir or Path(tmp)
        async with AsyncExitStack() as stack:
            sandbox = await stack.enter_async_context(_serving(sims, where))
            if team:
                theirs = where / TEAM
                theirs.mkdir(mode=0o700, exist_ok=True)
                sandbox.team = await stack.enter_async_context(_serving(team_simulators(), theirs))
                sandbox.env[ACCOUNTS_ENV] = str(write_accounts_file(where / "accounts.yaml", sandbox.team))
            yield sandbox


@asynccontextmanager
async def _serving(sims: Sequence[Simulator], where: Path) -> AsyncIterator[Sandbox]:
    """Serve each of `sims` (unix sockets in `where`) until the context ends."""
    servers: list[uvicorn.Server] = []
    sandbox = Sandbox(simulators={}, addresses={})
    async with anyio.create_task_group() as tg:
        for sim in sims:
            sock, address = _bind(sim, where)
            server = _server(sim)
            servers.append(server)
            tg.start_soon(server.serve, [sock])
            sandbox.simulators[sim.provider] = sim
            sandbox.addresses[sim.provider] = address
            sandbox.env.update(sim.env(address))
        with anyio.fail_after(10):
            while not all(server.started for server in servers):
                await anyio.sleep(0.01)
        try:
            yield sandbox
        finally:
            for server in servers:
                server.should_exit = True


def _server(sim: Simulator) -> uvicorn.Server:
    """A quiet uvicorn server for one simulator."""
    config = uvicorn.Config(
        sim.app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        ws="websockets-sansio",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # The process's signals are not the simulators' to take: several servers capturing them
    # at once restore them out of order, leaving SIGTERM bound to a stopped server, which
    # sse-starlette then reads as "shutting down" and closes every later SSE stream.
    server.capture_signals = nullcontext  # type: ignore[method-assign,assignment]
    return server


def write_accounts_file(path: Path, team: Sandbox) -> Path:
    """The accounts file (docs/configuration.md, "Accounts") naming each team simulator its provider's `team`
    account. It holds their keys, so it is made 0600 from the start: the server refuses a secret others may read."""
    accounts = {
        provider: {TEAM: {"description": TEAM_DESCRIPTION, "variables": sim.env(team.addresses[provider])}}
        for provider, sim in team.simulators.items()
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left there before keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump({"accounts": accounts}, out, sort_keys=False)
    return path


def run_sandbox_in_background() -> Sandbox:
    """The simulators, the team account's too, on a daemon thread of their own, started before this returns:
    for a server that is built outside any event loop (`mcp dev` imports the module-level `mcp`), with
    MCP_CLOUDOPS_SANDBOX=1. They stop with the process."""
    ready: queue.Queue[Sandbox | BaseException] = queue.Queue()

    async def hold() -> None:
        try:
            async with run_sandbox(team=True) as sandbox:
                ready.put(sandbox)
                await anyio.sleep_forever()
        except BaseException as exc:  # a failed start must reach the caller, not die with the thread
            ready.put(exc)
            raise

    threading.Thread(target=anyio.run, args=(hold,), name="mcp-cloudops-sandbox", daemon=True).start()
    started = ready.get(timeout=30)
    if isinstance(started, BaseException):
        raise RuntimeError(f"the sandbox did not start: {started!r}") from started
    return started
