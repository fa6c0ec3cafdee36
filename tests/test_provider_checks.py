"""What is wrong with a configured provider (provider_checks.py): nothing for one not configured, a warning
naming what is missing for one set in part, and a fatal line naming the setting for a value set but wrong
(URLs, zones, Incus certificate files and sockets)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mcp_cloudops.accounts import environment_account
from mcp_cloudops.provider_checks import provider_problems
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.registry_models import Provider

REGISTRY = load_registry()
INCUS = REGISTRY.providers["incus"]


def test_an_oidc_token_needs_no_client_certificate(tmp_path: Path) -> None:
    env = {"INCUS_URL": "https://h:8443", "INCUS_TOKEN": "oidc", "INCUS_CONF": str(tmp_path)}
    endpoint = environment_account(INCUS, env).incus(INCUS)
    assert endpoint.cert is None and endpoint.key is None and endpoint.token is not None
    assert provider_problems(environment_account(INCUS, env), INCUS) == []


def problems(env: dict[str, str], key: str, registry: Registry = REGISTRY) -> list[tuple[str, bool]]:
    provider = registry.providers[key]
    return [(p.text, p.fatal) for p in provider_problems(environment_account(provider, env), provider)]


def over_http(registry: Registry) -> list[Provider]:
    """The providers reached at a URL with keys (Incus has sockets and certificates of its own, checked below)."""
    return [provider for provider in registry.providers.values() if provider.auth.scheme != "incus"]


def test_a_provider_not_configured_is_no_problem(registry: Registry) -> None:
    for provider in over_http(registry):
        assert problems({}, provider.key, registry) == [], provider.key
    assert problems({"SCW_DEFAULT_ZONE": "xx-yyy-9"}, "scaleway") == []  # the scw CLI's: not ours until configured


def test_a_providers_address_without_its_keys_names_each_key(registry: Registry) -> None:
    for provider in over_http(registry):
        [(text, fatal)] = problems({provider.url_env: "https://api.example"}, provider.key, registry)
        keys = " and ".join(provider.auth.env_names)
        assert not fatal and text.startswith(f"{provider.title}: {keys} ") and provider.url_env in text, text


def test_a_providers_address_that_is_not_http_is_fatal_and_named(registry: Registry) -> None:
    for provider in over_http(registry):
        env = {provider.url_env: "ftp://api.example", **dict.fromkeys(provider.auth.env_names, "k")}
        [(text, fatal)] = problems(env, provider.key, registry)
        assert fatal and text.startswith(f"{provider.url_env}='ftp://api.example' does not start with http"), text


def test_a_provider_set_in_part_is_not_fatal_but_named() -> None:
    [(text, fatal)] = problems({"PORTAINER_URL": "https://portainer.example:9443"}, "portainer")
    assert not fatal and "PORTAINER_API_KEY is not set but PORTAINER_URL is" in text
    [(text, fatal)] = problems({"EXOSCALE_API_KEY": "EXOk"}, "exoscale")
    assert not fatal and "EXOSCALE_API_SECRET is not set but EXOSCALE_API_KEY is" in text


@pytest.mark.parametrize(
    ("url", "says"),
    [("portainer.example:9443", "does not start with http:// or https://"),
     ("ftp://portainer.example", "does not start"), ("https://", "names no host"),
     ("https://portainer.example:94x3", "is not a URL"),
     ("https://portainer.example?x=1", "has a query or fragment")],
)  # fmt: skip
def test_a_bad_provider_url_is_fatal_and_named(url: str, says: str) -> None:
    [(text, fatal)] = problems({"PORTAINER_URL": url, "PORTAINER_API_KEY": "ptr_k"}, "portainer")
    assert fatal and text.startswith(f"PORTAINER_URL={url!r}") and says in text


def test_a_zone_that_is_not_the_providers_is_fatal() -> None:
    [(text, fatal)] = problems({"SCW_SECRET_KEY": "k", "SCW_DEFAULT_ZONE": "moon-1"}, "scaleway")
    assert fatal and "SCW_DEFAULT_ZONE='moon-1'" in text and "fr-par-1" in text


def test_incus_certificate_files_are_checked_by_name_and_path(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("not a key")
    env = {"INCUS_URL": "https://h:8443", "INCUS_CLIENT_CERT": str(tmp_path / "gone.crt"), "INCUS_CLIENT_KEY": str(key)}
    [(text, fatal)] = problems(env, "incus")
    assert fatal and text.startswith(f"INCUS_CLIENT_CERT={tmp_path / 'gone.crt'} is not a readable file")
    (tmp_path / "gone.crt").write_text("not a certificate")
    [(text, fatal)] = problems(env, "incus")  # both readable: now they must load as a pair
    assert fatal and "do not load as a certificate and its key" in text and "INCUS_CLIENT_KEY" in text
    [(text, _)] = problems({**env, "INCUS_SERVER_CERT": str(tmp_path / "server.crt")}, "incus")
    assert text.startswith(f"INCUS_SERVER_CERT={tmp_path / 'server.crt'} is not a readable file")


def test_incus_default_certificate_paths_are_named(tmp_path: Path) -> None:
    texts = [text for text, _ in problems({"INCUS_URL": "https://h:8443", "INCUS_CONF": str(tmp_path)}, "incus")]
    assert texts == [
        f"INCUS_CLIENT_CERT is not set and its default {tmp_path / 'client.crt'} is not a readable file (no such "
        "file or directory): set INCUS_CLIENT_CERT to the client certificate's path",
        f"INCUS_CLIENT_KEY is not set and its default {tmp_path / 'client.key'} is not a readable file (no such "
        "file or directory): set INCUS_CLIENT_KEY to the client key's path",
    ]


def test_incus_sockets_set_but_missing_or_wrong(tmp_path: Path) -> None:
    [(text, fatal)] = problems({"INCUS_SOCKET": str(tmp_path / "none.socket")}, "incus")
    assert not fatal and "no such socket (is Incus running?)" in text  # it may come up after the server
    plain = tmp_path / "plain"
    plain.touch()
    [(text, fatal)] = problems({"INCUS_SOCKET": str(plain)}, "incus")
    assert fatal and "is not a unix socket" in text
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "incus.socket"))
        assert problems({"INCUS_URL": f"unix://{tmp_path / 'incus.socket'}"}, "incus") == []
    assert problems({"INCUS_URL": "unix://"}, "incus")[0][1]  # names no socket: fatal
