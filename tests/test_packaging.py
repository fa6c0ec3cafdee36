"""The package as users install it: a wheel built from the checkout, installed in a fresh venv, run from
another directory (`--version`, then tools/list over stdio). Its version has one source, pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from support import server_env

from mcp_cloudops.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def run(*command: str | Path, cwd: Path, timeout: float = 240) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=server_env()
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_version_is_pyprojects(tmp_path: Path) -> None:
    printed = run(sys.executable, "-m", "mcp_cloudops", "--version", cwd=tmp_path)
    assert printed == f"mcp-cloudops {VERSION}\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the checkout installed in a new venv: its `mcp-cloudops` command."""
    where = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", where, ROOT, cwd=where)  # as pip builds it
    [wheel] = where.glob("mcp_cloudops-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # the registry is a symlink in the checkout: the wheel has the file
        assert archive.read("mcp_cloudops/tools.yaml") == (ROOT / "tools.yaml").read_bytes()
        assert not any(name.startswith(("tests/", "bench/", "interop/")) for name in archive.namelist())
    venv = where / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=where)
    run(venv / "bin" / "pip", "install", "-q", wheel, cwd=where)  # dependencies from the index (or pip's cache)
    return venv / "bin" / "mcp-cloudops"


@pytest.mark.timeout(400)
def test_the_wheel_installs_and_runs_from_anywhere(installed: Path, tmp_path: Path) -> None:
    assert run(installed, "--version", cwd=tmp_path) == f"mcp-cloudops {VERSION}\n"

    async def listed() -> list[str]:
        params = StdioServerParameters(command=str(installed), args=["serve"], env=server_env(), cwd=str(tmp_path))
        with anyio.fail_after(60):
            async with Client(params) as client:
                return [tool.name for tool in (await client.list_tools()).tools]

    assert anyio.run(listed) == [tool.name for tool in load_registry().tools]
