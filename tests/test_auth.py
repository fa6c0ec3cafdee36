"""The Exoscale signer reproduces the published vectors and an independent implementation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx2
import pytest
import requests
from exoscale_auth import ExoscaleV2Auth as ReferenceAuth
from pydantic import SecretStr

from mcp_cloudops.accounts import IncusEndpoint, environment_account
from mcp_cloudops.auth import (
    ExoscaleV2Auth,
    HeaderAuth,
    bearer,
    credential,
    exo2_authorization,
    handshake_headers,
    incus_ssl_context,
)
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.settings import ConfigError

KEY = "EXOxxxxxxxxxxxxxxxxxxxxxxxx"
SECRET = "X" * 43
EXPIRES = 3376684800


class FrozenClock:
    @staticmethod
    def time() -> float:
        return EXPIRES - 600


def test_published_vector_without_query() -> None:
    header = exo2_authorization(KEY, SECRET, "GET", "/v2/zone", "", b"", EXPIRES)
    assert header == (
        f"EXO2-HMAC-SHA256 credential={KEY},expires={EXPIRES},signature=Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY="
    )


def test_published_vector_with_query() -> None:
    header = exo2_authorization(KEY, SECRET, "GET", "/v2/zone", "k1=v1&k2=v2", b"", EXPIRES)
    assert "signed-query-args=k1;k2" in header
    assert header.endswith("signature=iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY=")


def sign_with_httpx(method: str, url: str, body: bytes = b"") -> str:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={})

    auth = ExoscaleV2Auth(SecretStr(KEY), SecretStr(SECRET), clock=FrozenClock)  # type: ignore[arg-type]
    with httpx2.Client(transport=httpx2.MockTransport(handler), auth=auth) as client:
        client.request(method, url, content=body)
    return seen[0].headers["Authorization"]


def sign_with_reference(method: str, url: str, body: bytes = b"") -> str:
    prepared = requests.Request(method, url, data=body or None).prepare()
    ReferenceAuth(KEY, SECRET)._sign_request(prepared, EXPIRES)
    return prepared.headers["Authorization"]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "https://api-ch-gva-2.exoscale.com/v2/instance", b""),
        (
            "GET",
            "https://api-ch-gva-2.exoscale.com/v2/instance?manager-type=instance-pool&ip-address=1.2.3.4",
            b"",
        ),
        (
            "PUT",
            "https://api-de-fra-1.exoscale.com/v2/instance/0b9c8f1e-1111-4222-8333-444455556666:stop",
            b"",
        ),
        (
            "PUT",
            "https://api-ch-gva-2.exoscale.com/v2/instance/0b9c8f1e-1111-4222-8333-444455556666:scale",
            b'{"instance-type":{"id":"b6cd1ff5-3a2f-4e9d-a4d1-8988c1191fe8"}}',
        ),
        (
            "POST",
            "https://api-ch-gva-2.exoscale.com/v2/instance",
            b'{"name":"\xc3\xa9t\xc3\xa9","disk-size":10}',
        ),
    ],
)
def test_matches_requests_exoscale_auth(method: str, url: str, body: bytes) -> None:
    assert sign_with_httpx(method, url, body) == sign_with_reference(method, url, body)


def test_signature_covers_literal_colon_path() -> None:
    header = sign_with_httpx("PUT", "https://api-ch-gva-2.exoscale.com/v2/instance/abc:start")
    other = sign_with_httpx("PUT", "https://api-ch-gva-2.exoscale.com/v2/instance/abc%3Astart")
    assert header != other


def test_secrets_stay_out_of_reprs() -> None:
    auth = ExoscaleV2Auth(SecretStr(KEY), SecretStr(SECRET))
    header = HeaderAuth("X-Auth-Token", SecretStr("topsecret"))
    assert SECRET not in repr(vars(auth)) and "topsecret" not in repr(vars(header))
    assert bearer(SecretStr("tok")).header_value() == "Bearer tok"


@pytest.mark.parametrize(
    ("provider", "env", "kind", "headers"),
    [
        ("exoscale", {"EXOSCALE_API_KEY": "EXOkey", "EXOSCALE_API_SECRET": "s" * 43}, ExoscaleV2Auth, {}),
        ("scaleway", {"SCW_SECRET_KEY": "scw-secret"}, HeaderAuth, {"X-Auth-Token": "scw-secret"}),
        ("portainer", {"PORTAINER_API_KEY": "ptr_key"}, HeaderAuth, {"X-API-Key": "ptr_key"}),
        ("nirvana", {"NIRVANA_LABS_API_KEY": "nv-key"}, HeaderAuth, {"Authorization": "Bearer nv-key"}),
        ("incus", {"INCUS_URL": "https://h:8443", "INCUS_TOKEN": "oidc"}, HeaderAuth, {"Authorization": "Bearer oidc"}),
        ("incus", {}, type(None), {}),
    ],
)
def test_one_place_maps_each_scheme_to_its_credential(
    provider: str, env: dict[str, str], kind: type, headers: dict[str, str]
) -> None:
    spec = load_registry().providers[provider]
    auth = credential(spec, environment_account(spec, env))
    assert isinstance(auth, kind)
    assert handshake_headers(auth) == headers


def test_every_key_sent_as_is_goes_in_its_providers_header(registry: Registry) -> None:
    """tools.yaml's `auth` alone decides the header, for requests and websocket handshakes alike."""
    for spec in registry.providers.values():
        if spec.auth.scheme not in ("header", "bearer"):
            continue
        assert spec.auth.secret_env
        auth = credential(spec, environment_account(spec, {spec.auth.secret_env: "the-key"}))
        expected = {spec.auth.header: "the-key"} if spec.auth.header else {"Authorization": "Bearer the-key"}
        assert isinstance(auth, HeaderAuth) and handshake_headers(auth) == expected, spec.key


def test_incus_over_the_socket_needs_no_credential_lookup() -> None:
    """Over the socket there is no token: credential() must not look for a socket (that is the caller's)."""
    incus = load_registry().providers["incus"]
    env = {"INCUS_SOCKET": "/nonexistent.socket", "INCUS_TOKEN": "t"}
    assert credential(incus, environment_account(incus, env)) is None


def test_certificate_files_that_do_not_load_are_config_errors_naming_them(tmp_path: Path) -> None:
    """Was FileNotFoundError, an "internal error" in every Incus call."""
    crt, key = tmp_path / "client.crt", tmp_path / "client.key"
    with pytest.raises(ConfigError) as caught:
        incus_ssl_context(IncusEndpoint(url="https://h:8443", cert=crt, key=key))
    assert str(caught.value).startswith(f"INCUS_CLIENT_CERT={crt} and INCUS_CLIENT_KEY={key} do not load")
    assert "no such file or directory" in str(caught.value)
    crt.write_text("garbage")
    key.write_text("garbage")
    with pytest.raises(ConfigError, match="do not load as a certificate and its key"):
        incus_ssl_context(IncusEndpoint(url="https://h:8443", cert=crt, key=key))
    with pytest.raises(ConfigError, match=f"INCUS_SERVER_CERT={crt} cannot be loaded"):
        incus_ssl_context(IncusEndpoint(url="https://h:8443", server_cert=crt))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_an_encrypted_client_key_is_a_config_error_not_a_prompt(tmp_path: Path) -> None:
    """OpenSSL would ask for the passphrase on the terminal: a server on stdio would hang there."""
    key, crt = tmp_path / "client.key", tmp_path / "client.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-passout",
         "pass:secret", "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=client"],
        check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=f"INCUS_CLIENT_KEY={key} is encrypted"):
        incus_ssl_context(IncusEndpoint(url="https://h:8443", cert=crt, key=key))
