"""tools.yaml as parsed once, kept in the user's cache so a start skips the YAML parser.

Importing PyYAML and parsing tools.yaml cost ~30 ms, a third of what this server adds to the SDK's own
start; reading the same data back as JSON costs under 1 ms. Like Python's __pycache__, the cache only
ever saves time: it is keyed on the file's SHA-256 (an edited tools.yaml is parsed again, never served
stale), it holds JSON and never pickle, a file or folder another user could have written is ignored,
and any failure to read or write it falls back to parsing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when what is stored changes meaning
KEEP = 8  # entries kept: a few installs or checkouts side by side each find theirs; edits leave no trail


def cache_dir(env: Mapping[str, str]) -> Path | None:
    """$XDG_CACHE_HOME/mcp-cloudops, else ~/.cache/mcp-cloudops (relative XDG paths are ignored, as the
    XDG spec says); None without a home."""
    xdg = env.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "mcp-cloudops"
    home = env.get("HOME", "")
    return Path(home) / ".cache" / "mcp-cloudops" if os.path.isabs(home) else None


def entry_name(source: bytes) -> str:
    return f"registry-{FORMAT}-{hashlib.sha256(source).hexdigest()}.json"


def _ours(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else: only then may its contents define tools."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read_entry(folder: Path, name: str) -> Any | None:
    """The stored value, or None when missing, unreadable, not ours or not JSON."""
    try:
        if not _ours(os.stat(folder)):
            return None
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            if not (stat.S_ISREG((st := os.fstat(fd)).st_mode) and _ours(st)):
                return None
            return json.loads(handle.read())
        except (OSError, ValueError):
            return None


def write_entry(folder: Path, name: str, value: Any) -> None:
    """Store `value` if JSON gives it back unchanged; atomically, so a reader sees all of it or nothing."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return
    if json.loads(text) != value:  # e.g. a date or a number as a mapping key: parse each time instead
        return
    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _ours(os.stat(folder)):
            return
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".registry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temp, folder / name)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return
        prune(folder)


def prune(folder: Path) -> None:
    """Remove all but the KEEP newest entries."""
    with contextlib.suppress(OSError):
        entries = sorted(folder.glob(f"registry-{FORMAT}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in entries[KEEP:]:
            with contextlib.suppress(OSError):
                stale.unlink()


def parsed(source: bytes, parse: Callable[[bytes], Any], env: Mapping[str, str] | None = None) -> Any:
    """parse(source), read from the cache when this exact text was parsed before."""
    folder = cache_dir(os.environ if env is None else env)
    if folder is None or not hasattr(os, "geteuid"):
        return parse(source)
    name = entry_name(source)
    if (value := read_entry(folder, name)) is not None:
        return value
    value = parse(source)
    write_entry(folder, name, value)
    return value
