"""3. Per-call overhead: what an MCP tool call adds over the same upstream request made directly, in
memory and over streamable HTTP, interleaved call by call so drift on the machine hits both alike.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import json
import pstats
import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from callers import Caller, DirectCaller, McpCaller
from common import BENCH, COMMON_TOOLS, ERRORS, PEER_PY, ROOT, BenchError, base_env, pct, stop, summary
from sandbox import HttpServer, Sandbox, peer_env


async def interleaved(callers: list[Caller], n: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """n rounds; each round calls every tool through every caller, the caller order rotating."""
    samples: dict[str, dict[str, list[float]]] = {t: {c.label: [] for c in callers} for t in COMMON_TOOLS}
    for i in range(warmup + n):
        shift = i % len(callers)
        for tool in COMMON_TOOLS:
            for caller in callers[shift:] + callers[:shift]:
                elapsed = await caller.call(tool)
                if i >= warmup:
                    samples[tool][caller.label].append(elapsed)
    return samples


def added(samples: dict[str, list[float]], label: str, base: str = "direct") -> dict[str, float]:
    mcp, direct = samples[label], samples[base]
    pairs = [m - d for m, d in zip(mcp, direct, strict=False)]
    return {
        "added_p50_ms": round(pct(mcp, 0.5) - pct(direct, 0.5), 3),
        "added_p99_ms": round(pct(mcp, 0.99) - pct(direct, 0.99), 3),
        "paired_diff_p50_ms": round(pct(pairs, 0.5), 3),
    }


def package_of(filename: str) -> str:
    """Which package a profiled function belongs to, for a self-time breakdown."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/mcp_cloudops/" in filename:
        return "mcp_cloudops"
    if filename.startswith("<frozen "):  # e.g. importlib's path finder (a failing import searches sys.path)
        return "stdlib:" + filename[len("<frozen ") : -1].split(".")[0]
    if filename.startswith(("<", "~")):
        return "builtins"
    path = Path(filename)
    return "stdlib:" + (path.stem if re.fullmatch(r"python3\.\d+", path.parent.name) else path.parent.name)


async def profile_calls(client: Any, op_id: str, n: int) -> dict[str, Any]:
    """Self time of n in-memory calls (client and server run in this process), by package. The
    upstream runs in another process: time waiting for it shows as the event loop's epoll."""
    caller = McpCaller("profiled", op_id, client, lambda t: t)
    profile = cProfile.Profile()
    profile.enable()
    for i in range(n):
        await caller.call(COMMON_TOOLS[i % 2])
    profile.disable()
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    by_pkg: dict[str, float] = defaultdict(float)
    ours: dict[str, float] = defaultdict(float)  # mcp_cloudops functions, self time + the C calls they make
    for (filename, _line, name), (_cc, _nc, tt, _ct, callers) in stats.items():
        if "epoll" in name:
            by_pkg["waiting (epoll)"] += tt
        elif filename == "~" and callers:  # a C function: charge its time to the package that called it
            for (caller_file, _l, caller_name), caller_stats in callers.items():
                by_pkg[package_of(caller_file) if caller_file != "~" else "builtins"] += caller_stats[2]
                if "/mcp_cloudops/" in caller_file:
                    ours[f"{Path(caller_file).stem}.{caller_name}"] += caller_stats[2]
        else:
            by_pkg[package_of(filename)] += tt
            if "/mcp_cloudops/" in filename:
                ours[f"{Path(filename).stem}.{name}"] += tt
    total = sum(by_pkg.values()) or 1e-9
    return {
        "calls": n,
        "note": "cProfile self time while making the calls, in-process (client + server); C functions are "
        "charged to the package calling them; cProfile inflates Python-heavy code, so read shares, not times",
        "per_call_ms_profiled": round(total / n * 1000, 3),
        "share_by_package": {k: round(v / total, 3) for k, v in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:14]},
        "mcp_cloudops_share_by_function": {
            k: round(v / total, 3) for k, v in sorted(ours.items(), key=lambda kv: -kv[1])[:8]
        },
    }


async def in_memory(sandbox: Sandbox, op_id: str, n: int, rounds: int, peer: bool) -> dict[str, Any]:
    """Ours in-process (mcp.Client(server), legacy) vs direct httpx2, interleaved per call; the peer's
    own in-process block (in its venv) alternates with ours, block by block."""
    from floor_server import build as build_floor
    from mcp import Client

    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    server = build_server(Settings.from_env(base_env(**sandbox.env)))
    floor_server = build_floor(sandbox.env)
    # This process hosts its servers from now on, as `mcp-cloudops serve` does once built (server.settled):
    # what exists now is kept out of the cyclic collector. The peer's in-memory host does the same.
    gc.freeze()
    direct = DirectCaller("direct", op_id, sandbox)
    direct2 = DirectCaller("direct_httpx", op_id, sandbox, lib="httpx")
    ours: dict[str, dict[str, list[float]]] = {
        t: {"mcp": [], "direct": [], "direct_httpx": [], "floor": []} for t in COMMON_TOOLS
    }
    theirs: dict[str, dict[str, list[float]]] = {t: {"mcp": [], "direct": []} for t in COMMON_TOOLS}
    peer_proc = None
    if peer:
        peer_proc = subprocess.Popen(
            [str(PEER_PY), str(BENCH / "peer_fastmcp.py"), "inmem"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=peer_env(sandbox), cwd=ROOT, text=True,
        )  # fmt: skip
        assert peer_proc.stdout
        if not peer_proc.stdout.readline():
            stop(peer_proc)
            raise BenchError("the peer's in-memory runner exited at start")
    import anyio.to_thread

    per_round = max(1, n // rounds)
    try:
        async with Client(server, mode="legacy") as client, Client(floor_server, mode="legacy") as floor_client:
            caller = McpCaller("mcp", op_id, client, lambda t: t)
            floor = McpCaller("floor", op_id, floor_client, lambda t: t)
            for r in range(rounds):
                got = await interleaved([caller, direct, direct2, floor], per_round, warmup=20 if r == 0 else 0)
                for t in COMMON_TOOLS:
                    for k in ours[t]:
                        ours[t][k] += got[t][k]
                if peer_proc is not None:
                    assert peer_proc.stdin and peer_proc.stdout
                    job = {"n": per_round, "warmup": 20 if r == 0 else 0, "op_id": op_id}
                    peer_proc.stdin.write(json.dumps(job) + "\n")
                    peer_proc.stdin.flush()
                    line = await anyio.to_thread.run_sync(peer_proc.stdout.readline)
                    if not line:
                        raise BenchError("the peer's in-memory runner died")
                    block = json.loads(line)
                    for e in block["errors"]:
                        ERRORS.add("peer in-memory", e)
                    for t in COMMON_TOOLS:
                        theirs[t]["mcp"] += block["samples_ms"][t]["mcp"]
                        theirs[t]["direct"] += block["samples_ms"][t]["direct"]
            profiled = await profile_calls(client, op_id, 200)
    finally:
        await direct.aclose()
        await direct2.aclose()
        stop(peer_proc)

    def report(samples: dict[str, dict[str, list[float]]], direct_client: str) -> dict[str, Any]:
        out = {}
        for t, s in samples.items():
            out[t] = {
                "mcp_ms": summary(s["mcp"]),
                "direct_ms": summary(s["direct"]),
                **added(s, "mcp"),
                "direct_client": direct_client,
            }
            if s.get("direct_httpx"):
                out[t]["direct_httpx_ms"] = summary(s["direct_httpx"])
            if s.get("floor"):
                out[t]["floor"] = {"mcp_ms": summary(s["floor"]), **added(s, "floor")}
        return out

    out: dict[str, Any] = {"rounds": rounds, "calls_per_tool": per_round * rounds, "ours": report(ours, "httpx2")}
    out["ours_profile"] = profiled
    if peer:
        out["peer"] = report(theirs, "httpx2 (peer venv)")
    return out


async def over_http(servers: list[HttpServer], sandbox: Sandbox, op_id: str, n: int) -> dict[str, Any]:
    """Per call over streamable HTTP (mcp.Client, legacy), every server and the direct request interleaved."""
    from mcp import Client

    direct = DirectCaller("direct", op_id, sandbox)
    try:
        async with contextlib.AsyncExitStack() as stack:
            callers: list[Caller] = [direct]
            for s in servers:
                client = await stack.enter_async_context(Client(s.url, mode="legacy"))
                callers.append(McpCaller(s.key, op_id, client, s.tool_name))
            samples = await interleaved(callers, n, warmup=20)
    finally:
        await direct.aclose()
    out: dict[str, Any] = {"calls_per_tool": n, "direct_client": "httpx2"}
    for t in COMMON_TOOLS:
        out[t] = {"direct_ms": summary(samples[t]["direct"])}
        for s in servers:
            out[t][s.key] = {"mcp_ms": summary(samples[t][s.key]), **added(samples[t], s.key)}
    return out
