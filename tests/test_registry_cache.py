"""The parsed tools.yaml kept in the user's cache: used only when it is this exact text and this user's
own file, and never needed: every failure parses again."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_cloudops import registry_cache
from mcp_cloudops.registry import RegistryError, default_path, load_registry


class Parser:
    """Counts the parses the cache did not spare."""

    def __init__(self, value: Any = None) -> None:
        self.calls = 0
        self.value = {"parsed": True} if value is None else value

    def __call__(self, source: bytes) -> Any:
        self.calls += 1
        return self.value


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}


def entry(env: dict[str, str], source: bytes) -> Path:
    folder = registry_cache.cache_dir(env)
    assert folder is not None
    return folder / registry_cache.entry_name(source)


def test_the_same_text_is_parsed_once(env: dict[str, str]) -> None:
    parse = Parser()
    assert registry_cache.parsed(b"a: 1", parse, env) == {"parsed": True}
    assert registry_cache.parsed(b"a: 1", parse, env) == {"parsed": True}
    assert parse.calls == 1
    folder = entry(env, b"a: 1").parent
    assert folder.stat().st_mode & 0o777 == 0o700
    assert entry(env, b"a: 1").stat().st_mode & 0o777 == 0o600


def test_an_edited_text_is_parsed_again(env: dict[str, str]) -> None:
    parse = Parser()
    registry_cache.parsed(b"a: 1", parse, env)
    registry_cache.parsed(b"a: 2", parse, env)
    assert parse.calls == 2


def test_home_cache_when_xdg_is_unset_or_relative(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert registry_cache.cache_dir(home) == tmp_path / ".cache" / "mcp-cloudops"
    assert registry_cache.cache_dir({**home, "XDG_CACHE_HOME": "relative"}) == tmp_path / ".cache" / "mcp-cloudops"
    assert registry_cache.cache_dir({}) is None
    parse = Parser()
    registry_cache.parsed(b"a: 1", parse, {})
    registry_cache.parsed(b"a: 1", parse, {})
    assert parse.calls == 2  # nowhere to keep it: parsed each time


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_an_entry_others_could_write_is_ignored(env: dict[str, str], mode: int) -> None:
    registry_cache.parsed(b"a: 1", Parser(), env)
    path = entry(env, b"a: 1")
    path.write_text(json.dumps({"planted": True}))
    path.chmod(mode)
    parse = Parser()
    assert registry_cache.parsed(b"a: 1", parse, env) == {"parsed": True}
    assert parse.calls == 1


def test_a_folder_others_could_write_is_ignored(env: dict[str, str]) -> None:
    registry_cache.parsed(b"a: 1", Parser(), env)
    entry(env, b"a: 1").parent.chmod(0o777)
    parse = Parser()
    registry_cache.parsed(b"a: 1", parse, env)
    registry_cache.parsed(b"a: 1", parse, env)
    assert parse.calls == 2  # neither read nor written there


def test_a_symlinked_entry_is_ignored(env: dict[str, str], tmp_path: Path) -> None:
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps({"planted": True}))
    planted.chmod(0o600)
    path = entry(env, b"a: 1")
    path.parent.mkdir(parents=True, mode=0o700)
    path.symlink_to(planted)
    parse = Parser()
    assert registry_cache.parsed(b"a: 1", parse, env) == {"parsed": True}


def test_a_broken_entry_is_parsed_again(env: dict[str, str]) -> None:
    registry_cache.parsed(b"a: 1", Parser(), env)
    entry(env, b"a: 1").write_text('{"cut sh')
    parse = Parser()
    assert registry_cache.parsed(b"a: 1", parse, env) == {"parsed": True}
    assert parse.calls == 1
    assert json.loads(entry(env, b"a: 1").read_text()) == {"parsed": True}  # and written whole again


def test_values_json_would_change_are_not_kept(env: dict[str, str]) -> None:
    for value in ({"when": datetime.date(2026, 12, 7)}, {1: "a number as a key"}):
        parse = Parser(value)
        registry_cache.parsed(repr(value).encode(), parse, env)
        assert registry_cache.parsed(repr(value).encode(), parse, env) == value
        assert parse.calls == 2
        assert not entry(env, repr(value).encode()).exists()


def test_old_entries_are_pruned(env: dict[str, str]) -> None:
    for n in range(registry_cache.KEEP + 3):
        registry_cache.parsed(f"a: {n}".encode(), Parser(), env)
        os.utime(entry(env, f"a: {n}".encode()), (n, n))  # distinct ages, oldest first
    kept = sorted(entry(env, b"a: 0").parent.glob("registry-*.json"))
    assert len(kept) == registry_cache.KEEP
    assert not entry(env, b"a: 0").exists()


def test_an_unwritable_cache_still_loads(env: dict[str, str]) -> None:
    folder = entry(env, b"a: 1").parent
    folder.parent.mkdir(parents=True)
    folder.write_text("a file where the folder would be")
    parse = Parser()
    assert registry_cache.parsed(b"a: 1", parse, env) == {"parsed": True}


def test_the_cached_registry_is_the_parsed_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_registry()  # parsed, then kept
    assert any(tmp_path.glob("mcp-cloudops/registry-*.json"))
    assert load_registry() == first


def test_a_start_that_finds_the_cache_never_loads_the_yaml_parser(tmp_path: Path) -> None:
    probe = "import sys; from mcp_cloudops.registry import load_registry; load_registry(); print('yaml' in sys.modules)"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)]
    runs.append(subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60))
    assert [run.stdout.strip() for run in runs] == ["True", "False"], [run.stderr for run in runs]


def test_yaml_mistakes_are_still_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "tools.yaml"
    path.write_text("version: [1\n")
    with pytest.raises(RegistryError, match=r"(?s)cannot read .*tools.yaml.*line 2"):
        load_registry(path)
    path.write_bytes(default_path().read_bytes().replace(b"version:", b"\xff version:", 1))
    with pytest.raises(RegistryError, match=r"cannot read .*utf-8"):
        load_registry(path)
