"""1. Cold start: spawn -> tools/list answer over stdio for ours, the bare one-tool floor and the peer,
then where our start-up time goes (`python -X importtime`, one cProfile'd start). A user waits for
this on every client launch.
"""

from __future__ import annotations

import contextlib
import json
import pstats
import re
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import PROTOCOL, ROOT, BenchError, base_env, compact, nbytes, stop, summary

HANDSHAKE = "".join(
    compact(m) + "\n"
    for m in (
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
    )
).encode()


@dataclass
class Subject:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]


def spawn_to_tools_list(subject: Subject, stderr_path: Path | None = None, timeout: float = 60) -> dict[str, Any]:
    """Spawn the server over stdio, send initialize + initialized + tools/list at once (the pipe buffers
    them), and time until the tools/list answer arrives. Then close stdin and let it exit."""
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
    start = time.perf_counter()
    proc = subprocess.Popen(
        subject.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=subject.env, cwd=ROOT
    )
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write(HANDSHAKE)
        proc.stdin.flush()
        deadline = start + timeout
        while True:
            line = proc.stdout.readline()
            if not line:
                raise BenchError(f"{subject.label} closed stdout before answering tools/list (exit {proc.poll()})")
            message = json.loads(line)
            if message.get("id") == 2:
                seconds = time.perf_counter() - start
                break
            if time.perf_counter() > deadline:
                raise BenchError(f"{subject.label}: no tools/list answer in {timeout} s")
        if "error" in message:
            raise BenchError(f"{subject.label}: tools/list failed: {message['error']}")
        result = message["result"]
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop(proc)
        return {"seconds": seconds, "tools": len(result.get("tools", [])), "bytes": nbytes(result)}
    finally:
        stop(proc)
        if stderr_path:
            err.close()  # type: ignore[union-attr]


def cold_start(subjects: list[Subject], runs: int) -> dict[str, Any]:
    """Interleaved: each round runs every subject once, the order rotating round to round."""
    times: dict[str, list[float]] = {s.key: [] for s in subjects}
    seen: dict[str, dict[str, Any]] = {}
    for s in subjects:  # one warm-up each (bytecode caches, page cache), not counted
        seen[s.key] = spawn_to_tools_list(s)
    for i in range(runs):
        shift = i % len(subjects)
        for s in subjects[shift:] + subjects[:shift]:
            times[s.key].append(spawn_to_tools_list(s)["seconds"])
    out: dict[str, Any] = {"runs": runs, "subjects": {}}
    for s in subjects:
        out["subjects"][s.key] = {
            "label": s.label,
            "argv": [Path(a).name if "/" in a else a for a in s.argv],
            "seconds": summary(times[s.key]),
            "samples": [round(t, 4) for t in times[s.key]],
            "tools": seen[s.key]["tools"],
            "tools_list_bytes_stdio": seen[s.key]["bytes"],
        }
    bare = statistics.median(times["bare"])
    for s in subjects:
        out["subjects"][s.key]["ratio_to_bare"] = round(statistics.median(times[s.key]) / bare, 3)
    return out


# ----------------------------------------------------------------------- 1b. where start-up goes

IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( +)(\S+)\s*$")


def parse_importtime(text: str) -> list[tuple[str, int, int, int]]:
    """(module, self_us, cumulative_us, depth) for each line of `python -X importtime` output."""
    rows = []
    for line in text.splitlines():
        if m := IMPORT_LINE.match(line):
            rows.append((m.group(4), int(m.group(1)), int(m.group(2)), (len(m.group(3)) - 1) // 2))
    return rows


def importers(rows: list[tuple[str, int, int, int]]) -> dict[str, str | None]:
    """For each module, the nearest mcp_cloudops module at or above it in the import tree (None when
    no mcp_cloudops module is on its chain). importtime prints children before their parent."""
    via: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # walking in reverse = parents first
    for name, _, _, depth in reversed(rows):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, name))
        via[name] = next((n for _, n in reversed(stack) if n.startswith("mcp_cloudops")), None)
    return via


def top_package(module: str) -> str:
    return module.split(".", 1)[0]


def importtime_summary(ours: Subject, bare: Subject, runs: int) -> dict[str, Any]:
    """`python -X importtime` of both start-ups (same stdio handshake), median per module over runs.

    Attribution: a module the bare one-tool MCPServer also imports is the SDK floor; a module only
    our start-up imports is ours to answer for (our package, or a dependency we pulled in)."""
    tables: dict[str, list[dict[str, tuple[int, int, int]]]] = {"ours": [], "bare": []}
    via: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="bench-importtime-") as tmp:
        for i in range(runs):
            for key, subject in (("ours", ours), ("bare", bare)) if i % 2 == 0 else (("bare", bare), ("ours", ours)):
                argv = [subject.argv[0], "-X", "importtime", *subject.argv[1:]]
                path = Path(tmp) / f"{key}-{i}.err"
                spawn_to_tools_list(Subject(key, subject.label, argv, subject.env), stderr_path=path)
                rows = parse_importtime(path.read_text(errors="replace"))
                tables[key].append({name: (s, c, d) for name, s, c, d in rows})
                if key == "ours" and not via:
                    via = importers(rows)

    def med(key: str) -> dict[str, tuple[float, float, int]]:
        names = set.intersection(*(set(t) for t in tables[key]))
        return {
            n: (
                statistics.median(t[n][0] for t in tables[key]) / 1000,
                statistics.median(t[n][1] for t in tables[key]) / 1000,
                tables[key][0][n][2],
            )
            for n in names
        }

    o, b = med("ours"), med("bare")
    extra = {n: v for n, v in o.items() if n not in b}
    by_pkg: dict[str, float] = defaultdict(float)
    by_pkg_count: dict[str, int] = defaultdict(int)
    for n, (self_ms, _, _) in extra.items():
        by_pkg[top_package(n)] += self_ms
        by_pkg_count[top_package(n)] += 1
    sdk_pkgs: dict[str, float] = defaultdict(float)
    for n, (self_ms, _, _) in o.items():
        if n in b:
            sdk_pkgs[top_package(n)] += self_ms
    by_importer: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for n, (self_ms, _, _) in extra.items():
        if top_package(n) != "mcp_cloudops":
            by_importer[via.get(n) or "(not under an mcp_cloudops import)"][top_package(n)] += self_ms
    ours_modules = sorted(((n, v) for n, v in o.items() if top_package(n) == "mcp_cloudops"), key=lambda kv: -kv[1][1])
    return {
        "runs": runs,
        "note": "medians per module of `python -X importtime`; self = the module's own time, "
        "cumulative = with the imports it triggered first. SDK floor = modules the bare one-tool "
        "MCPServer also imports; extra = modules only mcp-cloudops's start-up imports. A module's self "
        "time includes code it runs at import (mcp_cloudops.server builds a whole server at import).",
        "total_import_ms": {
            "ours": round(sum(v[0] for v in o.values()), 1),
            "bare": round(sum(v[0] for v in b.values()), 1),
        },
        "ours_split_ms": {
            "sdk_floor_modules": round(sum(v[0] for n, v in o.items() if n in b), 1),
            "extra_modules": round(sum(v[0] for v in extra.values()), 1),
        },
        "extra_by_package": [
            {"package": p, "self_ms": round(ms, 1), "modules": by_pkg_count[p]}
            for p, ms in sorted(by_pkg.items(), key=lambda kv: -kv[1])
        ],
        "extra_third_party_by_importer": [
            {
                "via": v,
                "self_ms": round(sum(p.values()), 1),
                "packages": {k: round(x, 1) for k, x in sorted(p.items(), key=lambda kv: -kv[1]) if x >= 0.5},
            }
            for v, p in sorted(by_importer.items(), key=lambda kv: -sum(kv[1].values()))
        ],
        "sdk_floor_by_package": [
            {"package": p, "self_ms": round(ms, 1)} for p, ms in sorted(sdk_pkgs.items(), key=lambda kv: -kv[1])[:12]
        ],
        "mcp_cloudops_modules": [
            {"module": n, "self_ms": round(s, 1), "cumulative_ms": round(c, 1), "depth": d}
            for n, (s, c, d) in ours_modules
        ],
        "top_cumulative_ours": [
            {"module": n, "cumulative_ms": round(c, 1), "self_ms": round(s, 1), "depth": d, "in_sdk_floor": n in b}
            for n, (s, c, d) in sorted(o.items(), key=lambda kv: -kv[1][1])[:25]
        ],
        "top_extra_modules": [
            {"module": n, "self_ms": round(s, 1), "cumulative_ms": round(c, 1)}
            for n, (s, c, d) in sorted(extra.items(), key=lambda kv: -kv[1][0])[:15]
        ],
    }


PROFILE_CHILD = """
import cProfile, sys
profile = cProfile.Profile()
profile.enable()
try:
    from mcp_cloudops.cli import main
    main(["serve"])
finally:
    profile.disable()
    profile.dump_stats(sys.argv[1])
"""


def startup_profile(ours: Subject) -> dict[str, Any]:
    """One cProfile'd `serve` start (stdio, to the tools/list answer) to find non-import costs, plus
    wall-clock unit costs of the hot calls measured in this process (warm)."""
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        out = Path(tmp) / "serve.prof"
        argv = [ours.argv[0], "-c", PROFILE_CHILD, str(out)]
        spawn_to_tools_list(Subject("profile", "profiled serve", argv, ours.env))
        stats = pstats.Stats(str(out))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _, ct, _) in raw.values())
    ours_funcs, third = [], []
    for (filename, _line, name), (_cc, nc, tt, ct, _) in raw.items():
        where = f"{Path(filename).stem}.{name}" if filename != "~" else name
        if "/mcp_cloudops/" in filename and "/sandbox/" not in filename:
            ours_funcs.append({"function": f"mcp_cloudops.{where}", "calls": nc, "cumulative_s": round(ct, 3)})
        elif "site-packages" in filename:
            pkg = filename.split("site-packages/", 1)[1].split("/", 1)[0]
            third.append(
                {"function": f"{pkg}:{where}", "calls": nc, "cumulative_s": round(ct, 3), "self_s": round(tt, 3)}
            )
    ours_funcs.sort(key=lambda r: -r["cumulative_s"])
    third.sort(key=lambda r: -r["self_s"])

    # Wall-clock unit costs, warm, in this process: what each repeated start-up step costs once.
    from mcp_cloudops.registry import load_registry
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    settings = Settings.from_env(base_env())
    units: dict[str, float] = {}
    for label, fn in (("load_registry", load_registry), ("build_server", lambda: build_server(settings))):
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        units[label] = round(statistics.median(samples) * 1000, 1)
    with contextlib.suppress(Exception):
        import yaml

        text = (ROOT / "tools.yaml").read_text(encoding="utf-8")
        for label, loader in (
            ("yaml.safe_load(tools.yaml)", yaml.SafeLoader),
            ("yaml CSafeLoader(tools.yaml)", getattr(yaml, "CSafeLoader", None)),
        ):
            if loader is None:
                continue
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                yaml.load(text, Loader=loader)
                samples.append(time.perf_counter() - t0)
            units[label] = round(statistics.median(samples) * 1000, 1)
    calls = {r["function"].rsplit(".", 1)[1]: r["calls"] for r in ours_funcs}
    return {
        "note": "cProfile inflates pure-Python code; use calls and shares, and unit_ms (warm wall clock, "
        "measured in the benchmark process) for absolute costs.",
        "profiled_total_s": round(total, 3),
        "calls_per_start": {k: calls.get(k, 0) for k in ("load_registry", "build_server", "make_tool", "input_schema")},
        "unit_ms": units,
        "mcp_cloudops_functions": ours_funcs[:20],
        "third_party_self_time": third[:15],
    }
