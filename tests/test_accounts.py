"""Accounts (accounts.py): the environment's account of each provider (where Incus is found, from the
registry's declared sockets), accounts files read and checked at start, and which account a call uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_cloudops.accounts import Account, environment_account, provider_variables, sandboxed
from mcp_cloudops.registry import load_registry
from mcp_cloudops.settings import ConfigError

REGISTRY = load_registry()
INCUS = REGISTRY.providers["incus"]


def env_account(env: dict[str, str]) -> Account:
    return environment_account(INCUS, env)


def test_the_first_declared_socket_that_exists_is_used(tmp_path: Path) -> None:
    first, second = tmp_path / "a.socket", tmp_path / "b.socket"
    provider = INCUS.model_copy(update={"sockets": (str(first), str(second))})
    with pytest.raises(ConfigError) as caught:  # none exists: the error names both, and what to set
        env_account({}).incus(provider)
    message = str(caught.value)
    assert str(first) in message and str(second) in message and "INCUS_SOCKET" in message and "INCUS_URL" in message
    second.touch()
    assert env_account({}).incus(provider).socket == str(second)
    assert env_account({"INCUS_SOCKET": "/x.socket"}).incus(provider).socket == "/x.socket"
    assert env_account({"INCUS_URL": "unix:///y.socket"}).incus(provider).socket == "/y.socket"


def test_the_registry_declares_where_incus_listens() -> None:
    assert INCUS.sockets == ("/var/lib/incus/unix.socket", "/run/incus/unix.socket")


def test_no_socket_and_no_url_names_what_to_set() -> None:
    """Was "Cannot reach Incus ... Check INCUS_URL" from the connect: neither INCUS_SOCKET nor a path named."""
    with pytest.raises(ConfigError) as caught:
        env_account({}).incus(INCUS.model_copy(update={"sockets": ("/nonexistent/incus/unix.socket",)}))
    message = str(caught.value)
    assert "no unix socket at /nonexistent/incus/unix.socket" in message
    assert "Set INCUS_SOCKET" in message and "INCUS_URL=https://" in message and "\n" not in message


def test_an_incus_url_that_is_neither_https_nor_unix_is_refused_not_ignored() -> None:
    """INCUS_URL=http://... used to fall through to the default socket, quietly."""
    with pytest.raises(ConfigError, match="INCUS_URL='http://h:8443' is not an Incus address"):
        env_account({"INCUS_URL": "http://h:8443"}).incus(INCUS)


def test_the_sandbox_never_reaches_a_real_provider() -> None:
    """A real endpoint or key set beside the sandbox switch is dropped: INCUS_URL would beat the socket."""
    registry = load_registry()
    real = {"INCUS_URL": "https://incus.prod:8443", "SCW_SECRET_KEY": "real", "MCP_CLOUDOPS_READ_ONLY": "1"}
    env = sandboxed(real, registry, {"INCUS_SOCKET": "/tmp/sandbox/incus.socket"})
    assert env == {"MCP_CLOUDOPS_READ_ONLY": "1", "INCUS_SOCKET": "/tmp/sandbox/incus.socket"}
    assert {"INCUS_URL", "INCUS_CLIENT_CERT", "EXOSCALE_API_SECRET", "PORTAINER_URL", "SCW_DEFAULT_ZONE"} <= (
        provider_variables(registry)
    )
