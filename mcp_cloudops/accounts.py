"""Accounts: one provider's connection (its URL, credentials, zone, Incus socket or certificates), as the
variables docs/configuration.md, "Providers" lists for it. A provider may have several; the environment's is `default`.

Everything that reaches a provider asks an Account, never the environment: the base URL, the credential,
the default zone, how Incus is reached. An account's values come from the environment (`default`), or from
an accounts file (`--accounts`), where a value is a string, `{env: NAME}` or `{file: PATH}`, read at start.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.setting_values import USERINFO, ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mcp_cloudops.registry import Registry

ENVIRONMENT = "the environment"  # an account's source when the environment describes it
ACCOUNT = "account"  # the argument naming one, on the tools of a provider with several
DEFAULT = "default"  # the environment's account, and the name a provider's default goes by when nothing says
ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
ACCOUNTS_ENV = "MCP_CLOUDOPS_ACCOUNTS"
INCUS_SOCKET_HOST = "http://incus"  # placeholder authority for requests sent over the unix socket
INCUS_ENV = {
    "socket": "INCUS_SOCKET",
    "cert": "INCUS_CLIENT_CERT",
    "key": "INCUS_CLIENT_KEY",
    "server_cert": "INCUS_SERVER_CERT",
    "token": "INCUS_TOKEN",
    "conf": "INCUS_CONF",
}


class Configured(Protocol):
    """What accounts are read from (Settings is one): the environment, an accounts file, and whether
    callers sign in with OAuth (only then can an account name its users)."""

    env: Mapping[str, str]
    accounts_file: Path | None
    cli_accounts: bool

    @property
    def oauth(self) -> bool: ...


@dataclass(frozen=True)
class IncusEndpoint:
    """How to reach Incus: a unix socket path, or an HTTPS URL with a client certificate."""

    socket: str | None = None
    url: str | None = None
    cert: Path | None = None
    key: Path | None = None
    server_cert: Path | None = None
    token: SecretStr | None = None


# --- a provider's variables -----------------------------------------------------------------------------------


def variables_of(provider: Provider) -> tuple[str, ...]:
    """The variables that say where `provider` is and how to sign in to it (docs/configuration.md, "Providers")."""
    names = [provider.url_env, *provider.auth.env_names, *([provider.zone_env] if provider.zone_env else [])]
    if provider.default_project is not None:
        names.append(provider.default_project.env)
    if provider.auth.scheme == "incus":
        names += INCUS_ENV.values()
    return tuple(dict.fromkeys(names))


def secret_variables(provider: Provider) -> tuple[str, ...]:
    """The variables of `provider` whose values are secrets: never shown, always redacted."""
    return (*provider.auth.env_names, *([INCUS_ENV["token"]] if provider.auth.scheme == "incus" else []))


def provider_variables(registry: Registry) -> frozenset[str]:
    """Every variable that says where a provider is or how to sign in to it."""
    return frozenset(name for provider in registry.providers.values() for name in variables_of(provider))


def sandboxed(env: Mapping[str, str], registry: Registry, simulators: Mapping[str, str]) -> dict[str, str]:
    """`env` pointed at the simulators only: every provider's own settings dropped first, so that a real
    endpoint or key set beside the sandbox switch is never reached (INCUS_URL would beat the socket); an
    accounts file is ignored too."""
    real = provider_variables(registry) | {ACCOUNTS_ENV, "MCP_CLOUDOPS_CLI_ACCOUNTS"}
    return {**{k: v for k, v in env.items() if k not in real}, **simulators}


# --- addresses ------------------------------------------------------------------------------------------------


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


def exists(path: str) -> bool:
    """Whether `path` exists; False too when a directory on the way may not be searched (no traceback)."""
    return os.path.exists(path)


# --- one account ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who calls, as far as accounts care: on an OAuth endpoint, the token's subject and groups; anywhere
    else (stdio, a static token) everyone, who may use every account."""

    subject: str | None = None
    groups: frozenset[str] = frozenset()
    everyone: bool = True


@dataclass(frozen=True)
class Account:
    """One provider's connection. `variables` holds its values, secrets included: never printed (repr
    leaves it out), only read through value() and secret()."""

    provider: str  # the provider's key in tools.yaml
    name: str
    variables: Mapping[str, str] = field(repr=False)
    source: str = ENVIRONMENT  # where it came from, for `check` and errors: never a secret
    description: str | None = None
    read_only: bool = False  # its write tools are refused, as under --read-only
    users: frozenset[str] | None = None  # OAuth subjects and `group:` values allowed; None: everyone

    def allows(self, caller: Caller) -> bool:
        """Whether `caller` may use this account: no `users`, or the caller's subject or one of its groups
        (`group:NAME`) is listed."""
        if self.users is None or caller.everyone:
            return True
        return caller.subject in self.users or any(f"group:{group}" in self.users for group in caller.groups)

    @property
    def where(self) -> str:
        """Where a missing or wrong value is set, for an error the agent or the user reads."""
        if self.source == ENVIRONMENT:
            return "the MCP server's environment"
        return f"account {self.name!r} of {self.provider} in {self.source}"

    def value(self, name: str) -> str | None:
        value = self.variables.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> SecretStr:
        """The secret in variable `name`, or ConfigError telling the agent which variable to set, where."""
        value = self.value(name)
        if value is None:
            raise ConfigError(f"{name} is not set: set it in {self.where} and restart the server")
        return SecretStr(value)

    def base_url(self, provider: Provider) -> str:
        url = self.value(provider.url_env) or provider.base_url
        if not url:
            raise ConfigError(f"{provider.title} has no URL: set {provider.url_env} in {self.where}")
        return url.rstrip("/")

    def default_zone(self, provider: Provider) -> str | None:
        return (self.value(provider.zone_env) if provider.zone_env else None) or provider.default_zone

    def project_for(self, tool: ToolSpec, provider: Provider, args: Mapping[str, Any]) -> dict[str, str]:
        """The default project this account fills into a call that names none (tools.yaml default_project)."""
        rule = provider.default_project
        if rule is None or (rule.methods and tool.method not in rule.methods):
            return {}
        if not any(param.name == rule.param for param in tool.params):
            return {}
        if rule.param in args or any(args.get(name) not in (None, False) for name in rule.unless):
            return {}
        project = self.value(rule.env)
        return {rule.param: project} if project else {}

    def secrets(self, provider: Provider) -> list[str]:
        """Every secret value this account holds, for redaction: its keys and tokens, and the lines of its
        Incus client key."""
        values = [value for name in secret_variables(provider) if (value := self.value(name))]
        if provider.auth.scheme == "incus" and (key := self.value(INCUS_ENV["key"])):
            with contextlib.suppress(OSError, ValueError):  # an unreadable key file fails later, on its own
                values += [line for line in Path(key).expanduser().read_text().splitlines() if "-----" not in line]
        return values

    # --- Incus --------------------------------------------------------------------------------------------------

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
            raise ConfigError(no_incus(provider, self.where))
        return found

    # --- what `check` reports and `serve` refuses ---------------------------------------------------------------

    def configured(self, provider: Provider) -> bool:
        """Whether the user meant to use `provider` through this account: something of it is set (or, for
        Incus, a socket exists). One that is not is no error: its tools answer with what to set."""
        if provider.auth.scheme == "incus":
            found = any(exists(path) for path in provider.sockets)
            return found or any(self.value(name) for name in (provider.url_env, INCUS_ENV["socket"]))
        return any(self.value(name) for name in (provider.url_env, *provider.auth.env_names))

    def credential_status(self, provider: Provider) -> dict[str, bool]:
        """Which variables are set (never their values), or for Incus which socket or files exist: what
        `check` shows beside each account."""
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


def no_incus(provider: Provider, where: str = "the MCP server's environment") -> str:
    """The error when no Incus is configured and none listens where tools.yaml says to look."""
    tried = f"no unix socket at {' or '.join(provider.sockets)}" if provider.sockets else "no socket to try"
    return (
        f"{provider.title} is not reachable: {tried} (is it installed and running?). Set "
        f"{INCUS_ENV['socket']} to its unix socket (LXD: /var/lib/lxd/unix.socket), or {provider.url_env}="
        f"https://HOST:8443 with {INCUS_ENV['cert']} and {INCUS_ENV['key']}, in {where}"
    )


def environment_account(provider: Provider, env: Mapping[str, str]) -> Account:
    """The account the environment describes for `provider` (named `default`), set or not."""
    return Account(provider.key, DEFAULT, env)


# --- every account --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accounts:
    """Every provider's accounts, by provider key then name (in the order configured), and each provider's
    default: the one a call that names none uses."""

    by_provider: Mapping[str, Mapping[str, Account]]
    defaults: Mapping[str, str | None]
    skipped: tuple[str, ...] = ()  # CLI accounts that cannot be used, one line each, for `check`

    def of(self, provider: str) -> Mapping[str, Account]:
        return self.by_provider.get(provider, {})

    def default(self, provider: str) -> Account | None:
        name = self.defaults.get(provider)
        return self.of(provider).get(name) if name else None

    def __iter__(self) -> Iterator[Account]:
        return (account for accounts in self.by_provider.values() for account in accounts.values())

    def usable(self, provider: str, caller: Caller = Caller(), *, writing: bool = False) -> dict[str, Account]:
        """The accounts of `provider` that `caller` may use; for a tool that writes, not the read-only ones."""
        return {
            name: account
            for name, account in self.of(provider).items()
            if account.allows(caller) and not (writing and account.read_only)
        }

    def default_for(self, provider: str, usable: Mapping[str, Account]) -> str | None:
        """What a call naming no account uses: the default if the caller may use it, else its only one."""
        default = self.defaults.get(provider)
        if default in usable:
            return default
        return next(iter(usable)) if len(usable) == 1 else None

    def resolve(self, provider: Provider, name: str | None, caller: Caller = Caller()) -> Account:
        """The account a call uses: the one it names, else the default (see default_for). An account the caller
        may not use reads exactly as one that does not exist: AccountRefused, naming those it may use."""
        usable = self.usable(provider.key, caller)
        chosen = name if name is not None else self.default_for(provider.key, usable)
        if chosen is not None and chosen in usable:
            return usable[chosen]
        names = ", ".join(usable) or "none"
        if name is None:
            raise AccountRefused(f"{provider.title} has several accounts: pass account, one of {names}", None)
        raise AccountRefused(f"no account {name!r} for {provider.key}: use one of {names}", name)


class AccountRefused(ConfigError):
    """A call names an account that does not exist or that its caller may not use (the same words for both),
    or names none where it must: nothing is sent."""

    def __init__(self, message: str, name: str | None) -> None:
        super().__init__(message)
        self.name = name


def load_accounts(settings: Configured, registry: Registry) -> Accounts:
    """The environment's account of every provider, those of the accounts file (MCP_CLOUDOPS_ACCOUNTS) and,
    with --cli-accounts, the providers' own CLIs', every value read and checked now: ConfigError lists each
    problem on its own line. The environment's `default` beats a CLI's, a file's account a CLI's of its name."""
    found: dict[str, dict[str, Account]] = {key: {} for key in registry.providers}
    defaults: dict[str, str] = {}
    skipped: list[str] = []
    if settings.cli_accounts:
        for account in cli_accounts(settings, registry, skipped):
            found[account.provider][account.name] = account
    if settings.accounts_file is not None:
        listed, defaults = read_accounts_file(settings.accounts_file, settings, registry)
        for account in listed:
            if (shadowed := found[account.provider].get(account.name)) is not None:
                skipped.append(f"{shadowed.source}: not used, the accounts file has an account {account.name!r}")
            found[account.provider][account.name] = account
    by_provider: dict[str, dict[str, Account]] = {}
    problems = []
    for key, provider in registry.providers.items():
        own = environment_account(provider, settings.env)
        listed = found[key]
        keep_environment = own.configured(provider) or not listed
        theirs = listed.get(DEFAULT)
        if keep_environment and theirs is not None and theirs.source == settings_file(settings):
            problems.append(
                f"{ACCOUNTS_ENV} {settings.accounts_file}: account {DEFAULT!r} of {key} is also what the environment "
                f"sets ({', '.join(n for n in variables_of(provider) if own.value(n))}): rename one, or unset those"
            )
        elif keep_environment and theirs is not None:  # a CLI's `default`: the environment's wins
            skipped.append(f"{listed.pop(DEFAULT).source}: not used, the environment's account is {DEFAULT!r}")
        by_provider[key] = {DEFAULT: own, **listed} if keep_environment and DEFAULT not in listed else listed
    if problems:
        raise ConfigError("\n".join(problems))
    chosen = {key: default_name(key, accounts, defaults) for key, accounts in by_provider.items()}
    return Accounts(by_provider, chosen, tuple(skipped))


def settings_file(settings: Configured) -> str | None:
    return str(settings.accounts_file) if settings.accounts_file is not None else None


def cli_accounts(settings: Configured, registry: Registry, skipped: list[str]) -> list[Account]:
    """The accounts the providers' own CLIs keep (cli_accounts.py); those that cannot be used are listed in
    `skipped`, with why."""
    from mcp_cloudops.cli_accounts import read_cli_accounts

    found, unusable = read_cli_accounts(settings.env)
    skipped += [f"{entry.source}: {entry.name!r} skipped: {entry.reason}" for entry in unusable]
    return [
        Account(entry.provider, entry.name, dict(entry.variables), entry.source, entry.description)
        for entry in found
        if entry.provider in registry.providers
    ]


def default_name(provider: str, accounts: Mapping[str, Account], chosen: Mapping[str, str]) -> str | None:
    """A provider's default account: default_accounts, else the one named `default`, else its only one."""
    if provider in chosen:
        return chosen[provider]
    if DEFAULT in accounts:
        return DEFAULT
    return next(iter(accounts)) if len(accounts) == 1 else None


# --- the accounts file ------------------------------------------------------------------------------------------
# Each model builds its validator when a file is first read (defer_build), not at every start without one.


class _FromEnv(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    env: str = Field(min_length=1)


class _FromFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    file: str = Field(min_length=1)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    description: str | None = None
    variables: dict[str, str | _FromEnv | _FromFile] = Field(default_factory=dict)
    read_only: bool = False
    users: list[str] | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    accounts: dict[str, dict[str, _Entry | None]] = Field(default_factory=dict)
    default_accounts: dict[str, str] = Field(default_factory=dict)


def read_accounts_file(path: Path, settings: Configured, registry: Registry) -> tuple[list[Account], dict[str, str]]:
    """The accounts of an accounts file, each value read (an {env} variable, a {file}'s text), and its
    default_accounts; ConfigError lists every problem, each naming the file, the account and what to fix."""
    import yaml  # only here: a start without an accounts file never loads the YAML parser

    subject = f"{ACCOUNTS_ENV} (--accounts) {str(path)!r}"
    try:
        text = path.expanduser().read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or {}
        parsed = _File.model_validate(raw)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{subject} cannot be read ({reason}): name a readable file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f'{subject} is not YAML{where}: fix it (see docs/configuration.md, "Accounts")') from None
    except ValidationError as exc:
        lines = [
            f"{subject}: {'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()[:10]
        ]
        raise ConfigError(
            "\n".join(lines) + '\n(see docs/configuration.md, "Accounts", for the file\'s shape)'
        ) from None
    problems: list[str] = []
    accounts = []
    exposed = bool(path_mode(path) & (stat.S_IRWXG | stat.S_IRWXO))
    for key, entries in parsed.accounts.items():
        provider = registry.providers.get(key)
        if provider is None:
            known = ", ".join(registry.providers)
            problems.append(f"{subject}: accounts.{key}: no provider {key!r}; providers: {known}")
            continue
        for name, entry in entries.items():
            where = f"{subject}: accounts.{key}.{name}"
            if not ACCOUNT_NAME.fullmatch(name):
                problems.append(f"{where}: an account name is [a-z0-9][a-z0-9_-]{{0,31}}: rename it")
                continue
            account, wrong = read_entry(provider, name, entry or _Entry(), str(path), settings, exposed)
            problems += [f"{where}: {line}" for line in wrong]
            if account is not None:
                accounts.append(account)
    named = {(account.provider, account.name) for account in accounts}
    for key, name in parsed.default_accounts.items():
        if key not in registry.providers:
            problems.append(f"{subject}: default_accounts.{key}: no provider {key!r}")
        elif (key, name) not in named and name != DEFAULT:
            problems.append(f"{subject}: default_accounts.{key}: no account {name!r} of {key} in this file")
    if problems:
        raise ConfigError("\n".join(problems))
    return accounts, dict(parsed.default_accounts)


def path_mode(path: Path) -> int:
    try:
        return path.expanduser().stat().st_mode
    except OSError:
        return 0


def read_entry(
    provider: Provider, name: str, entry: _Entry, source: str, settings: Configured, exposed: bool
) -> tuple[Account | None, list[str]]:
    """One account of the file, its values read; or the problems, one line each."""
    allowed = variables_of(provider)
    secret = set(secret_variables(provider))
    problems, values = [], {}
    for variable, given in entry.variables.items():
        if variable not in allowed:
            problems.append(f"variables.{variable}: not a {provider.key} variable; use {', '.join(allowed)}")
            continue
        value, problem = resolve_value(variable, given, settings)
        if problem:
            problems.append(f"variables.{variable}: {problem}")
        elif value is not None:
            values[variable] = value
        if isinstance(given, str) and variable in secret and exposed:
            problems.append(
                f"variables.{variable} is a secret written in the file, which group or others may read: run "
                f"chmod 600 {source}, or give it as {{env: NAME}} or {{file: PATH}}"
            )
    users = frozenset(entry.users) if entry.users is not None else None
    if users is not None and not settings.oauth:
        problems.append(
            "users: only an OAuth endpoint (--oauth-issuer) knows who calls; remove users, or serve with OAuth"
        )
    if problems:
        return None, problems
    account = Account(provider.key, name, values, source, entry.description, entry.read_only, users)
    return account, []


def resolve_value(variable: str, given: Any, settings: Configured) -> tuple[str | None, str | None]:
    """A value of the file: itself, an environment variable's, or a file's text (stripped); or why not."""
    if isinstance(given, str):
        return given, None
    if isinstance(given, _FromEnv):
        value = settings.env.get(given.env, "").strip()
        return (value, None) if value else (None, f"{{env: {given.env}}}: {given.env} is not set in the environment")
    try:
        return Path(given.file).expanduser().read_text(encoding="utf-8").strip(), None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return None, f"{{file: {given.file}}} cannot be read ({reason}): name a readable file"


def secret_values(accounts: Accounts, registry: Registry) -> list[str]:
    """Every secret any account holds, for the redactor."""
    return [value for account in accounts for value in account.secrets(registry.providers[account.provider])]
