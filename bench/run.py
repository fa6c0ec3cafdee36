"""mcp-cloudops benchmark: cold start, context cost, per-call overhead, throughput, and the FastMCP
peer, measured side by side in one run. Prints a table; writes bench/results/latest.json.

    python bench/run.py [--runs 15] [--calls 300] [--duration 3] [--concurrency 1,8,32]
                        [--no-peer] [--setup-peer] [--quick] [--out bench/results/latest.json]

See bench/README.md for what each number means and how it is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

PY = sys.executable
PEER_VENV = BENCH / ".venv-fastmcp"
PEER_PY = PEER_VENV / "bin" / "python"
PEER_PIN = "fastmcp==4.1.2"
PROTOCOL = "2025-06-18"  # a handshake-era version: what today's clients (Claude Desktop) send
COMMON_TOOLS = ("get-nirvana-operation", "list-compute-instances")  # the calls compared everywhere


# --------------------------------------------------------------------------------------------- utils


class BenchError(RuntimeError):
    """A measurement could not be taken; the message says which and why."""


@dataclass
class Errors:
    """Every failed call or run, counted; any at all fails the benchmark (exit 1)."""

    items: list[str] = field(default_factory=list)

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}"[:300])


ERRORS = Errors()


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(pct(values, 0.5), 4),
        "p90": round(pct(values, 0.9), 4),
        "p99": round(pct(values, 0.99), 4),
        "min": round(min(values), 4) if values else float("nan"),
        "max": round(max(values), 4) if values else float("nan"),
        "mean": round(statistics.fmean(values), 4) if values else float("nan"),
    }


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def nbytes(data: Any) -> int:
    return len(compact(data).encode("utf-8"))


def base_env(**extra: str) -> dict[str, str]:
    """A clean child environment: no provider credentials unless given, our checkout importable."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return time.perf_counter() - start
        time.sleep(0.02)
    raise BenchError(f"nothing listened on port {port} within {timeout} s")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_memory_mb(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount = line.split(":", 1)
            values[{"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb"}[key]] = round(int(amount.split()[0]) / 1024, 1)
    return values


def system_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU-seconds of all cores since boot, from /proc/stat. Busy excludes idle, iowait
    and steal; steal (time the hypervisor gave to other guests) is disturbance too, reported apart."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    f += [0] * (8 - len(f))
    tick = os.sysconf("SC_CLK_TCK")
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / tick, f[7] / tick


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and its waited-for children (every child is waited for by stop())."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 5) -> None:
    """End a child this benchmark started (by its own handle): close stdin, then terminate, then kill."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(Exception):
        if proc.stdin:
            proc.stdin.close()
    try:
        proc.wait(timeout=1)
        return
    except subprocess.TimeoutExpired:
        pass
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    info = {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "mcp": version("mcp"),
        "httpx": version("httpx"),
    }
    import importlib.util

    # httpcore imports sniffio on every lock it creates (several per request); when sniffio is not
    # installed that is a failing import, which searches sys.path each time.
    info["sniffio_installed"] = importlib.util.find_spec("sniffio") is not None
    with contextlib.suppress(OSError, ValueError):
        info["mem_total_gb"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    return info


# --------------------------------------------------------------------------------------- the peer


def peer_status(setup: bool) -> tuple[bool, str]:
    """Whether the FastMCP peer can run here; with setup, create its venv first when missing."""
    if not PEER_PY.exists() and setup:
        print(f"setting up the peer: python -m venv {PEER_VENV} && pip install {PEER_PIN} ...", flush=True)
        try:
            subprocess.run([PY, "-m", "venv", str(PEER_VENV)], check=True)
            subprocess.run([str(PEER_PY), "-m", "pip", "install", "-q", PEER_PIN], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            return False, f"could not set up {PEER_VENV}: {exc}"
    if not PEER_PY.exists():
        venv = PEER_VENV.relative_to(ROOT)
        return False, (
            f"{venv} does not exist: run `python bench/run.py --setup-peer` "
            f"(or `python -m venv {venv} && {venv}/bin/pip install {PEER_PIN}`)"
        )
    if not (BENCH / "openapi-exoscale.json").exists():
        made = subprocess.run([PY, str(BENCH / "make_openapi_exoscale.py")], capture_output=True, text=True)
        if made.returncode != 0:
            return False, f"cannot write bench/openapi-exoscale.json: {made.stderr.strip()[-300:]}"
    probe = subprocess.run(
        [str(PEER_PY), "-c", "import fastmcp, mcp, sys; print(fastmcp.__version__, sys.version.split()[0])"],
        capture_output=True,
        text=True,
        env=base_env(),
    )
    if probe.returncode != 0:
        return False, f"fastmcp does not import in {PEER_VENV}: {probe.stderr.strip()[-300:]}"
    return True, f"fastmcp {probe.stdout.split()[0]} (python {probe.stdout.split()[1]}, {PEER_VENV.name})"


def peer_name(tool: str) -> str:
    return tool.replace("-", "_")  # FastMCP turns the mcp_names we give it into identifiers


# ----------------------------------------------------------------------------- 1. cold start (stdio)

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


# ------------------------------------------------------------------------------ 2. context cost


def _strip(node: Any, should_drop: Callable[[str, Any, list[str]], bool], path: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v, should_drop, [*path, k]) for k, v in node.items() if not should_drop(k, v, path)}
    if isinstance(node, list):
        return [_strip(v, should_drop, path) for v in node]
    return node


def _in_properties(path: list[str]) -> bool:
    """Whether the dict at `path` is a property schema (…/properties/<name>), not a properties map."""
    return len(path) >= 2 and path[-2] == "properties"


CONSTRAINTS = ("minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
               "minItems", "maxItems", "uniqueItems", "multipleOf")  # fmt: skip


def breakdown(tool: dict[str, Any]) -> dict[str, int]:
    """Bytes of one tool's tools/list entry by kind. Each category is what removing it saves, taken
    in this order, so the categories add up exactly to the entry's size."""

    def schema_drop(pred: Callable[[str, Any, list[str]], bool]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def apply(t: dict[str, Any]) -> dict[str, Any]:
            t = dict(t)
            if "inputSchema" in t:
                t["inputSchema"] = _strip(t["inputSchema"], pred, [])
            return t

        return apply

    def drop_keys(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda t: {k: v for k, v in t.items() if k not in keys}

    def drop_annotation_title(t: dict[str, Any]) -> dict[str, Any]:
        t = dict(t)
        if isinstance(t.get("annotations"), dict):
            t["annotations"] = {k: v for k, v in t["annotations"].items() if k != "title"}
        return t

    def kw(*names: str, value: Callable[[Any], bool] = lambda v: True) -> Callable[[str, Any, list[str]], bool]:
        """A schema keyword (never a parameter that happens to be named like one)."""
        return lambda k, v, p: k in names and value(v) and not (p and p[-1] == "properties")

    steps = [
        ("param_descriptions", schema_drop(kw("description", value=lambda v: isinstance(v, str)))),
        ("zone_enums", schema_drop(lambda k, v, p: kw("enum")(k, v, p) and bool(p) and p[-1] == "zone")),
        ("other_enums", schema_drop(kw("enum"))),
        ("defaults", schema_drop(kw("default"))),
        ("additionalProperties_false", schema_drop(kw("additionalProperties", value=lambda v: v is False))),
        ("required_lists", schema_drop(kw("required", value=lambda v: isinstance(v, list)))),
        ("types_and_formats", schema_drop(kw("type", "format", value=lambda v: isinstance(v, str | list)))),
        ("constraints", schema_drop(kw(*CONSTRAINTS, value=lambda v: not isinstance(v, dict)))),
        ("param_names_and_nesting", drop_keys("inputSchema")),
        ("output_schema", drop_keys("outputSchema")),
        ("annotations_title_duplicate", drop_annotation_title),
        ("annotations_hints", drop_keys("annotations")),
        ("tool_description", drop_keys("description")),
        ("title", drop_keys("title")),
        ("meta_and_other", lambda t: {k: v for k, v in t.items() if k == "name"}),
    ]
    out: dict[str, int] = {}
    current = deepcopy(tool)
    size = nbytes(current)
    for label, step in steps:
        nxt = step(current)
        new_size = nbytes(nxt)
        out[label] = size - new_size
        current, size = nxt, new_size
    out["name_and_braces"] = size
    return out


def context_cost(tools: list[dict[str, Any]], group_of: Callable[[str], str], result_bytes: int) -> dict[str, Any]:
    per_tool = []
    totals: dict[str, int] = defaultdict(int)
    groups: dict[str, list[int]] = defaultdict(list)
    param_desc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    enums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in tools:
        size = nbytes(t)
        parts = breakdown(t)
        for k, v in parts.items():
            totals[k] += v
        groups[group_of(t["name"])].append(size)
        per_tool.append(
            {
                "name": t["name"],
                "group": group_of(t["name"]),
                "bytes": size,
                "tokens_est": size // 4,
                "breakdown": parts,
            }
        )

        def walk(node: Any, path: list[str]) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "description" and isinstance(v, str) and path and _in_properties(path):
                        entry = param_desc[v]
                        entry[0] += 1
                        entry[1] += len(compact(v).encode()) + len('"description":,')
                    elif k == "enum" and isinstance(v, list):
                        entry = enums[compact(v)]
                        entry[0] += 1
                        entry[1] += len(compact(v).encode()) + len('"enum":,')
                    else:
                        walk(v, [*path, k])
            elif isinstance(node, list):
                for v in node:
                    walk(v, path)

        walk(t.get("inputSchema", {}), [])
    total_tools = sum(r["bytes"] for r in per_tool)
    n = len(per_tool) or 1
    return {
        "tools": len(per_tool),
        "result_bytes": result_bytes,
        "tokens_est": result_bytes // 4,
        "bytes_per_tool": round(result_bytes / n, 1),
        "tokens_per_tool_est": round(result_bytes / n / 4, 1),
        "breakdown_bytes": dict(totals),
        "breakdown_share": {k: round(v / total_tools, 3) for k, v in totals.items()},
        "breakdown_bytes_per_tool": {k: round(v / n, 1) for k, v in totals.items()},
        "by_group": {
            g: {
                "tools": len(v),
                "bytes": sum(v),
                "bytes_per_tool": round(sum(v) / len(v), 1),
                "tokens_est": sum(v) // 4,
            }
            for g, v in groups.items()
        },
        "per_tool": sorted(per_tool, key=lambda r: -r["bytes"]),
        "top_param_descriptions": [
            {"text": text, "count": c, "bytes_total": b}
            for text, (c, b) in sorted(param_desc.items(), key=lambda kv: -kv[1][1])[:15]
        ],
        "top_enums": [
            {"enum": text if len(text) < 160 else text[:157] + "...", "count": c, "bytes_total": b}
            for text, (c, b) in sorted(enums.items(), key=lambda kv: -kv[1][1])[:8]
        ],
    }


MCP_HINT_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


def what_if(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Savings of the cuts we chose not to make (README, "What tools/list shows"), measured on the
    real entries: each alone, then together. Every parameter keeps its description."""

    def without_annotations(t: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
        return {**t, "annotations": a} if a else {k: v for k, v in t.items() if k != "annotations"}

    def no_annotation_title(t: dict[str, Any]) -> dict[str, Any]:
        a = {k: v for k, v in t.get("annotations", {}).items() if k != "title" or v != t.get("title")}
        return without_annotations(t, a)

    def read_only_irrelevant_hints(t: dict[str, Any]) -> dict[str, Any]:
        a = dict(t.get("annotations", {}))
        if a.get("readOnlyHint"):  # the spec: destructive/idempotent hints are meaningful only when not read-only
            a.pop("destructiveHint", None)
            a.pop("idempotentHint", None)
        return without_annotations(t, a)

    def hint_defaults(t: dict[str, Any]) -> dict[str, Any]:
        a = {k: v for k, v in t.get("annotations", {}).items() if MCP_HINT_DEFAULTS.get(k, object()) != v}
        return without_annotations(t, a)

    changes: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
        ("drop annotations.title (repeats the tool's top-level title)", no_annotation_title),
        ("drop destructive/idempotent hints of read-only tools (spec: meaningless there)", read_only_irrelevant_hints),
        ("omit every hint equal to its MCP default (openWorldHint:true, readOnlyHint:false...)", hint_defaults),
    ]
    n = len(tools)
    wrapper = len('{"tools":[]}') + n - 1

    def per_tool(ts: list[dict[str, Any]]) -> float:
        return round((sum(nbytes(t) for t in ts) + wrapper) / n, 1)

    base = per_tool(tools)
    rows = [
        {"change": label, "saves_per_tool": round(base - per_tool([change(t) for t in tools]), 1)}
        for label, change in changes
    ]
    combined = tools
    for _, change in changes:
        combined = [change(t) for t in combined]
    after = per_tool(combined)
    rows.append({"change": "all of the above", "saves_per_tool": round(base - after, 1), "bytes_per_tool_after": after})
    return rows


async def our_tools_list(env: dict[str, str]) -> tuple[list[dict[str, Any]], int, dict[str, str]]:
    """tools/list of our server in legacy mode, in-process: (tools, result bytes, name -> provider)."""
    from mcp import Client

    from mcp_cloudops.registry import load_registry
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    server = build_server(Settings.from_env(env))
    async with Client(server, mode="legacy") as client:
        result = await client.list_tools()
    dumped = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    providers = {t.name: t.provider for t in load_registry().tools}
    return dumped["tools"], nbytes(dumped), providers


def peer_tools_list(validate_output: bool) -> tuple[list[dict[str, Any]], int]:
    argv = [str(PEER_PY), str(BENCH / "peer_fastmcp.py"), "tools"] + (["--validate-output"] if validate_output else [])
    done = subprocess.run(argv, capture_output=True, text=True, env=base_env(), cwd=ROOT, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"peer tools/list failed: {done.stderr.strip()[-400:]}")
    dumped = json.loads(done.stdout)
    return dumped["tools"], nbytes(dumped)


# ---------------------------------------------------------------- 3/4. calls against the sandbox


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


def expect(tool: str, op_id: str) -> str:
    return op_id if tool == "get-nirvana-operation" else '"instances"'


class Caller:
    """One way to make each compared call, returning elapsed ms (errors counted, never hidden)."""

    def __init__(self, label: str, op_id: str) -> None:
        self.label = label
        self.op_id = op_id

    async def call(self, tool: str) -> float:
        start = time.perf_counter()
        try:
            why = await self._call(tool)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - start) * 1000
        if why:
            ERRORS.add(f"{self.label} {tool}", why)
        return elapsed

    async def _call(self, tool: str) -> str:
        raise NotImplementedError


class McpCaller(Caller):
    def __init__(self, label: str, op_id: str, client: Any, tool_name: Callable[[str], str]) -> None:
        super().__init__(label, op_id)
        self.client = client
        self.tool_name = tool_name

    async def _call(self, tool: str) -> str:
        args = {"operation_id": self.op_id} if tool == "get-nirvana-operation" else {}
        result = await self.client.call_tool(self.tool_name(tool), args)
        text = "".join(getattr(c, "text", "") for c in result.content)
        if result.is_error or expect(tool, self.op_id) not in text:
            return f"tool error: {text[:200]}"
        return ""


class DirectCaller(Caller):
    """The same upstream request made directly, pooled and authenticated as ours are: with httpx (what
    mcp-cloudops uses upstream) or httpx2 (what the SDK and the peer use), to show the library's share."""

    def __init__(self, label: str, op_id: str, sandbox: Sandbox, lib: str = "httpx") -> None:
        from pydantic import SecretStr

        from mcp_cloudops.auth import ExoscaleV2Auth, exo2_authorization

        super().__init__(label, op_id)
        self.lib = lib
        self.key, self.secret = sandbox.env["EXOSCALE_API_KEY"], sandbox.env["EXOSCALE_API_SECRET"]
        self.sign = exo2_authorization
        headers = {"Accept": "application/json"}
        bearer = {"Authorization": f"Bearer {sandbox.env['NIRVANA_LABS_API_KEY']}"}
        if lib == "httpx":
            import httpx

            timeout = httpx.Timeout(30.0, connect=5.0)
            auth = ExoscaleV2Auth(SecretStr(self.key), SecretStr(self.secret))
            self.nirvana: Any = httpx.AsyncClient(base_url=sandbox.nirvana, headers=headers | bearer, timeout=timeout)
            self.exoscale: Any = httpx.AsyncClient(
                base_url=sandbox.exoscale_zone_url, auth=auth, timeout=timeout, headers=headers
            )
        else:
            import httpx2

            timeout2 = httpx2.Timeout(30.0, connect=5.0)
            self.nirvana = httpx2.AsyncClient(base_url=sandbox.nirvana, headers=headers | bearer, timeout=timeout2)
            self.exoscale = httpx2.AsyncClient(base_url=sandbox.exoscale_zone_url, timeout=timeout2, headers=headers)
        self.exo_path = "/" + sandbox.exoscale_zone_url.split("/", 3)[3] + "/instance"

    async def _call(self, tool: str) -> str:
        if tool == "get-nirvana-operation":
            response = await self.nirvana.get(f"/v1/operations/{self.op_id}")
        elif self.lib == "httpx":
            response = await self.exoscale.get("/instance")
        else:  # httpx2 has no ExoscaleV2Auth (an httpx.Auth): sign the same way, by hand
            sig = self.sign(self.key, self.secret, "GET", self.exo_path, "", b"", int(time.time()) + 600)
            response = await self.exoscale.get("/instance", headers={"Authorization": sig})
        ok = response.status_code == 200 and expect(tool, self.op_id) in response.text
        return "" if ok else f"HTTP {response.status_code}: {response.text[:120]}"

    async def aclose(self) -> None:
        await self.nirvana.aclose()
        await self.exoscale.aclose()


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
    """Ours in-process (mcp.Client(server), legacy) vs direct httpx, interleaved per call; the peer's
    own in-process block (in its venv) alternates with ours, block by block."""
    from mcp import Client

    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    server = build_server(Settings.from_env(base_env(**sandbox.env)))
    direct = DirectCaller("direct", op_id, sandbox)
    direct2 = DirectCaller("direct_httpx2", op_id, sandbox, lib="httpx2")
    ours: dict[str, dict[str, list[float]]] = {t: {"mcp": [], "direct": [], "direct_httpx2": []} for t in COMMON_TOOLS}
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
        async with Client(server, mode="legacy") as client:
            caller = McpCaller("mcp", op_id, client, lambda t: t)
            for r in range(rounds):
                got = await interleaved([caller, direct, direct2], per_round, warmup=20 if r == 0 else 0)
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
            if s.get("direct_httpx2"):
                out[t]["direct_httpx2_ms"] = summary(s["direct_httpx2"])
        return out

    out: dict[str, Any] = {"rounds": rounds, "calls_per_tool": per_round * rounds, "ours": report(ours, "httpx")}
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
    out: dict[str, Any] = {"calls_per_tool": n, "direct_client": "httpx"}
    for t in COMMON_TOOLS:
        out[t] = {"direct_ms": summary(samples[t]["direct"])}
        for s in servers:
            out[t][s.key] = {"mcp_ms": summary(samples[t][s.key]), **added(samples[t], s.key)}
    return out


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


# -------------------------------------------------------------------------------------- the table


def row(*cells: tuple[Any, str]) -> str:
    """One table line from (value, format spec) pairs."""
    return "   " + "".join(format(value, spec) for value, spec in cells)


def render(res: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    m = res["machine"]
    add(f"mcp-cloudops bench  {res['started_at']}  ({res['elapsed_s']:.0f} s)")
    add(
        f"machine: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m.get('mem_total_gb', '?')} GB RAM"
    )
    add(f"         {m['platform']}; Python {m['python']}, mcp {m['mcp']}, httpx {m['httpx']}")
    add(f"peer:    {res['peer']['status']}")
    if not m.get("sniffio_installed", True):
        add("env:     sniffio is not installed: httpcore retries a failing `import sniffio` several times per request")
    noise = res.get("machine_noise")
    if noise:
        share = noise["other_processes_share_of_capacity"] or 0.0
        add(f"noise:   load average at start {noise['loadavg_at_start'][0]}, other processes used "
            f"{noise['other_processes_cpu_s']} CPU-s ({share:.1%} of capacity) during the run; "
            f"hypervisor steal {noise.get('steal_cpu_s', 0)} CPU-s")  # fmt: skip
    add("")
    render_cold(res, add)
    render_context(res, add)
    render_calls(res, add)
    render_throughput(res, add)
    errs = res["errors"]
    add(f"ERRORS: {errs['count']}" + ("" if not errs["count"] else "  <-- FAIL: " + " | ".join(errs["first"][:5])))
    for note in res.get("notes", []):
        add(f"note: {note}")
    return "\n".join(lines)


def render_cold(res: dict[str, Any], add: Callable[[str], None]) -> None:
    cs = res.get("cold_start")
    if cs:
        add("1. COLD START  spawn -> tools/list answer over stdio, no sandbox, no credentials")
        add(f"   (median of {cs['runs']} per subject, interleaved round by round, one warm-up each)")
        add(
            row(("subject", "<34"), ("median s", ">9"), ("min", ">7"), ("max", ">7"), ("x bare", ">8"), ("tools", ">7"))
        )
        for s in cs["subjects"].values():
            sec = s["seconds"]
            add(row((s["label"], "<34"), (sec["p50"], ">9.3f"), (sec["min"], ">7.2f"), (sec["max"], ">7.2f"),
                    (s["ratio_to_bare"], ">8.2f"), (s["tools"], ">7")))  # fmt: skip
        ratio = cs["subjects"]["ours"]["ratio_to_bare"]
        add(f"   mcp-cloudops / bare = {ratio:.2f}x  (target <= 1.15x: {'PASS' if ratio <= 1.15 else 'FAIL'})")
        if "peer" in cs["subjects"]:
            r = cs["subjects"]["ours"]["seconds"]["p50"] / cs["subjects"]["peer"]["seconds"]["p50"]
            add(f"   mcp-cloudops / fastmcp peer = {r:.2f}x")
    it = res.get("importtime")
    if it:
        total, split = it["total_import_ms"], it["ours_split_ms"]
        add(f"   -X importtime (median of {it['runs']}): all imports {total['ours']:.0f} ms ours, "
            f"{total['bare']:.0f} ms bare")  # fmt: skip
        add(f"   ours = modules the bare server also imports {split['sdk_floor_modules']:.0f} ms "
            f"+ modules only ours imports {split['extra_modules']:.0f} ms")  # fmt: skip
        extra = ", ".join(f"{p['package']} {p['self_ms']:.0f}" for p in it["extra_by_package"][:9])
        add(f"   extra modules by package, self ms: {extra}")
        for r in it["extra_third_party_by_importer"][:4]:
            pk = ", ".join(f"{k} {v:.0f}" for k, v in list(r["packages"].items())[:7])
            add(f"     third-party imported under {r['via']}: {r['self_ms']:.0f} ms ({pk})")
        mods = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in it["mcp_cloudops_modules"][:5])
        add(f"   mcp_cloudops modules, cumulative ms: {mods}")
    sp = res.get("startup_profile")
    if sp:
        c, u = sp["calls_per_start"], sp["unit_ms"]
        add(f"   one start (cProfile) calls load_registry x{c['load_registry']}, build_server x{c['build_server']}, "
            f"make_tool x{c['make_tool']}")  # fmt: skip
        add(f"   warm unit cost: load_registry {u.get('load_registry')} ms, build_server {u.get('build_server')} ms, "
            f"yaml.safe_load(tools.yaml) {u.get('yaml.safe_load(tools.yaml)')} ms "
            f"(CSafeLoader {u.get('yaml CSafeLoader(tools.yaml)')} ms)")  # fmt: skip
    add("")


def render_context(res: dict[str, Any], add: Callable[[str], None]) -> None:
    cc = res.get("context_cost")
    if not cc:
        return
    add("2. CONTEXT COST  tools/list result (legacy mode; model_dump(by_alias, exclude_none, json); compact JSON)")
    add("   tokens ~= bytes/4: an estimate, no tokenizer")
    add(row(("server / toolset", "<48"), ("tools", ">6"), ("bytes", ">9"), ("B/tool", ">8"), ("~tok", ">8"),
            ("~tok/tool", ">10")))  # fmt: skip

    def line(label: str, v: dict[str, Any]) -> None:
        bytes_ = v.get("result_bytes", v.get("bytes"))
        add(row((label, "<48"), (v["tools"], ">6"), (bytes_, ">9"), (v["bytes_per_tool"], ">8.0f"),
                (bytes_ // 4, ">8"), (v["bytes_per_tool"] / 4, ">10.0f")))  # fmt: skip

    o = cc["ours"]
    line("mcp-cloudops (all)", o)
    for g, v in o["by_group"].items():
        line(f"  toolset {g}", v)
    for key, label in (
        ("ours_common", "mcp-cloudops, the peer's 23 tools"),
        ("peer", "fastmcp peer, validate_output=False (served)"),
        ("peer_default", "fastmcp peer, default validate_output=True"),
    ):
        if key in cc:
            line(label, cc[key])
    add(
        f"   average {o['bytes_per_tool']:.0f} B/tool "
        f"(target <= 900: {'PASS' if o['bytes_per_tool'] <= 900 else 'FAIL'})"
    )
    add("   what the bytes are (mcp-cloudops, B/tool and share; each = what removing it saves):")
    parts = sorted(o["breakdown_bytes_per_tool"].items(), key=lambda kv: -kv[1])
    for chunk in (parts[:5], parts[5:10], parts[10:]):
        add("     " + ", ".join(f"{k} {v:.0f} ({o['breakdown_share'][k]:.0%})" for k, v in chunk if v))
    if "peer" in cc:
        pp = sorted(cc["peer"]["breakdown_bytes_per_tool"].items(), key=lambda kv: -kv[1])
        add("   fastmcp peer (served), B/tool: " + ", ".join(f"{k} {v:.0f}" for k, v in pp[:6] if v))
    add("   biggest tools: " + ", ".join(f"{t['name']} {t['bytes']}" for t in o["per_tool"][:4]))
    add("   costliest param descriptions (count x text = bytes):")
    for d in o["top_param_descriptions"][:4]:
        text = d["text"] if len(d["text"]) <= 70 else d["text"][:67] + "..."
        add(f'     {d["count"]:>3}x "{text}" = {d["bytes_total"]}')
    add(
        "   costliest enums: "
        + "; ".join(f"{e['count']}x {e['enum'][:30]}... = {e['bytes_total']}" for e in o["top_enums"][:2])
    )
    add("   what-if, cuts we chose not to make (README: What tools/list shows), measured on our entries:")
    for w in cc["what_if"]:
        tail = f"  -> {w['bytes_per_tool_after']:.0f} B/tool" if "bytes_per_tool_after" in w else ""
        add(f"     -{w['saves_per_tool']:>5.1f} B/tool  {w['change']}{tail}")
    add("")


def render_calls(res: dict[str, Any], add: Callable[[str], None]) -> None:
    pc = res.get("per_call")
    if not pc:
        return
    add("3. PER-CALL OVERHEAD  ms, same upstream request against the sandbox, interleaved call by call;")
    add("   added = MCP percentile - direct percentile (direct = httpx, pooled, same auth)")
    add(row(("path / server", "<30"), ("tool", "<24"), ("direct p50", ">11"), ("p99", ">7"), ("mcp p50", ">9"),
            ("p99", ">7"), ("added p50", ">10"), ("p99", ">7")))  # fmt: skip

    def line(label: str, tool: str, d: dict[str, float], v: dict[str, Any]) -> None:
        mcp = v["mcp_ms"]
        add(row((label, "<30"), (tool, "<24"), (d["p50"], ">11.2f"), (d["p99"], ">7.2f"), (mcp["p50"], ">9.2f"),
                (mcp["p99"], ">7.2f"), (v["added_p50_ms"], ">10.2f"), (v["added_p99_ms"], ">7.2f")))  # fmt: skip

    mem = pc.get("in_memory", {})
    for key, label in (("ours", "in-memory mcp-cloudops"), ("peer", "in-memory fastmcp peer")):
        for t, v in mem.get(key, {}).items():
            line(label, t, v["direct_ms"], v)
    http = pc.get("http", {})
    for t in COMMON_TOOLS:
        for key, v in http.get(t, {}).items():
            if key != "direct_ms":
                line(f"HTTP {res['servers'][key]}", t, http[t]["direct_ms"], v)
    for t, v in mem.get("ours", {}).items():
        if "direct_httpx2_ms" in v:
            d1, d2 = v["direct_ms"]["p50"], v["direct_httpx2_ms"]["p50"]
            add(f"   {t}: direct with httpx2 p50 {d2:.2f} ms vs httpx {d1:.2f}"
                " ms (same process, interleaved): the HTTP library's share")  # fmt: skip
    if "ours_profile" in mem:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in list(mem["ours_profile"]["share_by_package"].items())[:9])
        add(f"   where an in-memory call's time goes (cProfile self time, client + server): {shares}")
        funcs = ", ".join(
            f"{k} {v:.1%}" for k, v in list(mem["ours_profile"]["mcp_cloudops_share_by_function"].items())[:4]
        )
        add(f"     of which mcp_cloudops: {funcs}")
    if "ours" in mem:
        worst = max(v["added_p50_ms"] for v in mem["ours"].values())
        add(f"   in-memory added p50, worst tool: {worst:.2f} ms (target < 2 ms: {'PASS' if worst < 2 else 'FAIL'})")
    if "peer" in mem and "ours" in mem:
        for t in COMMON_TOOLS:
            a, b = mem["ours"][t]["added_p50_ms"], mem["peer"][t]["added_p50_ms"]
            ratio = f" ({a / b:.2f}x)" if b > 0 else ""
            add(f"   {t}: in-memory added p50 ours {a:.2f} ms vs peer {b:.2f} ms{ratio}")
    add("")


def render_throughput(res: dict[str, Any], add: Callable[[str], None]) -> None:
    tp = res.get("throughput")
    if not tp:
        return
    add(f"4. THROUGHPUT  streamable HTTP, one mcp.Client session per unit of concurrency, {tp['duration_s']:g} s per"
        " level and server, both tools alternately; CPU in % of one core")  # fmt: skip
    add(row(("server", "<16"), ("conc", ">5"), ("calls/s", ">9"), ("p50 ms", ">8"), ("p99 ms", ">8"), ("server", ">8"),
            ("upstream", ">9"), ("client", ">8"), ("calls/server-CPU-s", ">19"), ("errors", ">7")))  # fmt: skip
    for level, r in tp["levels"].items():
        for key, v in r.items():
            cpu = v["cpu_percent_of_one_core"]
            add(row((res["servers"][key], "<16"), (level, ">5"), (v["calls_per_s"], ">9.1f"),
                    (v["latency_ms"]["p50"], ">8.2f"), (v["latency_ms"]["p99"], ">8.2f"), (cpu["server"], ">8.0f"),
                    (cpu["sandbox_upstream"], ">9.0f"), (cpu["bench_client"], ">8.0f"),
                    (v["calls_per_server_cpu_s"], ">19.0f"), (v["errors"], ">7")))  # fmt: skip
        if "ours" in r and "peer" in r and r["peer"]["calls_per_s"]:
            add(f"   {'':<21}ours/peer: calls/s {r['ours']['calls_per_s'] / r['peer']['calls_per_s']:.2f}x, "
                f"calls per server CPU-second "
                f"{r['ours']['calls_per_server_cpu_s'] / r['peer']['calls_per_server_cpu_s']:.2f}x")  # fmt: skip
    mem = ", ".join(
        f"{res['servers'][k]} {v.get('rss_mb')} MB (peak {v.get('peak_rss_mb')})" for k, v in tp["memory_after"].items()
    )
    add(f"   server RSS after the run: {mem}")
    add("")


# ---------------------------------------------------------------------------------------- main


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
        pc: dict[str, Any] = {"in_memory": await in_memory(sandbox, OPERATION_DONE, args.calls, 3, peer_ok)}
        print("per-call HTTP ...", flush=True)
        pc["http"] = await over_http(servers, sandbox, OPERATION_DONE, args.calls)
        res["per_call"] = pc
        print("throughput ...", flush=True)
        res["throughput"] = await throughput(servers, sandbox, OPERATION_DONE, args.concurrency, args.duration)
    finally:
        for s in servers:
            stop(s.proc)
        stop(sandbox.proc)
    res["servers"] = {s.key: s.label for s in servers} | {"ours": "mcp-cloudops", "peer": "fastmcp peer"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="mcp-cloudops benchmark (see bench/README.md)")
    ap.add_argument("--runs", type=int, default=15, help="cold starts per subject (default 15)")
    ap.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs per subject (default 3)")
    ap.add_argument("--calls", type=int, default=300, help="measured calls per tool and path (default 300)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per throughput level and server (default 3)")
    ap.add_argument("--concurrency", default="1,8,32", help="throughput levels (default 1,8,32)")
    ap.add_argument("--no-peer", action="store_true", help="skip the FastMCP peer")
    ap.add_argument("--setup-peer", action="store_true", help=f"create bench/.venv-fastmcp ({PEER_PIN}) if missing")
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: --runs 3 --importtime-runs 1 --calls 40 --duration 1"
    )
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json", help="JSON output path")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.importtime_runs, args.calls, args.duration = 3, 1, 40, 1.0
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
    subjects = [ours, bare]
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
            res["cold_start"] = cold_start(subjects[:2], args.runs)
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
        "our HTTP server runs with its default logging (one INFO line per upstream call, to a file).",
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    print()
    print(render(res))
    print(f"\nJSON: {args.out}")
    if ERRORS.items:
        print(f"\nFAILED: {len(ERRORS.items)} error(s); first: {ERRORS.items[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
