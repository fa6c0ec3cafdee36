"""4. Throughput: calls per second over streamable HTTP with many sessions calling at once, the CPU
each process used for them, and the servers' memory afterwards.
"""

from __future__ import annotations

import contextlib
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


async def throughput(
    servers: list[HttpServer], sandbox: Sandbox, op_id: str, levels: list[int], duration: float
) -> dict[str, Any]:
    """Calls/s over streamable HTTP: at each concurrency, that many client sessions call in a loop
    for `duration` seconds; the servers take turns, the order alternating level to level."""
    from mcp import Client

    out: dict[str, Any] = {"duration_s": duration, "levels": {}}
    for li, level in enumerate(levels):
        row: dict[str, Any] = {}
        for s in servers if li % 2 == 0 else list(reversed(servers)):
            async with contextlib.AsyncExitStack() as stack:
                callers = []
                for _ in range(level):
                    client = await stack.enter_async_context(Client(s.url, mode="legacy"))
                    caller = McpCaller(f"{s.key} c{level}", op_id, client, s.tool_name)
                    for t in COMMON_TOOLS:  # warm the session (the client lists tools on a first call)
                        await caller.call(t)
                    callers.append(caller)
                errors_before = len(ERRORS.items)
                cpu0 = (proc_cpu_seconds(s.proc.pid), proc_cpu_seconds(sandbox.proc.pid), time.process_time())
                started = time.perf_counter()
                latencies = await window(callers, duration)
                wall = time.perf_counter() - started
                cpu1 = (proc_cpu_seconds(s.proc.pid), proc_cpu_seconds(sandbox.proc.pid), time.process_time())
            used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
            row[s.key] = {
                "calls": len(latencies),
                "calls_per_s": round(len(latencies) / wall, 1),
                "latency_ms": summary(latencies),
                "errors": len(ERRORS.items) - errors_before,
                "cpu_percent_of_one_core": {
                    "server": round(used[0] / wall * 100, 1),
                    "sandbox_upstream": round(used[1] / wall * 100, 1),
                    "bench_client": round(used[2] / wall * 100, 1),
                },
                "calls_per_server_cpu_s": round(len(latencies) / (used[0] or 1e-9), 1),
            }
        out["levels"][str(level)] = row
    out["memory_after"] = {s.key: proc_memory_mb(s.proc.pid) for s in servers}
    return out
