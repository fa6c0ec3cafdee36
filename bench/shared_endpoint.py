"""5. A shared endpoint (issue 23): many users at once. 1,000 legacy-era sessions opened and kept open over
streamable HTTP, each making one call (memory per open session, p50/p99, errors); then 2,000 stateless MCP
2026-07-28 requests started evenly over 60 s against a --stateless server (p50/p99, errors, most in flight).
Opt-in (`run.py --shared`): it takes about two minutes and a few hundred MB in the benchmark process.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from callers import McpCaller
from common import COMMON_TOOLS, ERRORS, PY, base_env, free_port, proc_cpu_seconds, proc_memory_mb, stop, summary
from sandbox import Sandbox, start_http

MAX_CONNECTIONS = "4096"  # a team's endpoint sets MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS above its users


async def sessions(sandbox: Sandbox, op_id: str, count: int = 1000) -> dict[str, Any]:
    """`count` legacy sessions opened one after another and kept open, then one call on each, all at once."""
    import anyio
    from mcp import Client

    logs = Path(tempfile.mkdtemp(prefix="bench-shared-"))
    port = free_port()
    env = base_env(**sandbox.env, MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS=MAX_CONNECTIONS)
    argv = [PY, "-m", "mcp_cloudops", "serve", "--transport", "http", "--port", str(port)]
    server = start_http("ours", "mcp-cloudops", argv, env, port, lambda t: t, logs / "sessions.err")
    try:
        errors_before = len(ERRORS.items)
        async with Client(server.url, mode="legacy") as warm:  # the first call loads the call machinery
            await McpCaller("warm-up", op_id, warm, lambda t: t).call("get-nirvana-operation")
        before = proc_memory_mb(server.proc.pid)["rss_mb"]
        async with contextlib.AsyncExitStack() as stack:
            callers = []
            opened = time.perf_counter()
            for n in range(count):  # each opened, then listing tools once as a client does before its first call
                client = await stack.enter_async_context(Client(server.url, mode="legacy"))
                await client.list_tools()
                callers.append(McpCaller(f"session {n}", op_id, client, lambda t: t))
            open_seconds = time.perf_counter() - opened
            held = proc_memory_mb(server.proc.pid)["rss_mb"]
            latencies: list[float] = []

            async def one(caller: McpCaller) -> None:
                latencies.append(await caller.call("get-nirvana-operation"))

            cpu0, wall0 = (proc_cpu_seconds(server.proc.pid), time.process_time()), time.perf_counter()
            async with anyio.create_task_group() as group:
                for caller in callers:
                    group.start_soon(one, caller)
            wall = time.perf_counter() - wall0
            cpu = (proc_cpu_seconds(server.proc.pid) - cpu0[0], time.process_time() - cpu0[1])
        return {
            "sessions": count,
            "open_seconds": round(open_seconds, 1),
            "rss_mb_before": before,
            "rss_mb_with_sessions": held,
            "kb_per_session": round((held - before) * 1024 / count, 1),
            "latency_ms": summary(latencies),
            "burst_wall_s": round(wall, 1),
            "burst_cpu_s": {"server": round(cpu[0], 1), "bench_clients": round(cpu[1], 1)},
            "errors": len(ERRORS.items) - errors_before,
        }
    finally:
        stop(server.proc)


async def stateless(sandbox: Sandbox, op_id: str, count: int = 2000, over: float = 60.0) -> dict[str, Any]:
    """`count` 2026-07-28 requests to a --stateless server, one started every over/count seconds, each
    standing alone (no session), on a few clients' pooled connections."""
    import anyio
    from mcp import Client

    logs = Path(tempfile.mkdtemp(prefix="bench-shared-"))
    port = free_port()
    env = base_env(**sandbox.env, MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS=MAX_CONNECTIONS)
    argv = [PY, "-m", "mcp_cloudops", "serve", "--transport", "http", "--stateless", "--port", str(port)]
    server = start_http("ours", "mcp-cloudops", argv, env, port, lambda t: t, logs / "stateless.err")
    try:
        errors_before = len(ERRORS.items)
        latencies: list[float] = []
        in_flight = most = 0
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(Client(server.url, mode="auto")) for _ in range(8)]
            callers = [McpCaller(f"stateless {n}", op_id, client, lambda t: t) for n, client in enumerate(clients)]
            protocol = clients[0].protocol_version
            if protocol != "2026-07-28":
                ERRORS.add("shared endpoint", f"the clients negotiated {protocol}, not 2026-07-28")

            async def one(caller: McpCaller, tool: str) -> None:
                nonlocal in_flight, most
                in_flight += 1
                most = max(most, in_flight)
                latencies.append(await caller.call(tool))
                in_flight -= 1

            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for n in range(count):
                    await anyio.sleep(max(0.0, started + n * over / count - time.perf_counter()))
                    group.start_soon(one, callers[n % len(callers)], COMMON_TOOLS[n % 2])
            wall = time.perf_counter() - started
        return {
            "requests": count,
            "protocol": protocol,
            "over_seconds": round(wall, 1),
            "most_in_flight": most,
            "latency_ms": summary(latencies),
            "errors": len(ERRORS.items) - errors_before,
            **proc_memory_mb(server.proc.pid),
        }
    finally:
        stop(server.proc)


async def shared_endpoint(sandbox: Sandbox, op_id: str) -> dict[str, Any]:
    return {"sessions": await sessions(sandbox, op_id), "stateless": await stateless(sandbox, op_id)}
