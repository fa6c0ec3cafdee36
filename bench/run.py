"""mcp-cloudops benchmark: cold start, context cost, per-call overhead, throughput, and the FastMCP
peer, measured side by side in one run. Prints a table; writes bench/results/latest.json.

    python bench/run.py [--runs 15] [--calls 2000] [--duration 1] [--rounds 10]
                        [--concurrency 1,8,32,128]
                        [--no-peer] [--setup-peer] [--quick] [--out bench/results/latest.json]

See bench/README.md for what each number means and how it is measured.

The measurements live in modules named for what they measure (startup, context, per_call,
throughput); this file only parses options and runs them in order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    ERRORS,
    PEER_PIN,
    PEER_PY,
    PY,
    BenchError,
    accounts_file,
    base_env,
    free_port,
    nbytes,
    peer_name,
    peer_status,
    proc_memory_mb,
    stop,
)
from context import context_cost, dynamic_toolsets, our_tools_list, peer_tools_list, what_if
from machine import machine, own_cpu_seconds, system_cpu_seconds
from per_call import in_memory, over_http
from report import render, write_json
from sandbox import HttpServer, peer_env, pinned, start_http, start_sandbox
from startup import Subject, cold_start, importtime_summary, startup_profile
from throughput import throughput


async def async_phases(args: argparse.Namespace, res: dict[str, Any], peer_ok: bool) -> None:
    import anyio  # noqa: F401

    from mcp_cloudops.sandbox.nirvana import OPERATION_DONE

    # 2. context cost (in-process; no credentials)
    print("context cost ...", flush=True)
    tools, result_bytes, providers = await our_tools_list(base_env())
    group = lambda name: providers.get(name, "?")  # noqa: E731
    cc: dict[str, Any] = {"ours": context_cost(tools, group, result_bytes)}
    common = [t for t in tools if providers.get(t["name"]) in ("exoscale", "nirvana")]
    cc["ours_common"] = context_cost(common, group, nbytes({"tools": common}))
    cc["what_if"] = what_if(tools)
    with tempfile.TemporaryDirectory() as tmp:  # the `account` argument on every tool: two accounts everywhere
        two, two_bytes, _ = await our_tools_list(base_env(MCP_CLOUDOPS_ACCOUNTS=str(accounts_file(1, Path(tmp)))))
    cc["two_accounts"] = context_cost(two, group, two_bytes)
    print("context cost, dynamic toolsets ...", flush=True)
    try:
        cc["dynamic"] = await dynamic_toolsets(base_env(), tools, providers)
        for problem in cc["dynamic"]["problems"]:
            ERRORS.add("dynamic toolsets", problem)
    except Exception as exc:  # the rest of the run goes on; the error fails it
        ERRORS.add("dynamic toolsets", f"{type(exc).__name__}: {exc}")
    if peer_ok:
        try:
            names = {peer_name(n): n for n in providers}
            pgroup = lambda name: providers.get(names.get(name, name), "?")  # noqa: E731
            p_tools, p_bytes = peer_tools_list(False)
            cc["peer"] = context_cost(p_tools, pgroup, p_bytes)
            d_tools, d_bytes = peer_tools_list(True)
            cc["peer_default"] = context_cost(d_tools, pgroup, d_bytes)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            ERRORS.add("peer tools/list", str(exc))
    res["context_cost"] = cc

    # 3/4. against the sandbox
    print("sandbox, servers ...", flush=True)
    sandbox = start_sandbox()
    servers: list[HttpServer] = []
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    try:
        port = free_port()
        servers.append(start_http(
            "ours", "mcp-cloudops",
            [PY, "-m", "mcp_cloudops", "serve", "--transport", "http", "--port", str(port)],
            base_env(**sandbox.env), port, lambda t: t, logs / "ours.err",
        ))  # fmt: skip
        port = free_port()
        servers.append(start_http(
            "floor", "floor (bare)",
            [PY, str(BENCH / "floor_server.py"), "serve", "--port", str(port)],
            base_env(**sandbox.env), port, lambda t: t, logs / "floor.err",
        ))  # fmt: skip
        if peer_ok:
            port = free_port()
            try:
                servers.append(start_http(
                    "peer", "fastmcp peer",
                    [str(PEER_PY), str(BENCH / "peer_fastmcp.py"), "serve", "--transport", "http", "--port", str(port)],
                    peer_env(sandbox), port, peer_name, logs / "peer.err",
                ))  # fmt: skip
            except BenchError as exc:
                ERRORS.add("peer HTTP server", str(exc))
        res["http_servers"] = {
            s.key: {"start_to_listen_s": round(s.start_seconds, 3), **proc_memory_mb(s.proc.pid)} for s in servers
        }
        print("per-call in-memory ...", flush=True)
        pc: dict[str, Any] = {"in_memory": await in_memory(sandbox, OPERATION_DONE, args.calls, peer_ok)}
        with pinned(servers, sandbox) as cores:
            print("per-call HTTP ...", flush=True)
            pc["http"] = await over_http(servers, sandbox, OPERATION_DONE, args.calls)
            res["per_call"] = pc
            print("throughput ...", flush=True)
            res["throughput"] = await throughput(
                servers, sandbox, OPERATION_DONE, args.concurrency, args.duration, args.rounds
            )
        res["http_cores"] = cores
        if args.shared:
            from shared_endpoint import shared_endpoint

            print("shared endpoint: 1,000 sessions, 2,000 stateless requests over 60 s ...", flush=True)
            res["shared_endpoint"] = await shared_endpoint(sandbox, OPERATION_DONE)
    finally:
        for s in servers:
            stop(s.proc)
        stop(sandbox.proc)
    res["servers"] = {s.key: s.label for s in servers} | {
        "ours": "mcp-cloudops", "peer": "fastmcp peer", "floor": "floor (bare)"
    }  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="mcp-cloudops benchmark (see bench/README.md)")
    ap.add_argument("--runs", type=int, default=15, help="cold starts per subject (default 15)")
    ap.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs per subject (default 3)")
    ap.add_argument("--calls", type=int, default=2000, help="measured calls per tool and path (default 2000)")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per throughput window (default 1)")
    ap.add_argument("--rounds", type=int, default=10, help="throughput windows per level and server (default 10)")
    ap.add_argument("--concurrency", default="1,8,32,128", help="throughput levels (default 1,8,32,128)")
    ap.add_argument("--no-peer", action="store_true", help="skip the FastMCP peer")
    ap.add_argument("--shared", action="store_true", help="also the shared endpoint: 1,000 sessions, 2,000 requests")
    ap.add_argument("--setup-peer", action="store_true", help=f"create bench/.venv-fastmcp ({PEER_PIN}) if missing")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: --runs 3 --importtime-runs 1 --calls 40 --duration 1 --rounds 1",
    )
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json", help="JSON output path")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.importtime_runs, args.calls, args.duration, args.rounds = 3, 1, 40, 1.0, 1
    args.concurrency = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    (busy0, steal0), own0, load0 = system_cpu_seconds(), own_cpu_seconds(), os.getloadavg()
    res: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "notes": [],
    }
    peer_ok, status = (False, "skipped (--no-peer)") if args.no_peer else peer_status(args.setup_peer)
    res["peer"] = {"available": peer_ok, "status": status}
    if not peer_ok:
        print(f"peer: not measured: {status}", flush=True)
        res["notes"].append(f"FastMCP peer not measured: {status}")
    res["servers"] = {"ours": "mcp-cloudops", "peer": "fastmcp peer"}

    ours = Subject("ours", "mcp-cloudops serve (stdio)", [PY, "-m", "mcp_cloudops", "serve"], base_env())
    bare = Subject("bare", "bare one-tool MCPServer", [PY, str(BENCH / "bare_server.py")], base_env())
    accounts_dir = Path(tempfile.mkdtemp(prefix="bench-accounts-"))
    ten = base_env(MCP_CLOUDOPS_ACCOUNTS=str(accounts_file(2, accounts_dir)))  # 2 x 5 providers = 10 accounts
    with_accounts = Subject("accounts", "mcp-cloudops serve, 10 accounts in a file", ours.argv, ten)
    subjects = [ours, bare, with_accounts]
    if peer_ok:
        subjects.append(
            Subject(
                "peer",
                "FastMCP.from_openapi peer (23)",
                [str(PEER_PY), str(BENCH / "peer_fastmcp.py"), "serve"],
                base_env(),
            )
        )
    try:
        print(f"cold start x{args.runs} ...", flush=True)
        try:
            res["cold_start"] = cold_start(subjects, args.runs)
        except BenchError as exc:
            if not peer_ok or "peer" not in str(exc).lower():
                raise
            ERRORS.add("peer cold start", str(exc))
            res["cold_start"] = cold_start([s for s in subjects if s.key != "peer"], args.runs)
        print("importtime, profile ...", flush=True)
        res["importtime"] = importtime_summary(ours, bare, args.importtime_runs)
        res["startup_profile"] = startup_profile(ours)
        import anyio

        anyio.run(async_phases, args, res, peer_ok)
    except BenchError as exc:
        ERRORS.add("benchmark", str(exc))
    res["notes"] += [
        "tokens are estimated as bytes/4 (no tokenizer).",
        "FastMCP has no request signing: bench/peer_fastmcp.py gives its Exoscale client an EXO2 httpx2.Auth "
        "(what a user must add); Nirvana uses a bearer header on its client.",
        "the peer's tools/list covers the 23 tools of bench/openapi-{nirvana,exoscale}.json; compare it with "
        "'mcp-cloudops, the peer's 23 tools'.",
        "our HTTP server runs with its default logging (INFO, to a file; each upstream exchange is logged at DEBUG).",
    ]
    res["elapsed_s"] = round(time.perf_counter() - started, 1)
    busy1, steal1 = system_cpu_seconds()
    others = max(0.0, (busy1 - busy0) - (own_cpu_seconds() - own0))
    capacity = res["elapsed_s"] * (res["machine"]["usable_cores"] or 1)
    res["machine_noise"] = {
        "loadavg_at_start": [round(x, 2) for x in load0],
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "other_processes_cpu_s": round(others, 1),
        "other_processes_share_of_capacity": round(others / capacity, 3) if capacity else None,
        "steal_cpu_s": round(steal1 - steal0, 1),
    }
    if capacity and others / capacity > 0.05:
        res["notes"].insert(0, f"WARNING: other processes used {others:.0f} CPU-s ({others / capacity:.0%} of the "
                               "machine) during this run: numbers are disturbed; rerun on a quiet machine")  # fmt: skip
    res["errors"] = {"count": len(ERRORS.items), "first": ERRORS.items[:50]}
    write_json(res, args.out)
    print()
    print(render(res))
    print(f"\nJSON: {args.out}")
    if ERRORS.items:
        print(f"\nFAILED: {len(ERRORS.items)} error(s); first: {ERRORS.items[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
