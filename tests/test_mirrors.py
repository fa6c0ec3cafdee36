"""mirrors.py and `mcp-cloudops generate`: every file mirroring tools.yaml is current, one command writes them
all, twice changes nothing, a sixth provider in tools.yaml reaches every mirror, and none of it needs the
network."""

from __future__ import annotations

import difflib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_cloudops import mirrors
from mcp_cloudops.mirrors import COMMAND, MirrorError, NotACheckout, expected, find_checkout, stale, with_table

ROOT = Path(__file__).resolve().parents[1]
DIFF_LINES = 40
# What generate reads and writes: copied into a scratch checkout.
COPIED = ("tools.yaml", "pyproject.toml", "README.md", "docs", "bundle/manifest.json", "server.json", "tests/snapshots")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

# A sixth provider signing in with a header, and its one tool: tools.yaml alone adds it.
ACME = {
    "title": "Acme Cloud",
    "summary": "Acme: servers.",
    "base_url": "https://api.acme.example/v1",
    "url_env": "ACME_API_URL",
    "auth": {"scheme": "header", "header": "X-Acme-Token", "secret_env": "ACME_TOKEN"},
}
ACME_TOOL = {
    "name": "list-acme-servers",
    "provider": "acme",
    "title": "List Acme servers",
    "description": "List the Acme servers with their id, name and state.",
    "method": "GET",
    "path": "/servers",
    "hints": {"readOnly": True, "destructive": False, "idempotent": True, "openWorld": True},
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only loopback and unix sockets: any other connection or name lookup fails the call."""
    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def local_only(sock: socket.socket, address: Any) -> None:
        if sock.family != socket.AF_UNIX and address[0] not in LOOPBACK:
            raise OSError(f"no network in this test: {address}")
        connect(sock, address)

    def local_names(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK and host is not None:
            raise OSError(f"no network in this test: {host}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(socket, "getaddrinfo", local_names)
    with pytest.raises(OSError, match="no network"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    yield


def short_diff(path: str, have: str, want: str) -> str:
    lines = list(difflib.unified_diff(have.splitlines(True), want.splitlines(True), path, f"{path} (generated)"))
    more = [f"... {len(lines) - DIFF_LINES} more diff lines\n"] if len(lines) > DIFF_LINES else []
    return "".join(lines[:DIFF_LINES] + more)


@pytest.mark.anyio
async def test_every_mirror_is_current(no_network: None) -> None:
    """The docs' tool table, the bundle, server.json and tests/snapshots/ say what tools.yaml says now."""
    checkout = find_checkout(ROOT)
    files = await expected(checkout)
    paths = list(stale(checkout, files))
    diffs = [
        f"{path} is no longer made: generate deletes it"
        if files[path] is None
        else short_diff(path, mirrors.read(ROOT / path), files[path] or "")
        for path in paths
    ]
    assert not paths, (
        f"stale: {', '.join(paths)}\n" + "\n".join(diffs) + f"\nIf the change is intended, run `{COMMAND}` and review "
        "the diff"
    )


def generate(where: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_cloudops", "generate", *flags],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
    )


def scratch_checkout(tmp_path: Path) -> Path:
    """A copy of what generate reads and writes, with a sixth provider added to its tools.yaml."""
    root = tmp_path / "checkout"
    for name in COPIED:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.exists():
            shutil.copy(source, target)
    raw = yaml.safe_load((root / "tools.yaml").read_text())
    raw["providers"]["acme"] = ACME
    raw["tools"].append(ACME_TOOL)
    (root / "tools.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (root / "tests/snapshots/renamed-long-ago.txt").write_text("nothing makes this any more\n")
    return root


def contents(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_generate_writes_every_stale_mirror_and_twice_changes_nothing(tmp_path: Path) -> None:
    """On a scratch checkout whose tools.yaml has a sixth provider: --check names every stale mirror and
    writes nothing; generate writes them; a second run, and --check after it, find nothing to do."""
    root = scratch_checkout(tmp_path)
    before = contents(root)
    checked = generate(root, "--check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert contents(root) == before
    named = {line.removeprefix("stale: ") for line in checked.stdout.splitlines() if line.startswith("stale: ")}
    assert {"docs/tools.md", "bundle/manifest.json", "server.json", "tests/snapshots/tools-list.json",
            "tests/snapshots/tools-read-only.txt", "tests/snapshots/renamed-long-ago.txt"} <= named  # fmt: skip
    assert checked.stdout.splitlines()[-1] == f"run `{COMMAND}` in {root}, then review the diff"

    first = generate(root)
    assert first.returncode == 0, first.stdout + first.stderr
    stray = "tests/snapshots/renamed-long-ago.txt"
    wrote = {f"wrote {path}" for path in named - {stray}}
    assert set(first.stdout.splitlines()) == wrote | {f"deleted {stray}", "review the diff (git diff)"}
    written = contents(root)
    second = generate(root)
    assert (second.returncode, second.stdout) == (0, "every mirror was current: nothing written\n")
    assert contents(root) == written
    assert generate(root, "--check").returncode == 0
    assert_the_sixth_provider_is_mirrored(root)


def assert_the_sixth_provider_is_mirrored(root: Path) -> None:
    """Its tool in the docs' table, the bundle and the snapshots; its variables in the bundle's form and in
    server.json, described from tools.yaml: the token a secret."""
    assert "| `list-acme-servers` | Acme Cloud | yes | no | yes |" in (root / "docs/tools.md").read_text()
    manifest = json.loads((root / "bundle/manifest.json").read_text())
    assert manifest["tools"][-1] == {"name": ACME_TOOL["name"], "description": ACME_TOOL["description"]}
    assert manifest["user_config"]["acme_token"] == {
        "type": "string",
        "title": "Acme Cloud: API key",
        "description": "Acme Cloud API key, sent as X-Acme-Token.",
        "required": False,
        "sensitive": True,
        "default": "",
    }
    assert manifest["user_config"]["acme_api_url"]["description"] == (
        "Overrides https://api.acme.example/v1. Empty: Acme Cloud's."
    )
    env = manifest["server"]["mcp_config"]["env"]
    assert list(env)[-2:] == ["ACME_TOKEN", "ACME_API_URL"]  # how to sign in first, the override last
    assert env["ACME_TOKEN"] == "${user_config.acme_token}"
    server = json.loads((root / "server.json").read_text())
    for package in server["packages"]:
        declared = {each["name"]: each for each in package["environmentVariables"]}
        assert declared["ACME_TOKEN"]["isSecret"] is True and "isSecret" not in declared["ACME_API_URL"]
    assert "list-acme-servers\n" in (root / "tests/snapshots/tools-read-only.txt").read_text()
    assert not (root / "tests/snapshots/renamed-long-ago.txt").exists()


def test_what_a_person_wrote_about_a_setting_is_kept(tmp_path: Path) -> None:
    """Generate owns the facts of a setting (which, in what order, secret or not), not its prose."""
    root = scratch_checkout(tmp_path)
    manifest_path = root / "bundle/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["user_config"]["exoscale_zone"]["description"] = "Where your instances live."
    manifest["user_config"]["exoscale_zone"]["sensitive"] = True  # a fact: put back
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    assert generate(root).returncode == 0
    option = json.loads(manifest_path.read_text())["user_config"]["exoscale_zone"]
    assert option["description"] == "Where your instances live." and "sensitive" not in option


def test_generate_refuses_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the folder it runs in (nor one above) nor the package's is a checkout: nothing to write."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "another-project"\n')
    (other / "tools.yaml").write_text("version: 1\n")
    monkeypatch.setattr(mirrors, "PACKAGE", tmp_path / "site-packages" / "mcp_cloudops")
    with pytest.raises(NotACheckout) as refused:
        find_checkout(other)
    assert str(refused.value).startswith(f"{COMMAND} rewrites files of a source checkout")
    assert str(refused.value).endswith("run it inside a clone of the repository")


def test_generate_refuses_a_checkout_whose_package_is_not_the_one_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """An mcp-cloudops installed elsewhere (pipx, a release) would write what another version serves."""
    monkeypatch.setattr(mirrors, "PACKAGE", Path("/opt/elsewhere/mcp_cloudops"))
    with pytest.raises(MirrorError, match=r"this mcp-cloudops runs from /opt/elsewhere/mcp_cloudops"):
        find_checkout(ROOT)


def test_generate_finds_the_checkout_above_where_it_runs(tmp_path: Path) -> None:
    root = scratch_checkout(tmp_path)
    (root / "docs" / "deep").mkdir(parents=True)
    assert find_checkout(root / "docs" / "deep").root == root


def test_a_table_file_without_its_markers_is_named() -> None:
    with pytest.raises(MirrorError, match=r"docs/tools.md holds no <!-- tools:start --> \.\.\. <!-- tools:end -->"):
        with_table("# Tools\n", "| tool |", "docs/tools.md")
    assert with_table("a\n<!-- tools:start -->\nold\n<!-- tools:end -->\nb\n", "new", "x") == (
        "a\n<!-- tools:start -->\nnew\n<!-- tools:end -->\nb\n"
    )
