"""The accounts people already keep for the scw, incus and exo CLIs, read by those CLIs' own rules (where the
file is, which entry inherits or shadows which, what each field means), so that `--cli-accounts` offers them
without anyone copying a secret into a second file.

Pure: it reads files and the given environment, runs nothing (an Exoscale `secretCommand` is never run) and
connects nowhere. Every problem is a Skipped, one line naming the file and what to do, never an exception;
no secret is ever quoted in a source, a reason or a description. Where a CLI would refuse a whole file (bad
YAML or TOML, a field of the wrong type), the file is one Skipped named "*"."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # an account name here, as tools and `--account` spell it
WHOLE_FILE = "*"  # the name of a Skipped that stands for a whole file
PLATFORM = sys.platform  # read at each call: where the CLIs keep their files differs on macOS


@dataclass(frozen=True)
class Found:
    """One account a CLI would use, as the variables docs/configuration.md, "Providers" names for its provider."""

    provider: str  # "scaleway" | "incus" | "exoscale": the provider keys of tools.yaml
    name: str  # the profile, remote or account name, as the CLI spells it
    variables: Mapping[str, str] = dataclasses.field(
        repr=False
    )  # only those the entry sets (or inherits); secrets: no repr
    source: str  # where it came from, for `mcp-cloudops check`; never a secret
    description: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An entry (or, named "*", a whole file) that cannot be used, with why and what to do."""

    provider: str
    name: str
    source: str
    reason: str  # one line, never a secret


Read = tuple[list[Found], list[Skipped]]  # what each reader returns: the accounts found, and those skipped


class Malformed(ValueError):
    """A file the CLI itself would refuse: why, on one line, never quoting a value from it."""


def read_cli_accounts(env: Mapping[str, str], home: Path | None = None) -> Read:
    """All three CLIs' accounts; a config file that does not exist is no error (nothing found)."""
    found: list[Found] = []
    skipped: list[Skipped] = []
    for provider, read in (("scaleway", scaleway_profiles), ("incus", incus_remotes), ("exoscale", exoscale_accounts)):
        try:
            more, less = read(env, home)
        except Exception as exc:  # a file nobody foresaw must not stop the server: say so, quote nothing
            reason = f"its CLI's files could not be read ({type(exc).__name__})"
            more, less = [], [Skipped(provider, WHOLE_FILE, f"the {provider} CLI's files", reason)]
        found += more
        skipped += less
    return found, skipped


# --- Scaleway: scaleway-sdk-go scw/config.go, scw/path.go ----------------------------------------------------

SCW_TEXT = (
    "access_key",
    "secret_key",
    "api_url",
    "s3_endpoint",
    "default_organization_id",
    "default_project_id",
    "default_region",
    "default_zone",
    "user_agent",
)
SCW_FLAGS = ("s3_use_path_style", "insecure", "send_telemetry")
SCW_VARIABLES = {  # the secret key is sent as X-Auth-Token; the access key only names it, unused here
    "secret_key": "SCW_SECRET_KEY",
    "default_zone": "SCW_DEFAULT_ZONE",
    "default_project_id": "SCW_DEFAULT_PROJECT_ID",
    "api_url": "SCW_API_URL",
}
SCW_DEFAULT = "default"  # the SDK's name for the top level of the file


def scaleway_config(env: Mapping[str, str], home: Path) -> Path:
    """$SCW_CONFIG_PATH, else $XDG_CONFIG_HOME/scw/config.yaml, else ~/.config/scw/config.yaml; without
    SCW_CONFIG_PATH, a missing config.yaml falls back to config.yml beside it (scw LoadConfig)."""
    if env.get("SCW_CONFIG_PATH"):
        return expand_home(env["SCW_CONFIG_PATH"], home)
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    path = base / "scw" / "config.yaml"
    other = path.with_suffix(".yml")
    return other if not path.exists() and other.exists() else path


def scaleway_profiles(env: Mapping[str, str], home: Path | None = None) -> Read:
    """The top level of config.yaml is profile `default`; each of `profiles` is merged over it field by field
    (scw MergeProfiles), so a named profile inherits what it leaves unset. A name defined twice: the last wins
    (yaml.v2, not strict). The active one (SCW_PROFILE, else active_profile) is said in its description."""
    home = home or Path.home()
    path = scaleway_config(env, home)
    where = f"scw config {path}"
    try:
        data, node = read_yaml(path)
        if data is None:
            return [], []
        top, profiles, active = scaleway_file(data, node)
    except Malformed as exc:
        return [], [Skipped("scaleway", WHOLE_FILE, where, f"scw cannot load it: {exc}")]
    active = env.get("SCW_PROFILE") or active or SCW_DEFAULT
    found: list[Found] = []
    skipped: list[Skipped] = []

    def add(name: str, fields: Mapping[str, Any], inherited: list[str]) -> None:
        source = f"{where} (profile {name})"
        notes = ["active profile"] if name == active else []
        notes += [f"inherits {', '.join(inherited)} from the top level"] if inherited else []
        notes += ["insecure: true is not followed (TLS is always verified)"] if fields.get("insecure") is True else []
        if problem := name_problem(name, "profile"):
            skipped.append(Skipped("scaleway", name, source, problem))
        elif not fields.get("secret_key"):
            reason = f"no secret_key{'' if name == SCW_DEFAULT else ' (nor at the top level)'}"
            flag = "" if name == SCW_DEFAULT else f" -p {name}"
            skipped.append(Skipped("scaleway", name, source, f"{reason}: add one, e.g. with `scw init{flag}`"))
        else:
            variables = {variable: fields[field] for field, variable in SCW_VARIABLES.items() if fields.get(field)}
            found.append(Found("scaleway", name, frozen(variables), source, "; ".join(notes) or None))

    if top.get("access_key") or top.get("secret_key") or not profiles:
        add(SCW_DEFAULT, top, [])
    for name, lines in duplicate_keys(child(node, "profiles")).items():
        for line in lines[:-1]:
            skipped.append(
                Skipped(
                    "scaleway",
                    name,
                    f"{where} (profile {name}, line {line})",
                    f"profile {name!r} is defined again at line {lines[-1]}: scw uses the last one; remove or "
                    "rename this one",
                )
            )
    for name, profile in profiles.items():
        source = f"{where} (profile {name})"
        if name == SCW_DEFAULT:
            reason = "profiles.default is never used: scw's profile 'default' is the top level of the file; move its "
            skipped.append(Skipped("scaleway", name, source, reason + "settings there, or rename it"))
        elif profile is None:
            reason = "the profile is empty, which scw fails on: give it settings, or remove it"
            skipped.append(Skipped("scaleway", name, source, reason))
        else:
            used = [field for field in SCW_VARIABLES if profile.get(field) is None and top.get(field)]
            add(name, top | {key: value for key, value in profile.items() if value is not None}, used)
    return found, skipped


def scaleway_file(data: Any, node: yaml.Node | None) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """The top-level profile, the named ones (None for an empty one) and active_profile, with the types the
    SDK's Config struct has: anything else makes yaml.v2 refuse the whole file."""
    if not isinstance(data, dict):
        raise Malformed("the file is not a mapping of settings")
    top = scaleway_fields(data, node, ())
    raw = {} if data.get("profiles") is None else data["profiles"]
    if not isinstance(raw, dict):
        raise Malformed(f"{at(node, 'profiles')}profiles is not a mapping of profile names")
    profiles: dict[str, dict[str, Any] | None] = {}
    for key, value in raw.items():
        name = as_text(key, f"{at(node, 'profiles')}a profile name") or ""
        if value is not None and not isinstance(value, dict):
            raise Malformed(f"{at(node, 'profiles', name)}profiles.{name} is not a mapping of settings")
        profiles[name] = None if value is None else scaleway_fields(value, node, ("profiles", name))
    active = as_text(data.get("active_profile"), f"{at(node, 'active_profile')}active_profile")
    return top, profiles, active


def scaleway_fields(data: dict[Any, Any], node: yaml.Node | None, path: tuple[str, ...]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field in SCW_TEXT:
        fields[field] = as_text(data.get(field), f"{at(node, *path, field)}{'.'.join((*path, field))}")
    for field in SCW_FLAGS:
        value = data.get(field)
        if value is not None and not isinstance(value, bool):
            raise Malformed(f"{at(node, *path, field)}{'.'.join((*path, field))} is not true or false")
        fields[field] = value
    return fields


# --- Incus: lxc/incus shared/cliconfig (file.go, config.go, remote.go, cert.go, default.go) ------------------

INCUS_TEXT = ("addr", "auth_type", "project", "protocol", "last_working_address")
INCUS_LOCAL = "local"  # the static remote: always the local unix socket, whatever the file says but its project


@dataclass(frozen=True)
class _Remote:
    name: str
    addrs: tuple[str, ...]
    last_working: str | None
    auth_type: str
    project: str | None
    protocol: str
    public: bool
    source: str
    servercerts: Path  # where its pinned server certificate would be: the global directory for a global remote
    static: bool = False
    global_: bool = False


def incus_dir(env: Mapping[str, str], home: Path) -> Path:
    """$INCUS_CONF, else the platform's user configuration directory + incus (~/.config/incus on Linux,
    ~/Library/Application Support/incus on macOS), else the legacy ~/.config/incus that the CLI moves there on
    its next run. Environment variables in it are expanded, as incus does (os.ExpandEnv)."""
    if env.get("INCUS_CONF"):
        return expand_home(expand_env(env["INCUS_CONF"], env), home)
    target = user_config_dir(env, home) / "incus"
    legacy = home / ".config" / "incus"
    return legacy if not target.exists() and legacy.exists() else target


def incus_socket(env: Mapping[str, str]) -> str:
    """The socket of a bare `unix://` address: $INCUS_SOCKET, else $INCUS_DIR/unix.socket, else
    /run/incus/unix.socket if it exists, else /var/lib/incus/unix.socket (client ConnectIncusUnix)."""
    if env.get("INCUS_SOCKET"):
        return env["INCUS_SOCKET"]
    if env.get("INCUS_DIR"):
        return str(Path(env["INCUS_DIR"]) / "unix.socket")
    return "/run/incus/unix.socket" if os.path.lexists("/run/incus/unix.socket") else "/var/lib/incus/unix.socket"


def incus_remotes(env: Mapping[str, str], home: Path | None = None) -> Read:
    """The remotes of config.yml, then those of the global $INCUS_GLOBAL_CONF (/etc/incus) config.yml that it
    does not name, and the static `local` (the unix socket; on Linux only), which incus has even without a
    config.yml. Image servers (simplestreams, oci, public) and OIDC remotes are skipped: this server manages
    instances and signs in with a TLS client certificate."""
    home = home or Path.home()
    conf = incus_dir(env, home)
    path = conf / "config.yml"
    global_dir = Path(env.get("INCUS_GLOBAL_CONF") or "/etc/incus")
    where = f"incus config {path}"
    try:
        data, node = read_yaml(path)
        remotes = incus_file(data, node, where, conf / "servercerts")
        default = as_text(data.get("default-remote"), "default-remote") if data is not None else None
    except Malformed as exc:
        return [], [Skipped("incus", WHOLE_FILE, where, f"incus cannot load it: {exc}")]
    if data is not None:  # incus reads the global file only when the user's exists
        global_path = global_dir / "config.yml"
        global_where = f"incus global config {global_path}"
        try:
            global_data, global_node = read_yaml(global_path)
            shared = incus_file(global_data, global_node, global_where, global_dir / "servercerts")
        except Malformed as exc:
            reason = f"incus cannot load it, nor therefore any remote: {exc}"
            return [], [Skipped("incus", WHOLE_FILE, global_where, reason)]
        for name, remote in shared.items():
            if name not in remotes:
                remotes[name] = replace(remote, global_=True)
    given = remotes.get(INCUS_LOCAL)  # incus keeps only its project: the rest is always the local socket
    built_in = (
        f"{where} (built-in remote {INCUS_LOCAL})" if data is not None else f"incus built-in remote {INCUS_LOCAL}"
    )
    local = _Remote(
        name=INCUS_LOCAL,
        addrs=("unix://",),
        last_working=None,
        auth_type="",
        project=given.project if given else None,
        protocol="incus",
        public=False,
        source=given.source if given else built_in,
        servercerts=conf / "servercerts",
        static=True,
    )
    remotes = {INCUS_LOCAL: local} | remotes if given is None else remotes | {INCUS_LOCAL: local}
    default = env.get("INCUS_REMOTE") or default or INCUS_LOCAL
    found: list[Found] = []
    skipped: list[Skipped] = []
    for remote in remotes.values():
        if remote.static and PLATFORM != "linux":
            continue  # incus: "local" is only on Linux
        result = incus_remote(remote, env, conf, configured=data is not None)
        if isinstance(result, Found):
            notes = [note for note in (result.description,) if note]
            notes += ["default remote"] if remote.name == default else []
            notes += [f"global remote, from {global_dir}"] if remote.global_ else []
            found.append(Found(result.provider, result.name, result.variables, result.source, "; ".join(notes) or None))
        elif result is not None:
            skipped.append(result)
    return found, skipped


def incus_file(data: Any, node: yaml.Node | None, where: str, servercerts: Path) -> dict[str, _Remote]:
    """The remotes of one config.yml, with the types and rules incus decodes them by: a repeated key anywhere,
    a field of the wrong type or a remote without an address makes incus refuse the whole file."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Malformed("the file is not a mapping of settings")
    for key, lines in all_duplicate_keys(node):
        raise Malformed(f"line {lines[-1]}: key {key!r} is already defined at line {lines[0]}")
    raw = {} if data.get("remotes") is None else data["remotes"]
    if not isinstance(raw, dict):
        raise Malformed(f"{at(node, 'remotes')}remotes is not a mapping of remote names")
    remotes: dict[str, _Remote] = {}
    for key, value in raw.items():
        name = as_text(key, f"{at(node, 'remotes')}a remote name") or ""
        here = at(node, "remotes", name)
        if value is not None and not isinstance(value, dict):
            raise Malformed(f"{here}remotes.{name} is not a mapping of settings")
        value = value or {}
        text = {
            field: as_text(value.get(field), f"{at(node, 'remotes', name, field)}remotes.{name}.{field}")
            for field in INCUS_TEXT
        }
        public = False if value.get("public") is None else value["public"]
        if not isinstance(public, bool):
            raise Malformed(f"{at(node, 'remotes', name, 'public')}remotes.{name}.public is not true or false")
        addrs = tuple(part.strip() for part in (text["addr"] or "").split(",") if part.strip())
        if not addrs:
            raise Malformed(f"{here}remote {name!r} has no addr (incus: remotes must have at least one address)")
        auth = text["auth_type"] or ("" if public else "tls")  # incus LoadConfig: private remotes default to tls
        remote = _Remote(
            name=name,
            addrs=addrs,
            last_working=text["last_working_address"],
            auth_type=auth,
            project=text["project"],
            protocol=text["protocol"] or "incus",
            public=public,
            source=f"{where} (remote {name})",
            servercerts=servercerts,
        )
        remotes[name] = remote
    return remotes


def incus_remote(remote: _Remote, env: Mapping[str, str], conf: Path, *, configured: bool) -> Found | Skipped | None:
    """One remote as INCUS_URL and its certificates, or why not. None: nothing to say (the built-in `local`
    without a socket, on a machine whose incus CLI has no config.yml either)."""
    name, source = remote.name, remote.source

    def skip(reason: str) -> Skipped:
        return Skipped("incus", name, source, reason)

    if problem := name_problem(name, "remote"):
        return skip(problem)
    if remote.protocol != "incus":
        return skip(f"an image server (protocol {remote.protocol}), not an Incus server to manage")
    if remote.public:
        return skip("a public image server (public: true), not an Incus server to manage")
    if remote.auth_type == "oidc":
        return skip(
            "signs in with OIDC (auth_type: oidc), which this server cannot do: add the server again as a "
            "remote with a TLS client certificate (`incus remote add NAME URL --auth-type=tls`)"
        )
    if remote.auth_type not in ("tls", ""):
        return skip(f"auth_type {remote.auth_type!r} is neither tls nor oidc: fix it in the file")
    addr = remote.last_working if remote.last_working in remote.addrs else remote.addrs[0]
    notes = [f"address {remote.addrs.index(addr) + 1} of {len(remote.addrs)}"] if len(remote.addrs) > 1 else []
    project = {"INCUS_PROJECT": remote.project} if remote.project else {}
    if addr.startswith("unix:"):
        socket = addr.removeprefix("unix:").removeprefix("//") or incus_socket(env)
        if remote.static and not Path(socket).exists():
            return skip(f"no Incus socket at {socket}: is the daemon running here?") if configured else None
        variables = {"INCUS_URL": f"unix://{socket}", **project}
        return Found("incus", name, frozen(variables), source, "; ".join(notes) or None)
    try:
        parts = urlsplit(addr)
        https = parts.scheme.lower() == "https" and bool(parts.hostname)
    except ValueError:
        https = False
    if not https:
        return skip("its address is neither https:// nor unix://: fix it with `incus remote set-url`")
    if parts.username is not None or parts.password is not None:
        return skip("its address carries a user name or password, which this server does not send: remove it")
    own = (conf / "clientcerts" / f"{name}.crt", conf / "clientcerts" / f"{name}.key")
    cert, key = own if all(file.exists() for file in own) else (conf / "client.crt", conf / "client.key")
    if not (cert.exists() and key.exists()):
        return skip(f"no client certificate ({cert} and {key}): incus makes them at the first `incus remote add`")
    if encrypted(key):
        return skip(
            f"the client key {key} is encrypted or in OpenSSH format, and this server cannot ask for a password: "
            "make a plain PEM copy (`openssl pkey -in KEY -out COPY`) and set INCUS_CLIENT_KEY to it"
        )
    server = remote.servercerts / f"{name}.crt"
    pinned = {"INCUS_SERVER_CERT": str(server)} if server.is_file() else {}
    variables = {"INCUS_URL": addr, "INCUS_CLIENT_CERT": str(cert), "INCUS_CLIENT_KEY": str(key), **pinned, **project}
    return Found("incus", name, frozen(variables), source, "; ".join(notes) or None)


def encrypted(key: Path) -> bool:
    """Whether the key is one incus asks a password for (legacy PEM encryption, any OpenSSH key) or an
    encrypted PKCS#8 one: this server, which asks nobody, could not load it."""
    try:
        head = key.read_bytes()[:4096]
    except OSError:
        return False  # unreadable: the server's own start-up check says so, naming the file
    return b"ENCRYPTED" in head or b"OPENSSH PRIVATE KEY" in head


# --- Exoscale: exoscale/cli cmd/root.go, cmd/config_resolution.go, pkg/account/account.go ---------------------

EXO_PRODUCTION = re.compile(r"https://api(-[a-z0-9-]+)?\.exoscale\.com(/[a-z0-9]*)?/?")  # e.g. old exo's .../v1


def exoscale_file(env: Mapping[str, str], home: Path) -> tuple[Path | None, bool]:
    """$EXOSCALE_CONFIG (a file that must exist), else the first exoscale.toml in the platform's user config
    directory + exoscale (~/.config/exoscale; ~/.exoscale under snap), ~/.exoscale, ~ (exo also looks in its
    working directory, which for a server is no place for credentials: not here). The bool: named explicitly."""
    if env.get("EXOSCALE_CONFIG"):
        return expand_home(env["EXOSCALE_CONFIG"], home), True
    first = home / ".exoscale" if "SNAP_USER_COMMON" in env else user_config_dir(env, home) / "exoscale"
    for folder in (first, home / ".exoscale", home):
        if (folder / "exoscale.toml").is_file():
            return folder / "exoscale.toml", False
    return None, False


def exoscale_accounts(env: Mapping[str, str], home: Path | None = None) -> Read:
    """The [[accounts]] of exoscale.toml, keys in any case (viper). Two with one name: exo takes the first.
    An account whose secret comes from `secretCommand` is skipped: that command is never run here."""
    home = home or Path.home()
    path, explicit = exoscale_file(env, home)
    if path is None:
        return [], []
    where = f"exo config {path}"
    try:
        text = read_text(path)
        if text is None:
            if not explicit:
                return [], []
            raise Malformed("EXOSCALE_CONFIG names it but it does not exist: fix the path, or unset EXOSCALE_CONFIG")
        top, accounts = exoscale_parse(text)
    except Malformed as exc:
        return [], [Skipped("exoscale", WHOLE_FILE, where, f"exo cannot load it: {exc}")]
    default = env.get("EXOSCALE_ACCOUNT") or top.get("defaultaccount")
    found: list[Found] = []
    skipped: list[Skipped] = []
    first: dict[str, int] = {}  # name -> the number of the account exo selects by it
    for number, account in enumerate(accounts, 1):
        name = account["name"] or f"#{number}"
        source = f"{where} (account {name})"
        reason = exoscale_problem(number, account, first)
        first.setdefault(account["name"], number)
        if reason:
            skipped.append(Skipped("exoscale", name, source, reason))
            continue
        variables = {"EXOSCALE_API_KEY": account["key"], "EXOSCALE_API_SECRET": account["secret"]}
        variables |= {"EXOSCALE_ZONE": account["defaultzone"]} if account["defaultzone"] else {}
        note = "default account" if name == default else None
        found.append(Found("exoscale", name, frozen(variables), source, note))
    return found, skipped


def exoscale_problem(number: int, account: Mapping[str, Any], first: Mapping[str, int]) -> str | None:
    """Why exo's account #`number` cannot be used here, or None."""
    name = account["name"]
    if not name:
        return f'account #{number} has no name, so exo can never select it: add name = "..."'
    if name in first:
        return f"account #{first[name]} has the same name and exo uses the first: rename or remove this one"
    if problem := name_problem(name, "account"):
        return problem
    if account["secretcommand"]:
        return (
            "its secret comes from secretCommand, which this server never runs: give this server the secret "
            "another way (EXOSCALE_API_SECRET, or an accounts file)"
        )
    for field in ("key", "secret"):
        if not account[field]:
            return f"no {field}: add it, e.g. with `exo config add`"
    if account["endpoint"] and not EXO_PRODUCTION.fullmatch(account["endpoint"]):
        return "it sends its requests to another endpoint than Exoscale's API: set EXOSCALE_API_URL for it yourself"
    return None


def exoscale_parse(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The top level (keys lowercased) and its accounts, with the types exo's Config has. Viper decodes
    weakly: a single [accounts] table is a list of one, a number is text, a secretCommand string is split at
    commas; anything else makes exo refuse the whole file."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Malformed(f"not valid TOML: {exc}") from None
    top = {str(key).lower(): value for key, value in raw.items()}
    default = as_text(top.get("defaultaccount"), "defaultAccount")
    given = [] if top.get("accounts") is None else top["accounts"]
    given = [given] if isinstance(given, dict) else given
    if not isinstance(given, list):
        raise Malformed("accounts is not a list of [[accounts]] tables")
    accounts = []
    for number, entry in enumerate(given, 1):
        if not isinstance(entry, dict):
            raise Malformed(f"accounts entry #{number} is not a table")
        fields = {str(key).lower(): value for key, value in entry.items()}
        account: dict[str, Any] = {
            field.lower(): as_text(fields.get(field.lower()), f"account #{number}: {field}")
            for field in ("name", "key", "secret", "defaultZone", "endpoint")
        }
        command = fields.get("secretcommand")
        if isinstance(command, str):
            command = [part for part in command.split(",") if part]
        if command is not None and not (isinstance(command, list) and all(isinstance(part, str) for part in command)):
            raise Malformed(f"account #{number}: secretCommand is not a list of words")
        account["secretcommand"] = bool(command)
        accounts.append(account)
    return {"defaultaccount": default}, accounts


# --- shared ----------------------------------------------------------------------------------------------------


def frozen(variables: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(variables)


def name_problem(name: str, what: str) -> str | None:
    """Why `name` cannot name an account here, with one it could be renamed to; None when it can."""
    if NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 40 else name[:40] + "…"
    better = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:32].rstrip("-_") or "account"
    return (
        f"the {what} name {shown!r} cannot name an account here (a-z, 0-9, '-' and '_', at most 32, starting "
        f"with a letter or digit): rename it, e.g. to {better!r}"
    )


def expand_home(raw: str, home: Path) -> Path:
    """`raw` with a leading ~ taken as `home` (a path given in a JSON config reaches us unexpanded)."""
    if raw == "~" or raw.startswith("~/"):
        return home / raw[2:]
    return Path(raw)


def expand_env(raw: str, env: Mapping[str, str]) -> str:
    """$NAME and ${NAME} replaced from `env`, an unset one by nothing (Go's os.ExpandEnv)."""
    return re.sub(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)", lambda m: env.get(m.group(1) or m.group(2), ""), raw)


def user_config_dir(env: Mapping[str, str], home: Path) -> Path:
    """Go's os.UserConfigDir: ~/Library/Application Support on macOS, %AppData% on Windows, else an absolute
    $XDG_CONFIG_HOME, else ~/.config (incus falls back there too when the variable is relative)."""
    if PLATFORM == "darwin":
        return home / "Library" / "Application Support"
    if PLATFORM == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"])
    xdg = env.get("XDG_CONFIG_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else home / ".config"


def read_text(path: Path) -> str | None:
    """The file's text, None when there is none; Malformed when it is there but cannot be read."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise Malformed(f"cannot be read ({(exc.strerror or type(exc).__name__).lower()})") from None
    if not stat.S_ISREG(mode):  # a FIFO would block the read
        raise Malformed("it is a directory" if stat.S_ISDIR(mode) else "it is not a regular file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise Malformed("it is not UTF-8 text") from None
    except OSError as exc:
        raise Malformed(f"cannot be read ({(exc.strerror or type(exc).__name__).lower()})") from None


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (for line numbers and repeated keys); (None, None) without a file."""
    text = read_text(path)
    if text is None:
        return None, None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as exc:
        raise Malformed(f"not valid YAML: {yaml_problem(exc)}") from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        raise Malformed("not valid YAML") from None
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """The parser's problem and line, without the excerpt of the file it prints (a secret may be on that line);
    a quoted piece longer than a character or a token name is masked too."""
    problem = re.sub(r"'(?!<)[^']{5,}'", "'…'", exc.problem or exc.context or "a syntax error")
    mark = exc.problem_mark or exc.context_mark
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def as_text(value: Any, what: str) -> str | None:
    """A scalar as the CLIs decode it into a string field (a number is its text), None for none; Malformed
    naming `what` for a list, a mapping or a boolean."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Malformed(f"{what} is not text")


def child(node: yaml.Node | None, *path: str) -> yaml.Node | None:
    """The node at `path` of mappings (the last of a repeated key, as the value decoded), or None."""
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        values = [value for name, value in node.value if isinstance(name, yaml.ScalarNode) and name.value == key]
        node = values[-1] if values else None
    return node


def at(node: yaml.Node | None, *path: str) -> str:
    """The prefix `line N: ` for the key at `path`, or nothing when it cannot be placed."""
    parent = child(node, *path[:-1])
    if not isinstance(parent, yaml.MappingNode):
        return ""
    lines = [name.start_mark.line + 1 for name, _ in parent.value if getattr(name, "value", None) == path[-1]]
    return f"line {lines[-1]}: " if lines else ""


def duplicate_keys(node: yaml.Node | None) -> dict[str, list[int]]:
    """The keys of one mapping given more than once, with the line of each."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    lines: dict[str, list[int]] = {}
    for name, _ in node.value:
        if isinstance(name, yaml.ScalarNode) and name.value != "<<":
            lines.setdefault(name.value, []).append(name.start_mark.line + 1)
    return {key: found for key, found in lines.items() if len(found) > 1}


def all_duplicate_keys(node: yaml.Node | None, seen: set[int] | None = None) -> Iterator[tuple[str, list[int]]]:
    """Every repeated key in the document, mapping by mapping (an alias is walked once)."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        yield from duplicate_keys(node).items()
        for name, value in node.value:
            yield from all_duplicate_keys(name, seen)
            yield from all_duplicate_keys(value, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from all_duplicate_keys(item, seen)
