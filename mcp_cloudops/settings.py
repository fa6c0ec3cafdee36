"""Runtime settings: where each provider lives and which credentials it has, read from the environment.

Secrets are held as SecretStr so that no repr, log line or traceback can print them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr

from mcp_cloudops.registry import Provider

INCUS_ENV = {
    "socket": "INCUS_SOCKET",
    "cert": "INCUS_CLIENT_CERT",
    "key": "INCUS_CLIENT_KEY",
    "server_cert": "INCUS_SERVER_CERT",
    "token": "INCUS_TOKEN",
}


class ConfigError(RuntimeError):
    """Configuration is missing or wrong; the message names the environment variable to set or fix."""


@dataclass(frozen=True)
class IncusEndpoint:
    """How to reach Incus: a unix socket path, or an HTTPS URL with a client certificate."""

    socket: str | None = None
    url: str | None = None
    cert: Path | None = None
    key: Path | None = None
    server_cert: Path | None = None
    token: SecretStr | None = None


TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def boolean(name: str, raw: str) -> bool:
    """A documented boolean, or ConfigError: `=y` must not quietly mean "off" for a safety switch."""
    word = raw.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ConfigError(
        f"{name}={raw!r} is not a boolean: use one of {', '.join(TRUE)} (on) or {', '.join(FALSE[:-1])} (off)"
    )


Number = TypeVar("Number", int, float)


def positive(name: str, raw: str, kind: Callable[[str], Number]) -> Number:
    """A finite number > 0, or ConfigError naming the variable: a limit of "-1" or "ten" must not start the server."""
    try:
        value: Number | None = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        what = "a whole number" if kind is int else "a number of seconds"
        raise ConfigError(f"{name}={raw!r} is not {what} > 0: set a positive value, or unset it for the default")
    return value


def names(raw: str | None) -> frozenset[str] | None:
    """A comma-separated list from a flag or env var; None when not given (no restriction)."""
    if raw is None or not raw.strip():
        return None
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_wait: float = 50.0  # longest one tool call waits for an operation: under clients' usual 60 s
    # Policy: which tools exist (see policy.py) and what the upstream layer lets through.
    read_only: bool = False
    toolsets: frozenset[str] | None = None
    tools: frozenset[str] | None = None
    exclude_tools: frozenset[str] = frozenset()
    confirm_fallback: str = "allow"  # destructive calls when the client cannot elicit: allow | refuse
    show_operation_secrets: bool = False  # results keep the keys an operation declares in `secrets`
    # Faults and size.
    retries: int = 2  # extra attempts for idempotent reads only
    retry_after_cap: float = 10.0
    max_response_bytes: int = 10 * 1024 * 1024
    output_cap: int = 25_000  # characters of a result the model reads
    # HTTP transport.
    http_token: SecretStr | None = None  # comma-separated: one token per person or agent, each its own principal
    stateless: bool = False
    http_header_timeout: float = 10.0  # a whole request head within this, from connect (slow-header attacks)
    http_idle_timeout: float = 15.0  # an idle keep-alive connection closes after this: above clients' own 5 s
    http_max_connections: int = 256  # open connections at most; beyond it the longest-waiting idle one goes

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = dict(os.environ if env is None else env)

        def get(name: str, default: str) -> str:
            return source.get(f"MCP_CLOUDOPS_{name}", "").strip() or default

        token = get("HTTP_TOKEN", "")
        return cls(
            env=source,
            connect_timeout=float(get("CONNECT_TIMEOUT", "5")),
            read_timeout=float(get("READ_TIMEOUT", "30")),
            max_wait=float(get("MAX_WAIT", "50")),
            read_only=boolean("MCP_CLOUDOPS_READ_ONLY", get("READ_ONLY", "")),
            toolsets=names(get("TOOLSETS", "")),
            tools=names(get("TOOLS", "")),
            exclude_tools=names(get("EXCLUDE_TOOLS", "")) or frozenset(),
            confirm_fallback=get("CONFIRM_FALLBACK", "allow").lower(),
            show_operation_secrets=boolean("MCP_CLOUDOPS_SHOW_OPERATION_SECRETS", get("SHOW_OPERATION_SECRETS", "")),
            retries=int(get("RETRIES", "2")),
            retry_after_cap=float(get("RETRY_AFTER_CAP", "10")),
            max_response_bytes=int(get("MAX_RESPONSE_BYTES", str(10 * 1024 * 1024))),
            output_cap=int(get("OUTPUT_CAP", "25000")),
            http_token=SecretStr(token) if token else None,
            stateless=boolean("MCP_CLOUDOPS_STATELESS", get("STATELESS", "")),
            http_header_timeout=positive("MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT", get("HTTP_HEADER_TIMEOUT", "10"), float),
            http_idle_timeout=positive("MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT", get("HTTP_IDLE_TIMEOUT", "15"), float),
            http_max_connections=positive("MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS", get("HTTP_MAX_CONNECTIONS", "256"), int),
        )

    def timeouts(self, provider: Provider) -> tuple[float, float]:
        """(connect, read) seconds for one provider: MCP_CLOUDOPS_<PROVIDER>_READ_TIMEOUT overrides."""
        key = provider.key.upper()
        connect = self.value(f"MCP_CLOUDOPS_{key}_CONNECT_TIMEOUT")
        read = self.value(f"MCP_CLOUDOPS_{key}_READ_TIMEOUT")
        return float(connect or self.connect_timeout), float(read or self.read_timeout)

    def value(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> SecretStr:
        """The secret in env var `name`, or ConfigError telling the agent which variable to set."""
        value = self.value(name)
        if value is None:
            raise ConfigError(f"{name} is not set: set it in the MCP server's environment and restart the server")
        return SecretStr(value)

    def base_url(self, provider: Provider) -> str:
        url = self.value(provider.url_env) or provider.base_url
        if not url:
            raise ConfigError(f"{provider.title} has no URL: set {provider.url_env} in the MCP server's environment")
        return url.rstrip("/")

    def default_zone(self, provider: Provider) -> str | None:
        return (self.value(provider.zone_env) if provider.zone_env else None) or provider.default_zone

    def incus(self, provider: Provider) -> IncusEndpoint:
        """Incus is reached over $INCUS_URL (https, client cert) or a unix socket, like the incus CLI."""
        url = self.value(provider.url_env)
        if url and url.startswith("https://"):
            config = Path(self.value("INCUS_CONF") or Path.home() / ".config" / "incus")
            cert = Path(self.value(INCUS_ENV["cert"]) or config / "client.crt")
            key = Path(self.value(INCUS_ENV["key"]) or config / "client.key")
            server = self.value(INCUS_ENV["server_cert"])
            token = self.value(INCUS_ENV["token"])
            return IncusEndpoint(
                url=url.rstrip("/"),
                cert=cert,
                key=key,
                server_cert=Path(server) if server else None,
                token=SecretStr(token) if token else None,
            )
        socket = self.value(INCUS_ENV["socket"])
        if url and url.startswith("unix://"):
            socket = url.removeprefix("unix://")
        if socket is None:
            tried = provider.sockets
            socket = next((path for path in tried if Path(path).exists()), tried[0] if tried else None)
        if socket is None:
            raise ConfigError(f"{provider.title} has no address: set {INCUS_ENV['socket']} or {provider.url_env}")
        return IncusEndpoint(socket=socket)

    def credential_status(self, provider: Provider) -> dict[str, bool]:
        """Which credential variables are set (never their values): what `check` reports."""
        if provider.auth.scheme == "incus":
            endpoint = self.incus(provider)
            if endpoint.socket:
                return {f"socket {endpoint.socket}": Path(endpoint.socket).exists()}
            return {
                INCUS_ENV["cert"]: bool(endpoint.cert and endpoint.cert.is_file()),
                INCUS_ENV["key"]: bool(endpoint.key and endpoint.key.is_file()),
            }
        status = {name: self.value(name) is not None for name in provider.auth.env_names}
        if provider.base_url is None:
            status = {provider.url_env: self.value(provider.url_env) is not None, **status}
        return status
