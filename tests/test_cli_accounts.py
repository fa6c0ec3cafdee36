"""The accounts kept for the scw, incus and exo CLIs (cli_accounts.py), read by those CLIs' rules from files
written here in the shapes those CLIs write: what each would use is found, the rest is skipped with why, a
broken file is one "*" line, and no secret ever reaches a source, a reason or a description."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_cloudops import cli_accounts
from mcp_cloudops.cli_accounts import (
    Found,
    Skipped,
    exoscale_accounts,
    incus_remotes,
    read_cli_accounts,
    scaleway_profiles,
)

SCW_TOP_SECRET = "11111111-1111-1111-1111-111111111111"
SCW_PROD_SECRET = "22222222-2222-2222-2222-222222222222"
SCW_BAD_SECRET = "33333333-3333-3333-3333-333333333333"
EXO_PROD_SECRET = "prod-secret-0001-aaaaaaaaaaaaaaaaaaaaaaaa"
EXO_STAGING_SECRET = "staging-secret-0002-bbbbbbbbbbbbbbbbbbbbbb"
EXO_OTHER_SECRET = "other-secret-0003-cccccccccccccccccccccccc"
SECRETS = (SCW_TOP_SECRET, SCW_PROD_SECRET, SCW_BAD_SECRET, EXO_PROD_SECRET, EXO_STAGING_SECRET, EXO_OTHER_SECRET)
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# The shape `scw init` / the SDK's template writes: the top level is profile "default".
SCW_CONFIG = f"""\
# Scaleway configuration file
# https://github.com/scaleway/scaleway-sdk-go/tree/master/scw#scaleway-config
access_key: SCW1AAAAAAAAAAAAAAAA
secret_key: {SCW_TOP_SECRET}
default_organization_id: aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa
default_project_id: bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb
default_region: fr-par
default_zone: fr-par-1
active_profile: prod
send_telemetry: false
profiles:
  prod:
    access_key: SCW2BBBBBBBBBBBBBBBB
    secret_key: {SCW_PROD_SECRET}
    default_region: nl-ams
    default_zone: nl-ams-1
  dev:
    default_project_id: cccccccc-cccc-cccc-cccc-cccccccccccc
    api_url: https://api.dev.example.net
  Bad Name:
    secret_key: {SCW_BAD_SECRET}
"""

# The shape `incus remote add` leaves: images and local are the CLI's defaults, the rest were added.
INCUS_CONFIG = """\
default-remote: prod
remotes:
  images:
    addr: https://images.linuxcontainers.org
    protocol: simplestreams
    public: true
  local:
    addr: unix://
    project: dev
    public: false
  prod:
    addr: https://incus.example.net:8443
    auth_type: tls
    project: web
    protocol: incus
    public: false
  sso:
    addr: https://sso.example.net:8443
    auth_type: oidc
    protocol: incus
    public: false
  snap-lxd:
    addr: unix:///var/snap/lxd/common/lxd/unix.socket
    protocol: incus
    public: false
  ghcr:
    addr: https://ghcr.io
    protocol: oci
    public: true
  My.Server:
    addr: https://my.example.net:8443
    protocol: incus
    public: false
aliases: {}
"""

# The shape `exo config add` writes (viper lower-cases some keys when it saves: both spellings are read).
EXO_CONFIG = f"""\
defaultaccount = "prod"

[[accounts]]
name = "prod"
key = "EXOaaaaaaaaaaaaaaaaaaaaaaaa"
secret = "{EXO_PROD_SECRET}"
defaultZone = "de-fra-1"

[[accounts]]
name = "staging"
key = "EXObbbbbbbbbbbbbbbbbbbbbbbb"
secret = "{EXO_STAGING_SECRET}"
endpoint = "https://api.exoscale.com/v1"

[[accounts]]
name = "vault"
key = "EXOcccccccccccccccccccccccc"
secretCommand = ["MARKER_COMMAND"]
defaultZone = "ch-gva-2"

[[accounts]]
name = "Team Prod"
key = "EXOdddddddddddddddddddddddd"
secret = "{EXO_OTHER_SECRET}"

[[accounts]]
name = "prod"
key = "EXOeeeeeeeeeeeeeeeeeeeeeeee"
secret = "{EXO_OTHER_SECRET}"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def base_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """No default location outside tmp_path: incus' socket and global directory are pinned there."""
    return {"INCUS_SOCKET": str(tmp_path / "no.socket"), "INCUS_GLOBAL_CONF": str(tmp_path / "etc-incus"), **more}


def by_name(found: list[Found] | list[Skipped]) -> dict:
    return {entry.name: entry for entry in found}


def assert_no_secret(found: list[Found], skipped: list[Skipped]) -> None:
    shown = [entry.source for entry in [*found, *skipped]]
    shown += [entry.reason for entry in skipped] + [entry.description or "" for entry in found]
    shown += [repr(entry) for entry in [*found, *skipped]]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, text


@pytest.fixture(autouse=True)
def linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_accounts, "PLATFORM", "linux")


# --- Scaleway ---------------------------------------------------------------------------------------------------


def test_scaleway_top_level_is_default_and_named_profiles_inherit_from_it(tmp_path: Path) -> None:
    path = write(tmp_path / ".config/scw/config.yaml", SCW_CONFIG)
    found, skipped = scaleway_profiles(base_env(tmp_path), tmp_path)
    profiles = by_name(found)
    assert list(profiles) == ["default", "prod", "dev"]
    assert profiles["default"].variables == {
        "SCW_SECRET_KEY": SCW_TOP_SECRET,
        "SCW_DEFAULT_ZONE": "fr-par-1",
        "SCW_DEFAULT_PROJECT_ID": "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb",
    }
    assert profiles["prod"].variables == {  # its own key and zone, the top level's project (SDK MergeProfiles)
        "SCW_SECRET_KEY": SCW_PROD_SECRET,
        "SCW_DEFAULT_ZONE": "nl-ams-1",
        "SCW_DEFAULT_PROJECT_ID": "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb",
    }
    assert profiles["dev"].variables == {
        "SCW_SECRET_KEY": SCW_TOP_SECRET,
        "SCW_DEFAULT_ZONE": "fr-par-1",
        "SCW_DEFAULT_PROJECT_ID": "cccccccc-cccc-cccc-cccc-cccccccccccc",
        "SCW_API_URL": "https://api.dev.example.net",
    }
    assert profiles["prod"].source == f"scw config {path} (profile prod)"
    assert "active profile" in (profiles["prod"].description or "")
    assert "inherits secret_key, default_zone from the top level" in (profiles["dev"].description or "")
    assert profiles["default"].description is None
    assert all(entry.provider == "scaleway" for entry in found)
    [bad] = skipped
    assert bad.name == "Bad Name" and "'bad-name'" in bad.reason and bad.source.endswith("(profile Bad Name)")
    assert_no_secret(found, skipped)


def test_scaleway_profile_env_names_the_active_one(tmp_path: Path) -> None:
    write(tmp_path / ".config/scw/config.yaml", SCW_CONFIG)
    found, _ = scaleway_profiles(base_env(tmp_path, SCW_PROFILE="dev"), tmp_path)
    assert [entry.name for entry in found if "active profile" in (entry.description or "")] == ["dev"]


def test_scaleway_config_path_overrides_the_default_location(tmp_path: Path) -> None:
    write(tmp_path / ".config/scw/config.yaml", SCW_CONFIG)
    other = write(tmp_path / "elsewhere/scw.yaml", f"secret_key: {SCW_PROD_SECRET}\ndefault_zone: pl-waw-1\n")
    found, skipped = scaleway_profiles(base_env(tmp_path, SCW_CONFIG_PATH=str(other)), tmp_path)
    assert [(entry.name, dict(entry.variables)) for entry in found] == [
        ("default", {"SCW_SECRET_KEY": SCW_PROD_SECRET, "SCW_DEFAULT_ZONE": "pl-waw-1"})
    ]
    assert found[0].source == f"scw config {other} (profile default)" and skipped == []
    found, _ = scaleway_profiles(base_env(tmp_path, SCW_CONFIG_PATH="~/elsewhere/scw.yaml"), tmp_path)
    assert found[0].source == f"scw config {other} (profile default)"


def test_scaleway_xdg_directory_and_the_yml_fallback(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    path = write(xdg / "scw/config.yml", f"secret_key: {SCW_TOP_SECRET}\n")
    found, _ = scaleway_profiles(base_env(tmp_path, XDG_CONFIG_HOME=str(xdg)), tmp_path)
    assert [entry.source for entry in found] == [f"scw config {path} (profile default)"]


def test_scaleway_profiles_the_sdk_would_not_use(tmp_path: Path) -> None:
    write(
        tmp_path / ".config/scw/config.yaml",
        f"""\
default_zone: fr-par-2
profiles:
  twice:
    secret_key: {SCW_BAD_SECRET}
  default:
    secret_key: {SCW_BAD_SECRET}
  empty:
  keyless:
    default_zone: fr-par-3
  twice:
    secret_key: {SCW_PROD_SECRET}
""",
    )
    found, skipped = scaleway_profiles(base_env(tmp_path), tmp_path)
    assert [(entry.name, entry.variables["SCW_SECRET_KEY"]) for entry in found] == [("twice", SCW_PROD_SECRET)]
    assert found[0].variables["SCW_DEFAULT_ZONE"] == "fr-par-2"
    reasons = {(entry.name, entry.source.rsplit("(", 1)[1]): entry.reason for entry in skipped}
    assert "scw uses the last one" in reasons[("twice", "profile twice, line 3)")]
    assert "top level" in reasons[("default", "profile default)")]
    assert "empty" in reasons[("empty", "profile empty)")]
    assert "no secret_key (nor at the top level)" in reasons[("keyless", "profile keyless)")]
    assert "scw init -p keyless" in reasons[("keyless", "profile keyless)")]
    assert all(entry.name != "default" or "profiles.default" in entry.reason for entry in skipped)
    assert_no_secret(found, skipped)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"secret_key: {SCW_TOP_SECRET}\nprofiles:\n  prod:\n    secret_key: '{SCW_PROD_SECRET}\n", "not valid YAML"),
        (f"secret_key: {SCW_TOP_SECRET}\nprofiles: [prod, dev]\n", "line 2: profiles is not a mapping"),
        (
            f"secret_key: {SCW_TOP_SECRET}\nprofiles:\n  prod:\n    default_zone: [a]\n",
            "line 4: profiles.prod.default_zone",
        ),
        (f"secret_key: {SCW_TOP_SECRET}\ninsecure: maybe\n", "line 2: insecure is not true or false"),
        (f"- {SCW_TOP_SECRET}\n", "not a mapping"),
    ],
    ids=["syntax", "profiles-list", "zone-list", "flag-word", "top-list"],
)
def test_a_malformed_scaleway_file_is_one_problem(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path / ".config/scw/config.yaml", text)
    found, skipped = scaleway_profiles(base_env(tmp_path), tmp_path)
    assert found == []
    [problem] = skipped
    assert (problem.name, problem.source) == ("*", f"scw config {path}")
    assert says in problem.reason and problem.reason.startswith("scw cannot load it: ")
    assert_no_secret(found, skipped)


def test_a_yaml_syntax_error_gives_its_line_without_the_line_itself(tmp_path: Path) -> None:
    write(tmp_path / ".config/scw/config.yaml", f"default_zone: fr-par-1\nsecret_key: {SCW_TOP_SECRET}: x\n")
    _, [problem] = scaleway_profiles(base_env(tmp_path), tmp_path)
    assert "line 2" in problem.reason and SCW_TOP_SECRET not in problem.reason


# --- Incus ------------------------------------------------------------------------------------------------------


def incus_home(tmp_path: Path, conf: Path | None = None) -> Path:
    conf = conf or tmp_path / ".config/incus"
    write(conf / "config.yml", INCUS_CONFIG)
    write(conf / "client.crt", CERT_PEM)
    write(conf / "client.key", KEY_PEM)
    write(conf / "servercerts/prod.crt", CERT_PEM)
    return conf


def test_incus_remotes_as_the_cli_keeps_them(tmp_path: Path) -> None:
    conf = incus_home(tmp_path)
    socket = write(tmp_path / "incus.socket", "")  # stands for the daemon's socket: only its existence counts
    found, skipped = incus_remotes(base_env(tmp_path, INCUS_SOCKET=str(socket)), tmp_path)
    remotes = by_name(found)
    assert list(remotes) == ["local", "prod", "snap-lxd"]
    assert remotes["prod"].variables == {
        "INCUS_URL": "https://incus.example.net:8443",
        "INCUS_CLIENT_CERT": str(conf / "client.crt"),
        "INCUS_CLIENT_KEY": str(conf / "client.key"),
        "INCUS_SERVER_CERT": str(conf / "servercerts/prod.crt"),
        "INCUS_PROJECT": "web",
    }
    assert remotes["prod"].source == f"incus config {conf / 'config.yml'} (remote prod)"
    assert remotes["prod"].description == "default remote"
    assert remotes["local"].variables == {"INCUS_URL": f"unix://{socket}", "INCUS_PROJECT": "dev"}
    assert remotes["snap-lxd"].variables == {"INCUS_URL": "unix:///var/snap/lxd/common/lxd/unix.socket"}
    reasons = {entry.name: entry.reason for entry in skipped}
    assert set(reasons) == {"images", "sso", "ghcr", "My.Server"}
    assert "protocol simplestreams" in reasons["images"] and "protocol oci" in reasons["ghcr"]
    assert "OIDC" in reasons["sso"] and "--auth-type=tls" in reasons["sso"]
    assert "'my-server'" in reasons["My.Server"]
    assert_no_secret(found, skipped)


def test_incus_conf_overrides_the_directory_and_expands_variables(tmp_path: Path) -> None:
    conf = incus_home(tmp_path, tmp_path / "elsewhere/incus")
    env = base_env(tmp_path, INCUS_CONF="$BASE/incus", BASE=str(tmp_path / "elsewhere"))
    found, _ = incus_remotes(env, tmp_path)
    prod = by_name(found)["prod"]
    assert prod.source == f"incus config {conf / 'config.yml'} (remote prod)"
    assert prod.variables["INCUS_CLIENT_KEY"] == str(conf / "client.key")


def test_incus_server_certificate_only_when_pinned_and_per_remote_client_certificates(tmp_path: Path) -> None:
    conf = incus_home(tmp_path)
    (conf / "servercerts/prod.crt").unlink()
    write(conf / "clientcerts/prod.crt", CERT_PEM)
    write(conf / "clientcerts/prod.key", KEY_PEM)
    found, _ = incus_remotes(base_env(tmp_path), tmp_path)
    prod = by_name(found)["prod"]
    assert "INCUS_SERVER_CERT" not in prod.variables  # the CLI then trusts the system's CAs
    assert prod.variables["INCUS_CLIENT_CERT"] == str(conf / "clientcerts/prod.crt")
    assert prod.variables["INCUS_CLIENT_KEY"] == str(conf / "clientcerts/prod.key")


def test_incus_remote_without_a_usable_client_key_is_skipped(tmp_path: Path) -> None:
    conf = incus_home(tmp_path)
    write(conf / "client.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
    _, skipped = incus_remotes(base_env(tmp_path), tmp_path)
    assert "encrypted" in by_name(skipped)["prod"].reason
    (conf / "client.key").unlink()
    _, skipped = incus_remotes(base_env(tmp_path), tmp_path)
    assert "no client certificate" in by_name(skipped)["prod"].reason


def test_incus_local_is_built_in_and_needs_its_socket(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    assert incus_remotes(env, tmp_path) == ([], [])  # no config.yml and no socket: nothing to say
    socket = write(tmp_path / "incus.socket", "")
    found, skipped = incus_remotes(base_env(tmp_path, INCUS_SOCKET=str(socket)), tmp_path)
    assert [(entry.name, dict(entry.variables), entry.source) for entry in found] == [
        ("local", {"INCUS_URL": f"unix://{socket}"}, "incus built-in remote local")
    ]
    assert found[0].description == "default remote" and skipped == []
    incus_home(tmp_path)  # with a config.yml, a missing socket is said
    _, skipped = incus_remotes(env, tmp_path)
    assert "no Incus socket at" in by_name(skipped)["local"].reason


def test_incus_socket_rules_for_a_bare_unix_address(tmp_path: Path) -> None:
    write(tmp_path / ".config/incus/config.yml", "remotes:\n  local:\n    addr: unix://\n")
    write(tmp_path / "incus-dir/unix.socket", "")
    env = {**base_env(tmp_path), "INCUS_DIR": str(tmp_path / "incus-dir")}
    del env["INCUS_SOCKET"]  # which comes first
    found, _ = incus_remotes(env, tmp_path)
    assert found[0].variables == {"INCUS_URL": f"unix://{tmp_path / 'incus-dir/unix.socket'}"}


def test_incus_local_is_only_on_linux_and_macos_keeps_its_config_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_accounts, "PLATFORM", "darwin")
    conf = incus_home(tmp_path, tmp_path / "Library/Application Support/incus")
    write(tmp_path / "incus.socket", "")
    found, _ = incus_remotes(base_env(tmp_path, INCUS_SOCKET=str(tmp_path / "incus.socket")), tmp_path)
    assert "local" not in by_name(found)
    assert by_name(found)["prod"].variables["INCUS_CLIENT_CERT"] == str(conf / "client.crt")


def test_incus_global_remotes_fill_in_what_the_user_file_lacks(tmp_path: Path) -> None:
    incus_home(tmp_path)
    shared = tmp_path / "etc-incus"
    write(
        shared / "config.yml",
        "remotes:\n  prod:\n    addr: https://ignored.example.net:8443\n"
        "  cluster:\n    addr: https://cluster.example.net:8443\n    protocol: incus\n",
    )
    write(shared / "servercerts/cluster.crt", CERT_PEM)
    found, _ = incus_remotes(base_env(tmp_path), tmp_path)
    remotes = by_name(found)
    assert remotes["prod"].variables["INCUS_URL"] == "https://incus.example.net:8443"
    assert remotes["cluster"].variables["INCUS_SERVER_CERT"] == str(shared / "servercerts/cluster.crt")
    assert "global remote" in (remotes["cluster"].description or "")


def test_incus_several_addresses_start_with_the_last_working_one(tmp_path: Path) -> None:
    incus_home(tmp_path)
    write(
        tmp_path / ".config/incus/config.yml",
        "remotes:\n  prod:\n    addr: https://a.example.net:8443, https://b.example.net:8443\n"
        "    last_working_address: https://b.example.net:8443\n",
    )
    found, _ = incus_remotes(base_env(tmp_path), tmp_path)
    prod = by_name(found)["prod"]
    assert prod.variables["INCUS_URL"] == "https://b.example.net:8443"
    assert prod.description == "address 2 of 2"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("remotes:\n  prod:\n    addr: https://a:8443\n  prod:\n    addr: https://b:8443\n", "line 4: key 'prod'"),
        ("remotes:\n  prod:\n    protocol: incus\n", "line 2: remote 'prod' has no addr"),
        ("remotes:\n  prod: [https://a:8443]\n", "line 2: remotes.prod is not a mapping"),
        ("remotes:\n  prod:\n    addr: https://a:8443\n    public: 'no'\n", "remotes.prod.public"),
        ("remotes:\n  prod:\n    addr: {https://a:8443\n", "not valid YAML"),
    ],
    ids=["repeated-key", "no-addr", "remote-list", "public-text", "syntax"],
)
def test_a_malformed_incus_file_is_one_problem(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path / ".config/incus/config.yml", text)
    found, skipped = incus_remotes(base_env(tmp_path), tmp_path)
    assert found == []
    [problem] = skipped
    assert (problem.provider, problem.name, problem.source) == ("incus", "*", f"incus config {path}")
    assert says in problem.reason, problem.reason


# --- Exoscale ---------------------------------------------------------------------------------------------------


def test_exoscale_accounts_as_exo_keeps_them(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(
        tmp_path / ".config/exoscale/exoscale.toml",
        EXO_CONFIG.replace('"MARKER_COMMAND"', f'"touch", "{marker}"'),
    )
    found, skipped = exoscale_accounts(base_env(tmp_path), tmp_path)
    accounts = by_name(found)
    assert list(accounts) == ["prod", "staging"]
    assert accounts["prod"].variables == {
        "EXOSCALE_API_KEY": "EXOaaaaaaaaaaaaaaaaaaaaaaaa",
        "EXOSCALE_API_SECRET": EXO_PROD_SECRET,
        "EXOSCALE_ZONE": "de-fra-1",
    }
    assert accounts["staging"].variables == {  # no zone of its own: the server's default applies
        "EXOSCALE_API_KEY": "EXObbbbbbbbbbbbbbbbbbbbbbbb",
        "EXOSCALE_API_SECRET": EXO_STAGING_SECRET,
    }
    assert accounts["prod"].source == f"exo config {path} (account prod)"
    assert accounts["prod"].description == "default account" and accounts["staging"].description is None
    reasons = [(entry.name, entry.reason) for entry in skipped]
    assert [name for name, _ in reasons] == ["vault", "Team Prod", "prod"]
    assert "secretCommand" in reasons[0][1] and "never runs" in reasons[0][1]
    assert "'team-prod'" in reasons[1][1]
    assert "account #1 has the same name and exo uses the first" in reasons[2][1]
    assert not marker.exists()  # the secret command was never run
    assert_no_secret(found, skipped)


def test_exoscale_file_locations(tmp_path: Path) -> None:
    text = f'defaultAccount = "a"\n[[accounts]]\nname = "a"\nkey = "EXOa"\nsecret = "{EXO_PROD_SECRET}"\n'
    legacy = write(tmp_path / ".exoscale/exoscale.toml", text)
    assert exoscale_accounts(base_env(tmp_path), tmp_path)[0][0].source == f"exo config {legacy} (account a)"
    xdg = write(tmp_path / "xdg/exoscale/exoscale.toml", text)
    found, _ = exoscale_accounts(base_env(tmp_path, XDG_CONFIG_HOME=str(tmp_path / "xdg")), tmp_path)
    assert found[0].source == f"exo config {xdg} (account a)"
    given = write(tmp_path / "given.toml", text)
    found, _ = exoscale_accounts(base_env(tmp_path, EXOSCALE_CONFIG=str(given)), tmp_path)
    assert found[0].source == f"exo config {given} (account a)"
    found, _ = exoscale_accounts(base_env(tmp_path, EXOSCALE_ACCOUNT="b"), tmp_path)
    assert found[0].description is None  # EXOSCALE_ACCOUNT, not defaultAccount, is now the default


def test_exoscale_config_naming_a_missing_file_is_said(tmp_path: Path) -> None:
    found, skipped = exoscale_accounts(base_env(tmp_path, EXOSCALE_CONFIG=str(tmp_path / "nope.toml")), tmp_path)
    assert found == [] and [entry.name for entry in skipped] == ["*"]
    assert "EXOSCALE_CONFIG" in skipped[0].reason


def test_exoscale_accounts_without_a_usable_secret_or_endpoint(tmp_path: Path) -> None:
    write(
        tmp_path / ".config/exoscale/exoscale.toml",
        f"""\
[[accounts]]
key = "EXOa"
secret = "{EXO_PROD_SECRET}"

[[accounts]]
name = "keyless"
secret = "{EXO_PROD_SECRET}"

[[accounts]]
name = "preprod"
key = "EXOb"
secret = "{EXO_OTHER_SECRET}"
endpoint = "https://ppapi-ch-gva-2.example.net/v2"
""",
    )
    found, skipped = exoscale_accounts(base_env(tmp_path), tmp_path)
    reasons = {entry.name: entry.reason for entry in skipped}
    assert found == [] and list(reasons) == ["#1", "keyless", "preprod"]
    assert "no name" in reasons["#1"] and "no key" in reasons["keyless"] and "EXOSCALE_API_URL" in reasons["preprod"]
    assert_no_secret(found, skipped)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f'[[accounts]]\nname = "a"\nsecret = "{EXO_PROD_SECRET}\n', "not valid TOML"),
        ('accounts = "prod"\n', "accounts is not a list"),
        (f'[[accounts]]\nname = "a"\nsecret = "{EXO_PROD_SECRET}"\nkey = ["EXOa"]\n', "account #1: key is not text"),
        ('[[accounts]]\nname = "a"\nsecretCommand = 3\n', "secretCommand"),
    ],
    ids=["syntax", "accounts-text", "key-list", "command-number"],
)
def test_a_malformed_exoscale_file_is_one_problem(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path / ".config/exoscale/exoscale.toml", text)
    found, skipped = exoscale_accounts(base_env(tmp_path), tmp_path)
    assert found == []
    [problem] = skipped
    assert (problem.provider, problem.name, problem.source) == ("exoscale", "*", f"exo config {path}")
    assert says in problem.reason, problem.reason
    assert_no_secret(found, skipped)


# --- all three --------------------------------------------------------------------------------------------------


def test_no_file_at_all_finds_nothing(tmp_path: Path) -> None:
    assert read_cli_accounts(base_env(tmp_path), tmp_path) == ([], [])


def test_all_three_together(tmp_path: Path) -> None:
    write(tmp_path / ".config/scw/config.yaml", SCW_CONFIG)
    incus_home(tmp_path)
    write(tmp_path / ".config/exoscale/exoscale.toml", EXO_CONFIG)
    found, skipped = read_cli_accounts(base_env(tmp_path), tmp_path)
    assert [(entry.provider, entry.name) for entry in found] == [
        ("scaleway", "default"),
        ("scaleway", "prod"),
        ("scaleway", "dev"),
        ("incus", "prod"),
        ("incus", "snap-lxd"),
        ("exoscale", "prod"),
        ("exoscale", "staging"),
    ]
    assert {entry.provider for entry in skipped} == {"scaleway", "incus", "exoscale"}
    assert all(isinstance(entry, Skipped) and entry.reason for entry in skipped)
    assert_no_secret(found, skipped)


def test_found_is_frozen_and_hides_its_variables_from_repr() -> None:
    entry = Found("scaleway", "prod", {"SCW_SECRET_KEY": SCW_PROD_SECRET}, "scw config x (profile prod)")
    with pytest.raises(AttributeError):
        entry.name = "other"  # type: ignore[misc]
    assert SCW_PROD_SECRET not in repr(entry)
