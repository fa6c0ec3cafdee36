"""3. Per-call overhead: what an MCP tool call adds over the same upstream request made directly, in
memory and over streamable HTTP, interleaved call by call so drift on the machine hits both alike.
"""

from __future__ import annotations

import contextlib
import cProfile
import json
import pstats
import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from callers import Caller, DirectCaller, McpCaller
from common import BENCH, COMMON_TOOLS, ERRORS, PEER_PY, PY, ROOT, BenchError, base_env, pct, stop, summary
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


def added(mcp: list[float], direct: list[float], paired: list[float] | None = None) -> dict[str, float]:
    """MCP percentiles minus the direct request's; the paired difference against `paired` (the direct
    calls made next to these MCP calls) when the baseline is pooled, else against `direct`."""
    pairs = [m - d for m, d in zip(mcp, direct if paired is None else paired, strict=False)]
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


class Host:
    """A process hosting one server in memory with its own client and direct request (bench/inmem_host.py,
    or the peer's `peer_fastmcp.py inmem`), answering one JSON line per job."""

    def __init__(self, key: str, argv: list[str], env: dict[str, str], first: dict[str, Any] | None = None) -> None:
        self.key = key
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
            text=True,
        )  # fmt: skip
        assert self.proc.stdin and self.proc.stdout
        if first is not None:
            self.proc.stdin.write(json.dumps(first) + "\n")
            self.proc.stdin.flush()
        if not self.proc.stdout.readline():
            stop(self.proc)
            raise BenchError(f"the {key} in-memory host exited at start")

    async def ask(self, job: dict[str, Any]) -> dict[str, Any]:
        import anyio.to_thread

        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = await anyio.to_thread.run_sync(self.proc.stdout.readline)
        if not line:
            raise BenchError(f"the {self.key} in-memory host died")
        return json.loads(line)


BLOCK = 20  # calls per tool in one host's turn: short turns, so drift on the machine reaches every host alike


async def in_memory(sandbox: Sandbox, op_id: str, n: int, peer: bool) -> dict[str, Any]:
    """Ours, the floor and the peer each in memory in a process of its own, its tool calls interleaved with
    the same request made directly; the hosts take turns every BLOCK calls, the order rotating. Added
    latency is measured against the direct calls of all hosts pooled: the same request with the same
    library against the same upstream, so one baseline for all, where each host's own would move its p99
    by the noise of a few dozen calls. Between turns this process times httpx2 against httpx 0.28 for the
    same requests: the HTTP library's share."""
    first = {"env": sandbox.env, "addresses": sandbox.addresses}
    hosts: list[Host] = []
    library = [DirectCaller("direct", op_id, sandbox), DirectCaller("direct_httpx", op_id, sandbox, lib="httpx")]
    try:
        for key in ("ours", "floor"):
            hosts.append(Host(key, [PY, str(BENCH / "inmem_host.py"), key], base_env(), first))
        if peer:
            hosts.append(Host("peer", [str(PEER_PY), str(BENCH / "peer_fastmcp.py"), "inmem"], peer_env(sandbox)))
        samples = {h.key: {t: {"mcp": [], "direct": []} for t in COMMON_TOOLS} for h in hosts}
        libs: dict[str, dict[str, list[float]]] = {t: {"direct": [], "direct_httpx": []} for t in COMMON_TOOLS}
        rounds = max(1, n // BLOCK)
        for r in range(rounds):
            job = {"n": min(BLOCK, n), "warmup": 20 if r == 0 else 0, "op_id": op_id}
            turn = r % len(hosts)
            for host in hosts[turn:] + hosts[:turn]:
                block = await host.ask(job)
                for e in block["errors"]:
                    ERRORS.add(f"{host.key} in-memory", e)
                for t in COMMON_TOOLS:
                    for kind in ("mcp", "direct"):
                        samples[host.key][t][kind] += block["samples_ms"][t][kind]
            got = await interleaved(library, job["n"], job["warmup"])
            for t in COMMON_TOOLS:
                for kind in libs[t]:
                    libs[t][kind] += got[t][kind]
        profiled = await hosts[0].ask({"profile": 200, "op_id": op_id})
    finally:
        for caller in library:
            await caller.aclose()
        for host in hosts:
            stop(host.proc)

    baseline = {t: [x for h in hosts for x in samples[h.key][t]["direct"]] for t in COMMON_TOOLS}

    def report(key: str) -> dict[str, Any]:
        return {
            t: {"mcp_ms": summary(v["mcp"]), "direct_ms": summary(baseline[t]), "own_direct_ms": summary(v["direct"]),
                **added(v["mcp"], baseline[t], paired=v["direct"]),
                "direct_client": "httpx2" + (" (peer venv)" if key == "peer" else "")}
            for t, v in samples[key].items()
        }  # fmt: skip

    out: dict[str, Any] = {"block": BLOCK, "rounds": rounds, "calls_per_tool": rounds * job["n"]}
    out |= {h.key: report(h.key) for h in hosts}
    out["library"] = {t: {lib: summary(v) for lib, v in libs[t].items()} for t in COMMON_TOOLS}
    out["ours_profile"] = profiled
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
            out[t][s.key] = {"mcp_ms": summary(samples[t][s.key]), **added(samples[t][s.key], samples[t]["direct"])}
    return out
