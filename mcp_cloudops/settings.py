"""Runtime settings: where each provider lives and which credentials it has, read from the environment.

Secrets are held as SecretStr so that no repr, log line or traceback can print them. Every value is
checked once, at start: a value that is set but wrong stops the server with one line naming the
variable and what to set, rather than a traceback at start or an error in every call later.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

from mcp_cloudops.registry import Provider
from mcp_cloudops.setting_values import (
    COUNT,
    OUTPUT_CAP,
    POSITIVE,
    SECONDS,
    USERINFO,
    WAIT_CAP,
    Number,
    Reader,
    Value,
    as_boolean,
    as_choice,
    as_number,
    as_path,
    as_port,
    as_registry,
    as_scope,
    as_secure_url,
    names,
    state_keys,
    tokens,
)

if TYPE_CHECKING:
    from mcp_cloudops.registry import Registry

PREFIX = "MCP_CLOUDOPS_"
INCUS_SOCKET_HOST = "http://incus"  # placeholder authority for requests sent over the unix socket
INCUS_ENV = {
    "socket": "INCUS_SOCKET",
    "cert": "INCUS_CLIENT_CERT",
    "key": "INCUS_CLIENT_KEY",
    "server_cert": "INCUS_SERVER_CERT",
    "token": "INCUS_TOKEN",
    "conf": "INCUS_CONF",
}
# Read elsewhere, before or without Settings: known, so that they are not refused as misspellings.
OTHER_SETTINGS = ("MCP_CLOUDOPS_REGISTRY",)
PROVIDER_TIMEOUT = re.compile(r"MCP_CLOUDOPS_(\w+?)_(CONNECT|READ)_TIMEOUT")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ISSUER_ENV, PUBLIC_URL_ENV = "MCP_CLOUDOPS_OAUTH_ISSUER", "MCP_CLOUDOPS_PUBLIC_URL"
ISSUER_EXAMPLE = "https://sso.example.com/realms/REALM"
PUBLIC_URL_EXAMPLE = "https://mcp.example.com/mcp"


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


ISSUER_URL = as_secure_url("the authorization server's issuer URL", ISSUER_EXAMPLE)
PUBLIC_URL = as_secure_url("this server's MCP URL as clients reach it", PUBLIC_URL_EXAMPLE)


def oauth_conflicts(r: Reader, settings: Settings) -> list[str]:
    """What is wrong with the OAuth settings taken together, one line each: both ways of signing in, or an
    issuer without the URL its tokens must name (or the reverse), or one scope name for reading and writing.
    Judged on what is set, so that a bad value is reported once, by its own line."""
    issuer, public = ISSUER_ENV, PUBLIC_URL_ENV
    problems = []
    if r.raw(issuer) and r.raw("MCP_CLOUDOPS_HTTP_TOKEN"):
        problems.append(
            f"{r.named(issuer)} and {r.named('MCP_CLOUDOPS_HTTP_TOKEN')} are both set: use one (OAuth for a team, "
            "a token for one user) and unset the other"
        )
    if r.raw(issuer) and not r.raw(public):
        problems.append(
            f"{r.named(issuer)} is set but {public} is not: set {public} (or --public-url) to this server's MCP "
            f"URL as clients reach it, e.g. {PUBLIC_URL_EXAMPLE}: tokens must name it as their audience"
        )
    if r.raw(public) and not r.raw(issuer):
        problems.append(
            f"{r.named(public)} is set but {issuer} is not: set {issuer} (or --oauth-issuer) to the "
            f"authorization server's issuer URL, e.g. {ISSUER_EXAMPLE}, or unset {public}"
        )
    if settings.oauth_read_scope == settings.oauth_write_scope:
        problems.append(
            f"MCP_CLOUDOPS_OAUTH_READ_SCOPE and MCP_CLOUDOPS_OAUTH_WRITE_SCOPE are both "
            f"{settings.oauth_read_scope!r}: give them different names"
        )
    return problems


def boolean(name: str, raw: str) -> bool:
    """`raw` as a documented boolean, or ConfigError naming `name` (for a setting read outside from_env)."""
    return read_one(name, raw, as_boolean)


def positive(name: str, raw: str, kind: Callable[[str], Number]) -> Number:
    """`raw` as a finite number > 0, or ConfigError naming `name` (for a setting read outside from_env)."""
    return read_one(name, raw, as_number(kind, kind("0"), inclusive=False))


def read_one(name: str, raw: str, parse: Callable[[str], Value]) -> Value:
    """One value outside from_env (e.g. a per-provider timeout of Settings built by hand), or ConfigError."""
    reader = Reader({name: raw}, {})
    value = reader.read(name, None, parse)
    if reader.problems:
        raise ConfigError(reader.problems[0])
    assert value is not None
    return value


# --- provider addresses -----------------------------------------------------------------------------------


def setting(name: str, url: str) -> str:
    """NAME='url' for a message, any password in the URL masked: start errors are not redacted later."""
    return f"{name}={USERINFO.sub('//***@', url)!r}"


def url_problem(name: str, url: str, schemes: Iterable[str] = ("http", "https")) -> str | None:
    """Why `url` (the value of `name`) cannot be an API's address, or None: a scheme we speak, a host, a port
    that is a number, no query or fragment (a tool's path is appended to it)."""
    allowed = tuple(schemes)
    spelled = " or ".join(f"{scheme}://" for scheme in allowed)
    fix = f"set {name} to the API's address, e.g. {allowed[-1]}://HOST[:PORT][/PATH]"
    subject = setting(name, url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"{subject} is not a URL ({exc}): {fix}"
    if parts.scheme.lower() not in allowed:
        return f"{subject} does not start with {spelled}: {fix}"
    if not parts.hostname:
        return f"{subject} names no host: {fix}"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return f"{subject} has a query or fragment, which a tool's path would follow: {fix}"
    return None


def exists(path: str) -> bool:
    """Whether `path` exists; False too when a directory on the way may not be searched (no traceback)."""
    return os.path.exists(path)


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
    dynamic_toolsets: bool = False  # sessions start with the discovery tools only (toolsets.py)
    sandbox: bool = False  # serve against the built-in simulators (serve --sandbox; `mcp dev`)
    # Faults and size.
    retries: int = 2  # extra attempts for idempotent reads only
    retry_after_cap: float = 10.0
    max_response_bytes: int = 10 * 1024 * 1024
    output_cap: int = 25_000  # characters of a result the model reads
    # HTTP transport.
    http_token: SecretStr | None = None  # comma-separated: one token per person or agent, each its own principal
    stateless: bool = False
    state_keys: SecretStr | None = None  # shared requestState keys for replicas (server.request_state_security)
    http_header_timeout: float = 10.0  # a whole request head within this, from connect (slow-header attacks)
    http_body_timeout: float = 30.0  # a whole request body within this, from its head (slow-body attacks)
    http_idle_timeout: float = 15.0  # an idle keep-alive connection closes after this: above clients' own 5 s
    http_max_connections: int = 256  # open connections at most; beyond it the longest-waiting idle one goes
    metrics_port: int | None = None  # Prometheus metrics on a listener of their own (metrics.py); None: off
    metrics_host: str | None = None  # that listener's address; None: loopback, whatever --host says
    # OAuth 2.1 resource server (oauth.py): tokens from this issuer, for this URL; instead of http_token.
    oauth_issuer: str | None = None  # the authorization server; its keys come from its discovery metadata
    public_url: str | None = None  # this server's MCP URL as clients reach it: the tokens' audience
    oauth_read_scope: str = "cloudops:read"  # lists and calls the read-only tools
    oauth_write_scope: str = "cloudops:write"  # adds the tools that change things or return a credential
    log_level: str = "INFO"
    # The audit journal (audit.py): opened at start by server.open_journal, which says when it cannot be.
    audit_log: Path | None = None
    audit_reads: bool = False  # journal reads too, not only changes and credentials

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, flags: Mapping[str, str] | None = None) -> Settings:
        """Every MCP_CLOUDOPS_* value, checked: ConfigError lists each bad one on its own line. `flags` maps a
        variable to the command-line flag that set it, so that the message names what the user typed."""
        source = dict(os.environ if env is None else env)
        r = Reader(source, flags or {})
        d = cls  # the defaults, declared once above
        settings = cls(
            env=source,
            connect_timeout=r.read("MCP_CLOUDOPS_CONNECT_TIMEOUT", d.connect_timeout, SECONDS),
            read_timeout=r.read("MCP_CLOUDOPS_READ_TIMEOUT", d.read_timeout, SECONDS),
            max_wait=r.read("MCP_CLOUDOPS_MAX_WAIT", d.max_wait, SECONDS),
            read_only=r.read("MCP_CLOUDOPS_READ_ONLY", False, as_boolean),
            toolsets=names(r.raw("MCP_CLOUDOPS_TOOLSETS")),
            tools=names(r.raw("MCP_CLOUDOPS_TOOLS")),
            exclude_tools=names(r.raw("MCP_CLOUDOPS_EXCLUDE_TOOLS")) or frozenset(),
            # allow | refuse, checked by policy.check_names with the toolset and tool names
            confirm_fallback=(r.raw("MCP_CLOUDOPS_CONFIRM_FALLBACK") or d.confirm_fallback).lower(),
            show_operation_secrets=r.read("MCP_CLOUDOPS_SHOW_OPERATION_SECRETS", False, as_boolean),
            dynamic_toolsets=r.read("MCP_CLOUDOPS_DYNAMIC_TOOLSETS", False, as_boolean),
            sandbox=r.read("MCP_CLOUDOPS_SANDBOX", False, as_boolean),
            retries=r.read("MCP_CLOUDOPS_RETRIES", d.retries, COUNT),
            retry_after_cap=r.read("MCP_CLOUDOPS_RETRY_AFTER_CAP", d.retry_after_cap, WAIT_CAP),
            max_response_bytes=r.read("MCP_CLOUDOPS_MAX_RESPONSE_BYTES", d.max_response_bytes, POSITIVE),
            output_cap=r.read("MCP_CLOUDOPS_OUTPUT_CAP", d.output_cap, OUTPUT_CAP),
            http_token=r.read("MCP_CLOUDOPS_HTTP_TOKEN", None, tokens, secret=True),
            stateless=r.read("MCP_CLOUDOPS_STATELESS", False, as_boolean),
            state_keys=r.read("MCP_CLOUDOPS_STATE_KEYS", None, state_keys, secret=True),
            http_header_timeout=r.read("MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT", d.http_header_timeout, SECONDS),
            http_body_timeout=r.read("MCP_CLOUDOPS_HTTP_BODY_TIMEOUT", d.http_body_timeout, SECONDS),
            http_idle_timeout=r.read("MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT", d.http_idle_timeout, SECONDS),
            http_max_connections=r.read("MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS", d.http_max_connections, POSITIVE),
            metrics_port=r.read("MCP_CLOUDOPS_METRICS_PORT", None, as_port),
            metrics_host=r.raw("MCP_CLOUDOPS_METRICS_HOST"),
            oauth_issuer=r.read(ISSUER_ENV, None, ISSUER_URL, secret=r.has_userinfo(ISSUER_ENV)),
            public_url=r.read(PUBLIC_URL_ENV, None, PUBLIC_URL, secret=r.has_userinfo(PUBLIC_URL_ENV)),
            oauth_read_scope=r.read("MCP_CLOUDOPS_OAUTH_READ_SCOPE", d.oauth_read_scope, as_scope),
            oauth_write_scope=r.read("MCP_CLOUDOPS_OAUTH_WRITE_SCOPE", d.oauth_write_scope, as_scope),
            log_level=r.read("MCP_CLOUDOPS_LOG_LEVEL", d.log_level, as_choice(*LOG_LEVELS, kind="a log level")).upper(),
            audit_log=r.read("MCP_CLOUDOPS_AUDIT_LOG", None, as_path),
            audit_reads=r.read("MCP_CLOUDOPS_AUDIT_READS", False, as_boolean),
        )  # fmt: skip
        r.read("MCP_CLOUDOPS_REGISTRY", None, as_registry)
        r.problems += oauth_conflicts(r, settings)
        for name in sorted(source):
            if PROVIDER_TIMEOUT.fullmatch(name):
                r.read(name, None, SECONDS)
        if r.problems:
            raise ConfigError("\n".join(r.problems))
        return settings

    @property
    def oauth(self) -> bool:
        """Whether HTTP clients sign in with OAuth access tokens (an issuer and a public URL, both checked)."""
        return self.oauth_issuer is not None and self.public_url is not None

    def timeouts(self, provider: Provider) -> tuple[float, float]:
        """(connect, read) seconds for one provider: MCP_CLOUDOPS_<PROVIDER>_READ_TIMEOUT overrides."""
        key = provider.key.upper()
        connect = self.value(f"MCP_CLOUDOPS_{key}_CONNECT_TIMEOUT")
        read = self.value(f"MCP_CLOUDOPS_{key}_READ_TIMEOUT")
        return (
            read_one(f"MCP_CLOUDOPS_{key}_CONNECT_TIMEOUT", connect, SECONDS) if connect else self.connect_timeout,
            read_one(f"MCP_CLOUDOPS_{key}_READ_TIMEOUT", read, SECONDS) if read else self.read_timeout,
        )

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

    # --- Incus ------------------------------------------------------------------------------------------------

    def incus(self, provider: Provider) -> IncusEndpoint:
        """Incus is reached over $INCUS_URL (https, client cert) or a unix socket, like the incus CLI."""
        url = self.value(provider.url_env)
        if url and url.startswith("https://"):
            return self.incus_https(url)
        return IncusEndpoint(socket=self.incus_socket(provider))

    def incus_https(self, url: str) -> IncusEndpoint:
        """A remote Incus at `url`: our client certificate, the pinned server certificate, an OIDC token."""
        cert, key = self.incus_client_files()
        server = self.value(INCUS_ENV["server_cert"])
        token = self.value(INCUS_ENV["token"])
        return IncusEndpoint(
            url=url.rstrip("/"),
            cert=cert,
            key=key,
            server_cert=Path(server).expanduser() if server else None,
            token=SecretStr(token) if token else None,
        )

    def incus_token(self, provider: Provider) -> SecretStr | None:
        """The OIDC bearer token for a remote Incus; none over the socket, whose permissions are the credential."""
        url, token = self.value(provider.url_env), self.value(INCUS_ENV["token"])
        return SecretStr(token) if token and url and url.startswith("https://") else None

    def incus_conf(self) -> Path:
        """Where the incus CLI keeps its client certificate: $INCUS_CONF, else ~/.config/incus."""
        return Path(self.value(INCUS_ENV["conf"]) or Path.home() / ".config" / "incus").expanduser()

    def incus_client_files(self) -> tuple[Path | None, Path | None]:
        """The client certificate and key for a remote Incus: INCUS_CLIENT_CERT / INCUS_CLIENT_KEY, else the
        incus CLI's own. With INCUS_TOKEN (OIDC) and no certificate anywhere, none: the token signs in."""
        cert, key = self.value(INCUS_ENV["cert"]), self.value(INCUS_ENV["key"])
        conf = self.incus_conf()
        paths = (
            Path(cert).expanduser() if cert else conf / "client.crt",
            Path(key).expanduser() if key else conf / "client.key",
        )
        if self.value(INCUS_ENV["token"]) and not cert and not key and not any(os.path.isfile(p) for p in paths):
            return None, None
        return paths

    def incus_socket(self, provider: Provider) -> str:
        """INCUS_SOCKET (or INCUS_URL=unix://PATH), else the first socket tools.yaml declares that exists; else
        ConfigError naming both variables and the paths tried."""
        url = self.value(provider.url_env)
        if url and not url.startswith("unix://"):
            raise ConfigError(incus_url_problem(provider.url_env, url) or f"{provider.url_env}={url!r} is not usable")
        if url:
            return url.removeprefix("unix://")
        socket = self.value(INCUS_ENV["socket"])
        if socket:
            return socket
        found = next((path for path in provider.sockets if exists(path)), None)
        if found is None:
            raise ConfigError(no_incus(provider))
        return found

    # --- what `check` reports and `serve` refuses -------------------------------------------------------------

    def configured(self, provider: Provider) -> bool:
        """Whether the user meant to use `provider`: something of it is set (or, for Incus, a socket exists).
        One that is not is no error: its tools answer with what to set."""
        if provider.auth.scheme == "incus":
            found = any(exists(path) for path in provider.sockets)
            return found or any(self.value(name) for name in (provider.url_env, INCUS_ENV["socket"]))
        return any(self.value(name) for name in (provider.url_env, *provider.auth.env_names))

    def credential_status(self, provider: Provider) -> dict[str, bool]:
        """Which variables are set (never their values), or for Incus which socket or files exist: what
        `check` shows beside each provider."""
        if provider.auth.scheme != "incus":
            status = {name: self.value(name) is not None for name in provider.auth.env_names}
            return (
                {provider.url_env: self.value(provider.url_env) is not None, **status}
                if not provider.base_url
                else status
            )
        url = self.value(provider.url_env)
        if url and not url.startswith("unix://"):
            endpoint = self.incus_https(url)
            files = {INCUS_ENV["cert"]: endpoint.cert, INCUS_ENV["key"]: endpoint.key}
            status = {name: path is not None and os.path.isfile(path) for name, path in files.items() if path}
            return status | {INCUS_ENV["token"]: True} if endpoint.token else status
        given = url.removeprefix("unix://") if url else self.value(INCUS_ENV["socket"])
        return {f"socket {path}": exists(path) for path in ([given] if given else provider.sockets)}


def incus_url_problem(name: str, url: str) -> str | None:
    """Why INCUS_URL cannot be used, or None: https:// (a remote Incus) or unix:// (a socket) only."""
    if url.startswith("unix://"):
        return None
    if not url.startswith("https://"):
        return (
            f"{setting(name, url)} is not an Incus address: use https://HOST:8443 (with a client certificate) "
            "or unix:///PATH/TO/unix.socket"
        )
    return url_problem(name, url, ("https",))


def provider_variables(registry: Registry) -> frozenset[str]:
    """Every variable that says where a provider is or how to sign in to it."""
    names = set(INCUS_ENV.values())
    for provider in registry.providers.values():
        names |= {provider.url_env, *provider.auth.env_names, *([provider.zone_env] if provider.zone_env else [])}
    return frozenset(names)


def sandboxed(env: Mapping[str, str], registry: Registry, simulators: Mapping[str, str]) -> dict[str, str]:
    """`env` pointed at the simulators only: every provider's own settings dropped first, so that a real
    endpoint or key set beside the sandbox switch is never reached (INCUS_URL would beat the socket)."""
    real = provider_variables(registry)
    return {**{k: v for k, v in env.items() if k not in real}, **simulators}


def unknown_settings(env: Mapping[str, str], registry: Registry) -> list[str]:
    """MCP_CLOUDOPS_* variables that are no setting, one line each: MCP_CLOUDOPS_READ_ONLY misspelt (say,
    READONLY) must not leave a server that can write while its user believes it read-only."""
    known = set(KNOWN_SETTINGS) | {
        f"{PREFIX}{key.upper()}_{kind}_TIMEOUT" for key in registry.providers for kind in ("CONNECT", "READ")
    }
    problems = []
    for name in sorted(env):
        if not name.upper().startswith(PREFIX) or name in known:
            continue
        if timeout := PROVIDER_TIMEOUT.fullmatch(name):
            keys = ", ".join(key.upper() for key in registry.providers)
            hint = f"no provider is called {timeout.group(1).lower()} (per-provider timeouts name one of {keys}). "
        else:
            close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.8)
            hint = f"did you mean {close[0]}? " if close else ""
        problems.append(f"{name} is not an mcp-cloudops setting: {hint}Unset it (see README, Configuration)")
    return problems


def no_incus(provider: Provider) -> str:
    """The error when no Incus is configured and none listens where tools.yaml says to look."""
    tried = f"no unix socket at {' or '.join(provider.sockets)}" if provider.sockets else "no socket to try"
    return (
        f"{provider.title} is not reachable: {tried} (is it installed and running?). Set "
        f"{INCUS_ENV['socket']} to its unix socket (LXD: /var/lib/lxd/unix.socket), or {provider.url_env}="
        f"https://HOST:8443 with {INCUS_ENV['cert']} and {INCUS_ENV['key']}, in the MCP server's environment"
    )


KNOWN_SETTINGS = (
    *(f"{PREFIX}{name}" for name in (
        "CONNECT_TIMEOUT", "READ_TIMEOUT", "MAX_WAIT", "READ_ONLY", "TOOLSETS", "TOOLS", "EXCLUDE_TOOLS",
        "CONFIRM_FALLBACK", "SHOW_OPERATION_SECRETS", "RETRIES", "RETRY_AFTER_CAP", "MAX_RESPONSE_BYTES",
        "OUTPUT_CAP", "HTTP_TOKEN", "STATELESS", "HTTP_HEADER_TIMEOUT", "HTTP_BODY_TIMEOUT",
        "HTTP_IDLE_TIMEOUT", "HTTP_MAX_CONNECTIONS", "LOG_LEVEL", "AUDIT_LOG", "AUDIT_READS", "DYNAMIC_TOOLSETS",
        "SANDBOX", "METRICS_PORT", "METRICS_HOST", "STATE_KEYS",
        "OAUTH_ISSUER", "PUBLIC_URL", "OAUTH_READ_SCOPE", "OAUTH_WRITE_SCOPE",
    )),
    *OTHER_SETTINGS,
)  # fmt: skip
