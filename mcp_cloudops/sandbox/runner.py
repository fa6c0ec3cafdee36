"""Serve simulators on loopback (or a unix socket) for as long as a context is open."""

from __future__ import annotations

import queue
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import uvicorn

from mcp_cloudops.sandbox.base import Simulator


@dataclass
class Sandbox:
    """Running simulators by provider key, and the environment that points the server at them."""

    simulators: dict[str, Simulator]
    addresses: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)

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
    simulators: Sequence[Simulator] | None = None, workdir: Path | None = None
) -> AsyncIterator[Sandbox]:
    """Start each simulator, yield the Sandbox, stop them all on exit (servers bound to loopback)."""
    sims = list(simulators) if simulators is not None else default_simulators()
    with tempfile.TemporaryDirectory(prefix="mcp-cloudops-sandbox-") as tmp:
        where = workdir or Path(tmp)
        servers: list[uvicorn.Server] = []
        sandbox = Sandbox(simulators={}, addresses={})
        async with anyio.create_task_group() as tg:
            for sim in sims:
                sock, address = _bind(sim, where)
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


def run_sandbox_in_background() -> Sandbox:
    """The simulators on a daemon thread of their own, started before this returns: for a server that is
    built outside any event loop (`mcp dev` imports the module-level `mcp`), with MCP_CLOUDOPS_SANDBOX=1.
    They stop with the process."""
    ready: queue.Queue[Sandbox | BaseException] = queue.Queue()

    async def hold() -> None:
        try:
            async with run_sandbox() as sandbox:
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
