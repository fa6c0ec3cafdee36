"""4. Throughput: calls per second over streamable HTTP with many sessions calling at once, the CPU
each process used for them, and the servers' memory afterwards.

Each level runs in rounds, the servers taking turns in rotating order within each round, and reports the
median round: a window of a few seconds on a shared VM drifts by more than the gaps measured. The run
pins the processes first (sandbox.pinned), so the client's own CPU does not set the ceiling.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

from callers import McpCaller
from common import COMMON_TOOLS, ERRORS, proc_cpu_seconds, proc_memory_mb, summary
from sandbox import HttpServer, Sandbox


async def window(callers: list[McpCaller], duration: float) -> list[float]:
    """Every caller calls in a loop (the compared tools alternately) until the deadline; latencies in ms."""
    import anyio

    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def worker(first: int, caller: McpCaller) -> None:
        i = first
        while time.perf_counter() < deadline:
            latencies.append(await caller.call(COMMON_TOOLS[i % 2]))
            i += 1

    async with anyio.create_task_group() as tg:
        for w, caller in enumerate(callers):
            tg.start_soon(worker, w, caller)
    return latencies


class Tally:
    """One server's rounds at one level: calls, rates, latencies and CPU, summed or pooled."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.latencies: list[float] = []
        self.wall = 0.0
        self.cpu = [0.0, 0.0, 0.0]  # server, upstream, bench client
        self.errors = 0

    async def measure(self, server: HttpServer, sandbox: Sandbox, callers: list[McpCaller], duration: float) -> None:
        errors_before = len(ERRORS.items)
        cpu0 = (proc_cpu_seconds(server.proc.pid), proc_cpu_seconds(sandbox.proc.pid), time.process_time())
        started = time.perf_counter()
        latencies = await window(callers, duration)
        wall = time.perf_counter() - started
        cpu1 = (proc_cpu_seconds(server.proc.pid), proc_cpu_seconds(sandbox.proc.pid), time.process_time())
        self.cpu = [total + b - a for total, a, b in zip(self.cpu, cpu0, cpu1, strict=True)]
        self.rates.append(len(latencies) / wall)
        self.latencies += latencies
        self.wall += wall
        self.errors += len(ERRORS.items) - errors_before

    def row(self) -> dict[str, Any]:
        server, upstream, client = self.cpu
        return {
            "calls": len(self.latencies),
            "calls_per_s": round(statistics.median(self.rates), 1),
            "rounds_calls_per_s": [round(r, 1) for r in self.rates],
            "latency_ms": summary(self.latencies),
            "errors": self.errors,
            "cpu_percent_of_one_core": {
                "server": round(server / self.wall * 100, 1),
                "sandbox_upstream": round(upstream / self.wall * 100, 1),
                "bench_client": round(client / self.wall * 100, 1),
            },
            "calls_per_server_cpu_s": round(len(self.latencies) / (server or 1e-9), 1),
        }


async def level_rows(
    servers: list[HttpServer], sandbox: Sandbox, op_id: str, level: int, duration: float, rounds: int
) -> dict[str, Any]:
    """`level` warm sessions on every server, then `rounds` rounds of one window per server."""
    from mcp import Client

    tallies = {s.key: Tally() for s in servers}
    async with contextlib.AsyncExitStack() as stack:
        callers: dict[str, list[McpCaller]] = {}
        for s in servers:
            callers[s.key] = []
            for _ in range(level):
                client = await stack.enter_async_context(Client(s.url, mode="legacy"))
                caller = McpCaller(f"{s.key} c{level}", op_id, client, s.tool_name)
                for t in COMMON_TOOLS:  # warm the session (the client lists tools on a first call)
                    await caller.call(t)
                callers[s.key].append(caller)
        for r in range(rounds):
            turn = r % len(servers)
            for s in servers[turn:] + servers[:turn]:
                await tallies[s.key].measure(s, sandbox, callers[s.key], duration)
    return {key: t.row() for key, t in tallies.items()}


async def throughput(
    servers: list[HttpServer], sandbox: Sandbox, op_id: str, levels: list[int], duration: float, rounds: int
) -> dict[str, Any]:
    """Calls/s over streamable HTTP: at each concurrency, that many client sessions per server call in a
    loop for `duration` seconds a round, the servers taking turns."""
    out: dict[str, Any] = {"duration_s": duration, "rounds": rounds, "levels": {}}
    for level in levels:
        out["levels"][str(level)] = await level_rows(servers, sandbox, op_id, level, duration, rounds)
    out["memory_after"] = {s.key: proc_memory_mb(s.proc.pid) for s in servers}
    return out
