"""Runtime settings: how the server runs (transports, limits, policy, OAuth), read from the environment.
Where each provider lives and how to sign in to it are its accounts' (accounts.py).

Secrets are held as SecretStr so that no repr, log line or traceback can print them. Every value is
checked once, at start: a value that is set but wrong stops the server with one line naming the
variable and what to set, rather than a traceback at start or an error in every call later.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from mcp_cloudops.accounts import Accounts, load_accounts
from mcp_cloudops.registry_models import Provider
from mcp_cloudops.setting_values import (
    COUNT,
    OUTPUT_CAP,
    POSITIVE,
    REMEMBER,
    SECONDS,
    WAIT_CAP,
    ConfigError,
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
# Read elsewhere, before or without Settings: known, so that they are not refused as misspellings.
OTHER_SETTINGS = ("MCP_CLOUDOPS_REGISTRY",)
PROVIDER_TIMEOUT = re.compile(r"MCP_CLOUDOPS_(\w+?)_(CONNECT|READ)_TIMEOUT")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ISSUER_ENV, PUBLIC_URL_ENV = "MCP_CLOUDOPS_OAUTH_ISSUER", "MCP_CLOUDOPS_PUBLIC_URL"
ISSUER_EXAMPLE = "https://sso.example.com/realms/REALM"
PUBLIC_URL_EXAMPLE = "https://mcp.example.com/mcp"


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
    if settings.confirm_remember and settings.stateless:
        problems.append(
            f"{r.named('MCP_CLOUDOPS_CONFIRM_REMEMBER')} keeps a person's yes in this process, and "
            f"{r.named('MCP_CLOUDOPS_STATELESS')} spreads calls over replicas that cannot share it: unset one"
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
    confirm_remember: float = 0.0  # seconds a yes may also cover the same tool on the same target; 0: never
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
    oauth_groups_claim: str = "groups"  # the token claim listing the user's groups (accounts' `group:` users)
    log_level: str = "INFO"
    # The audit journal (audit.py): opened at start by server.open_journal, which says when it cannot be.
    audit_log: Path | None = None
    audit_reads: bool = False  # journal reads too, not only changes and credentials
    # Accounts (accounts.py): the environment's, plus those of this file; read by accounts.with_accounts.
    accounts_file: Path | None = None
    cli_accounts: bool = False  # also the accounts the providers' own CLIs keep (cli_accounts.py)
    accounts: Accounts | None = field(default=None, repr=False)

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
            confirm_remember=r.read("MCP_CLOUDOPS_CONFIRM_REMEMBER", d.confirm_remember, REMEMBER),
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
            oauth_groups_claim=r.read("MCP_CLOUDOPS_OAUTH_GROUPS_CLAIM", d.oauth_groups_claim, as_scope),
            log_level=r.read("MCP_CLOUDOPS_LOG_LEVEL", d.log_level, as_choice(*LOG_LEVELS, kind="a log level")).upper(),
            audit_log=r.read("MCP_CLOUDOPS_AUDIT_LOG", None, as_path),
            audit_reads=r.read("MCP_CLOUDOPS_AUDIT_READS", False, as_boolean),
            accounts_file=r.read("MCP_CLOUDOPS_ACCOUNTS", None, as_path),
            cli_accounts=r.read("MCP_CLOUDOPS_CLI_ACCOUNTS", False, as_boolean),
        )  # fmt: skip
        r.read("MCP_CLOUDOPS_REGISTRY", None, as_registry)
        r.problems += oauth_conflicts(r, settings)
        for name in sorted(source):
            if PROVIDER_TIMEOUT.fullmatch(name):
                r.read(name, None, SECONDS)
        if r.problems:
            raise ConfigError("\n".join(r.problems))
        return settings

    def with_accounts(self, registry: Registry) -> Settings:
        """These settings holding every account, read and checked now (ConfigError lists each problem)."""
        return replace(self, accounts=load_accounts(self, registry))

    def accounts_for(self, registry: Registry) -> Accounts:
        """The accounts these settings hold, or (settings built by hand, in tests) the environment's and the
        accounts file's, read now."""
        return self.accounts if self.accounts is not None else load_accounts(self, registry)

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
        problems.append(
            f'{name} is not an mcp-cloudops setting: {hint}Unset it (see docs/configuration.md, "Checked at start")'
        )
    return problems


KNOWN_SETTINGS = (
    *(f"{PREFIX}{name}" for name in (
        "CONNECT_TIMEOUT", "READ_TIMEOUT", "MAX_WAIT", "READ_ONLY", "TOOLSETS", "TOOLS", "EXCLUDE_TOOLS",
        "CONFIRM_FALLBACK", "CONFIRM_REMEMBER", "SHOW_OPERATION_SECRETS", "RETRIES", "RETRY_AFTER_CAP",
        "MAX_RESPONSE_BYTES", "OUTPUT_CAP", "HTTP_TOKEN", "STATELESS", "HTTP_HEADER_TIMEOUT", "HTTP_BODY_TIMEOUT",
        "HTTP_IDLE_TIMEOUT", "HTTP_MAX_CONNECTIONS", "LOG_LEVEL", "AUDIT_LOG", "AUDIT_READS", "DYNAMIC_TOOLSETS",
        "SANDBOX", "METRICS_PORT", "METRICS_HOST", "STATE_KEYS",
        "OAUTH_ISSUER", "PUBLIC_URL", "OAUTH_READ_SCOPE", "OAUTH_WRITE_SCOPE", "OAUTH_GROUPS_CLAIM", "ACCOUNTS",
        "CLI_ACCOUNTS",
    )),
    *OTHER_SETTINGS,
)  # fmt: skip
