"""What every measurement shares: paths and pins, the error tally, percentiles, JSON sizes, child
processes, and whether the FastMCP peer can run. Kept apart so each measurement module reads as what
it measures.

Importing it puts the checkout on sys.path, so `python bench/run.py` works without installing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
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


def accounts_file(per_provider: int, directory: Path) -> Path:
    """An accounts file (docs/configuration.md, "Accounts") giving every provider `per_provider` accounts beyond
    the environment's, each described, with made-up credentials: what a team with staging and production
    organisations writes."""
    import json

    from mcp_cloudops.registry import load_registry

    made_up = {
        "exoscale": {"EXOSCALE_API_KEY": "EXO" + "k" * 24, "EXOSCALE_API_SECRET": "s" * 40},
        "scaleway": {"SCW_SECRET_KEY": "11111111-2222-4333-8444-555555555555"},
        "portainer": {"PORTAINER_URL": "http://127.0.0.1:9", "PORTAINER_API_KEY": "ptr_" + "p" * 40},
        "nirvana": {"NIRVANA_LABS_API_KEY": "n" * 40},
        "incus": {"INCUS_SOCKET": "/nonexistent/incus.socket"},
    }
    accounts = {
        key: {f"team-{n}": {"description": f"Team {n}", "variables": made_up.get(key, {})} for n in range(per_provider)}
        for key in load_registry().providers
    }
    path = directory / "accounts.yaml"
    path.write_text(json.dumps({"accounts": accounts}))
    path.chmod(0o600)
    return path
