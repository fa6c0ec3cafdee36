"""Settings from the environment: where Incus is found, from the registry's declared sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_cloudops.registry import load_registry
from mcp_cloudops.settings import ConfigError, Settings

INCUS = load_registry().providers["incus"]


def test_the_first_declared_socket_that_exists_is_used(tmp_path: Path) -> None:
    first, second = tmp_path / "a.socket", tmp_path / "b.socket"
    provider = INCUS.model_copy(update={"sockets": (str(first), str(second))})
    assert Settings.from_env({}).incus(provider).socket == str(first)  # none exists: the first, to name it
    second.touch()
    assert Settings.from_env({}).incus(provider).socket == str(second)
    assert Settings.from_env({"INCUS_SOCKET": "/x.socket"}).incus(provider).socket == "/x.socket"
    assert Settings.from_env({"INCUS_URL": "unix:///y.socket"}).incus(provider).socket == "/y.socket"


def test_the_registry_declares_where_incus_listens() -> None:
    assert INCUS.sockets == ("/var/lib/incus/unix.socket", "/run/incus/unix.socket")


def test_no_socket_and_no_url_names_what_to_set() -> None:
    with pytest.raises(ConfigError, match="set INCUS_SOCKET or INCUS_URL"):
        Settings.from_env({}).incus(INCUS.model_copy(update={"sockets": ()}))
