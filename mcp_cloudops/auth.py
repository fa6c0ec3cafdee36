"""How each provider proves who we are: httpx2.Auth classes and the Incus TLS context."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from urllib.parse import parse_qsl

import httpx2
from pydantic import SecretStr

from mcp_cloudops.accounts import INCUS_ENV, Account, IncusEndpoint
from mcp_cloudops.registry_models import Provider
from mcp_cloudops.settings import ConfigError

EXO2_LIFETIME = 600  # seconds a signature stays valid, as Exoscale's own clients use


def exo2_query_args(raw_query: str) -> list[tuple[str, str]]:
    """Query params to sign, in name order; a name given twice cannot be signed and is left out."""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    return sorted((name, value) for name, value in pairs if names.count(name) == 1)


def exo2_message(method: str, path: str, body: bytes, query: Iterable[tuple[str, str]], expires: int) -> bytes:
    """The five-line EXO2-HMAC-SHA256 string to sign: request line, body, query values, headers, expiry."""
    values = "".join(value for _, value in query)
    return b"\n".join([f"{method} {path}".encode(), body, values.encode(), b"", str(expires).encode()])


def exo2_authorization(key: str, secret: str, method: str, path: str, raw_query: str, body: bytes, expires: int) -> str:
    """The Authorization header value for one request, as sent (path with its literal ':action')."""
    query = exo2_query_args(raw_query)
    message = exo2_message(method, path, body, query, expires)
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    parts = [f"EXO2-HMAC-SHA256 credential={key}"]
    if query:
        parts.append("signed-query-args=" + ";".join(name for name, _ in query))
    parts.append(f"expires={expires}")
    parts.append("signature=" + base64.standard_b64encode(digest).decode())
    return ",".join(parts)


class ExoscaleV2Auth(httpx2.Auth):
    """Signs each request with Exoscale's EXO2-HMAC-SHA256 scheme (key + secret, 10-minute expiry)."""

    requires_request_body = True

    def __init__(self, key: SecretStr, secret: SecretStr, clock: type[time] | None = None) -> None:
        self._key = key
        self._secret = secret
        self._now = (clock or time).time

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = exo2_authorization(
            self._key.get_secret_value(),
            self._secret.get_secret_value(),
            request.method,
            request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
            request.url.query.decode("ascii"),
            request.content,
            int(self._now()) + EXO2_LIFETIME,
        )
        yield request


class HeaderAuth(httpx2.Auth):
    """A static secret in one header: Scaleway's X-Auth-Token, Portainer's X-API-Key, a bearer token."""

    def __init__(self, header: str, secret: SecretStr, prefix: str = "") -> None:
        self.header = header
        self._secret = secret
        self._prefix = prefix

    def header_value(self) -> str:
        return self._prefix + self._secret.get_secret_value()

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers[self.header] = self.header_value()
        yield request


def bearer(secret: SecretStr) -> HeaderAuth:
    return HeaderAuth("Authorization", secret, prefix="Bearer ")


def incus_ssl_context(endpoint: IncusEndpoint) -> ssl.SSLContext:
    """TLS with our client certificate, trusting the pinned server certificate when one is given.

    An Incus server certificate is usually self-signed: pin it with INCUS_SERVER_CERT rather than
    turning verification off. Without a pin, the system CAs decide (a CA-signed server). A file that
    cannot be loaded is a ConfigError naming its variable (checked at start, and again here in case
    it went away since), never an internal error in every Incus call.
    """
    try:
        if endpoint.server_cert is not None:
            context = ssl.create_default_context(cafile=str(endpoint.server_cert))
            # A pinned self-signed certificate names the server's hostname, not the address we dial.
            context.check_hostname = False
        else:
            context = ssl.create_default_context()
    except OSError as exc:  # ssl.SSLError is one too
        raise ConfigError(
            f"{INCUS_ENV['server_cert']}={endpoint.server_cert} cannot be loaded ({why(exc)}): set it to the Incus "
            "server's certificate (PEM), e.g. a copy of its /var/lib/incus/server.crt"
        ) from None
    if endpoint.cert is not None and endpoint.key is not None:
        try:
            context.load_cert_chain(str(endpoint.cert), str(endpoint.key), password=no_passphrase(endpoint.key))
        except OSError as exc:
            raise ConfigError(
                f"{INCUS_ENV['cert']}={endpoint.cert} and {INCUS_ENV['key']}={endpoint.key} do not load as a "
                f"certificate and its key ({why(exc)}): set them to the PEM pair the Incus server trusts "
                "(`incus remote add` makes one in ~/.config/incus)"
            ) from None
    return context


def no_passphrase(key: Path) -> Callable[[], str]:
    """What OpenSSL calls for an encrypted key's passphrase: an error, where it would prompt on the terminal
    (and hang a server that has no one to answer)."""

    def refuse() -> str:
        raise ConfigError(
            f"{INCUS_ENV['key']}={key} is encrypted and the server cannot ask for its passphrase: "
            "set it to an unencrypted copy (openssl pkey -in KEY -out PLAIN), readable only by this user"
        )

    return refuse


def why(exc: OSError) -> str:
    """An OSError or ssl.SSLError in a few words, without a traceback."""
    if isinstance(exc, ssl.SSLError):
        return f"{exc.library or 'ssl'}: {exc.reason or exc.strerror or 'unreadable'}"
    return (exc.strerror or type(exc).__name__).lower()


def credential(provider: Provider, account: Account) -> httpx2.Auth | None:
    """How a request to `provider` through `account` proves who we are: the one place an auth scheme
    becomes a credential, for HTTP and websocket handshakes alike. None for Incus without a token: its
    TLS client certificate or unix socket does. ConfigError names the variable that is not set, and where."""
    auth = provider.auth
    if auth.scheme == "exoscale-v2":
        return ExoscaleV2Auth(account.secret(auth.key_env or ""), account.secret(auth.secret_env or ""))
    if auth.scheme == "bearer":
        return bearer(account.secret(auth.secret_env or ""))
    if auth.scheme == "header":
        return HeaderAuth(auth.header or "", account.secret(auth.secret_env or ""))
    token = account.incus_token(provider)  # over the socket, none: its file permissions are the credential
    return bearer(token) if token is not None else None


def handshake_headers(auth: httpx2.Auth | None) -> dict[str, str]:
    """The credential as headers, for a websocket handshake (which httpx does not carry); a signing
    scheme such as EXO2 has none, and no websocket tool of ours needs one."""
    return {auth.header: auth.header_value()} if isinstance(auth, HeaderAuth) else {}
