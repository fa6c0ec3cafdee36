"""Accounts (accounts.py): the environment's account of each provider (where Incus is found, from the
registry's declared sockets), accounts files read and checked at start, and which account a call uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_cloudops.accounts import Account, Accounts, environment_account, provider_variables, sandboxed
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.settings import ConfigError, Settings

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
    assert {"INCUS_CLIENT_CERT", "INCUS_CLIENT_KEY", "INCUS_TOKEN"} <= provider_variables(registry)  # beyond tools.yaml


def test_the_sandbox_drops_whatever_says_where_a_provider_is_or_how_to_sign_in(registry: Registry) -> None:
    for provider in registry.providers.values():
        named = [
            provider.url_env,
            *provider.auth.env_names,
            provider.zone_env,
            getattr(provider.default_project, "env", None),
        ]
        real = dict.fromkeys((name for name in named if name), "real")
        assert sandboxed({**real, "HOME": "/home/me"}, registry, {}) == {"HOME": "/home/me"}, provider.key


# --- the accounts file -------------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def loaded(path: Path, env: dict[str, str] | None = None, **settings: str) -> Accounts:
    return Settings.from_env({"MCP_CLOUDOPS_ACCOUNTS": str(path), **(env or {}), **settings}).with_accounts(
        REGISTRY
    ).accounts or Accounts({}, {})


def refused(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        loaded(path, env)
    return str(caught.value)


FILE = """
accounts:
  exoscale:
    prod:
      description: Production
      variables:
        EXOSCALE_API_KEY: EXOprodkey000000000000000
        EXOSCALE_API_SECRET: {file: SECRET_FILE}
        EXOSCALE_ZONE: de-fra-1
      read_only: true
    staging:
      variables:
        EXOSCALE_API_KEY: {env: STAGING_KEY}
        EXOSCALE_API_SECRET: {env: STAGING_SECRET}
default_accounts: {exoscale: staging}
"""


def test_accounts_are_read_with_their_values_from_env_and_files(tmp_path: Path) -> None:
    secret = tmp_path / "exo-prod"
    secret.write_text("prod-secret-value-0123456789\n")
    path = write(tmp_path, FILE.replace("SECRET_FILE", str(secret)))
    accounts = loaded(path, {"STAGING_KEY": "EXOstagingkey00000000000", "STAGING_SECRET": "staging-secret-0123"})
    exoscale = REGISTRY.providers["exoscale"]
    assert list(accounts.of("exoscale")) == ["prod", "staging"]  # the environment sets nothing for it
    prod, staging = accounts.of("exoscale").values()
    assert prod.secret("EXOSCALE_API_SECRET").get_secret_value() == "prod-secret-value-0123456789"
    assert (prod.description, prod.read_only, prod.default_zone(exoscale)) == ("Production", True, "de-fra-1")
    assert staging.secret("EXOSCALE_API_KEY").get_secret_value() == "EXOstagingkey00000000000"
    assert accounts.default("exoscale") is staging and accounts.resolve(exoscale, "prod") is prod
    assert "prod-secret-value" not in repr(prod) and "EXOprodkey" not in repr(accounts)
    assert list(accounts.of("scaleway")) == ["default"]  # untouched providers keep the environment's


def test_the_environment_stays_default_beside_the_files_accounts(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts:\n  scaleway:\n    team:\n      variables: {SCW_SECRET_KEY: {env: TEAM}}\n")
    accounts = loaded(path, {"SCW_SECRET_KEY": "mine-0000000000000000", "TEAM": "theirs-000000000000000"})
    assert list(accounts.of("scaleway")) == ["default", "team"] and accounts.defaults["scaleway"] == "default"
    scaleway = REGISTRY.providers["scaleway"]
    with pytest.raises(ConfigError, match=r"no account 'prod' for scaleway: use one of default, team"):
        accounts.resolve(scaleway, "prod")


def test_two_accounts_and_no_default_make_calls_name_one(tmp_path: Path) -> None:
    text = "accounts:\n  nirvana:\n    a: {variables: {NIRVANA_LABS_API_KEY: x}}\n"
    text += "    b: {variables: {NIRVANA_LABS_API_KEY: y}}\n"
    accounts = loaded(write(tmp_path, text))
    assert accounts.defaults["nirvana"] is None
    with pytest.raises(ConfigError, match="has several accounts: pass account, one of a, b"):
        accounts.resolve(REGISTRY.providers["nirvana"], None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accounts:\n  aws:\n    x: {}\n", "accounts.aws: no provider 'aws'"),
        ("accounts:\n  nirvana:\n    Prod: {}\n", "accounts.nirvana.Prod: an account name is [a-z0-9]"),
        (
            "accounts:\n  nirvana:\n    p: {variables: {SCW_SECRET_KEY: x}}\n",
            "variables.SCW_SECRET_KEY: not a nirvana variable",
        ),
        ("accounts:\n  nirvana:\n    p: {variables: {NIRVANA_LABS_API_KEY: {env: UNSET_X}}}\n", "UNSET_X is not set"),
        (
            "accounts:\n  nirvana:\n    p: {variables: {NIRVANA_LABS_API_KEY: {file: /nonexistent/k}}}\n",
            "cannot be read",
        ),
        ("accounts:\n  nirvana:\n    p: {users: [alice]}\n", "users: only an OAuth endpoint"),
        ("accounts: {}\ndefault_accounts: {nirvana: p}\n", "default_accounts.nirvana: no account 'p'"),
        ("accounts:\n  nirvana:\n    p: {colour: blue}\n", "accounts.nirvana.p.colour: Extra inputs are not permitted"),
        ("accounts: [\n", "is not YAML at line"),
    ],
)
def test_every_mistake_in_the_file_is_one_line_naming_where(tmp_path: Path, text: str, expected: str) -> None:
    message = refused(write(tmp_path, text))
    assert expected in message and "MCP_CLOUDOPS_ACCOUNTS (--accounts)" in message


def test_a_literal_secret_in_a_file_others_may_read_stops_the_start(tmp_path: Path) -> None:
    text = "accounts:\n  nirvana:\n    p: {variables: {NIRVANA_LABS_API_KEY: literal-secret-000000}}\n"
    path = write(tmp_path, text, mode=0o644)
    message = refused(path)
    assert f"chmod 600 {path}" in message and "literal-secret" not in message
    path.chmod(0o600)
    assert "p" in loaded(path).of("nirvana")
    ref = write(tmp_path, "accounts:\n  nirvana:\n    p: {variables: {NIRVANA_LABS_API_KEY: {env: K}}}\n", 0o644)
    assert "p" in loaded(ref, {"K": "from-env-000000000"}).of("nirvana")  # no secret in it: any mode


def test_a_files_default_cannot_shadow_the_environments(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts:\n  nirvana:\n    default: {variables: {NIRVANA_LABS_API_KEY: {env: K}}}\n")
    assert "account 'default' of nirvana is also what the environment sets" in refused(
        path, {"K": "x" * 20, "NIRVANA_LABS_API_KEY": "y" * 20}
    )


def test_an_unset_value_says_which_account_and_file_to_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts:\n  nirvana:\n    team: {description: Team}\n")
    account = loaded(path).of("nirvana")["team"]
    with pytest.raises(ConfigError) as caught:
        account.secret("NIRVANA_LABS_API_KEY")
    assert f"set it in account 'team' of nirvana in {path}" in str(caught.value)


def test_the_sandbox_ignores_an_accounts_file() -> None:
    env = sandboxed({"MCP_CLOUDOPS_ACCOUNTS": "/etc/accounts.yaml"}, REGISTRY, {"INCUS_SOCKET": "/tmp/s"})
    assert "MCP_CLOUDOPS_ACCOUNTS" not in env


# --- the providers' own CLIs' accounts (--cli-accounts) ---------------------------------------------------------


def test_cli_accounts_join_the_environments_and_lose_to_it_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no real ~/.config of the machine running the tests
    scw = tmp_path / "scw.yaml"
    scw.write_text(
        "secret_key: 11111111-1111-4111-8111-111111111111\n"
        "default_zone: nl-ams-1\n"
        "profiles:\n"
        "  team:\n    secret_key: 22222222-2222-4222-8222-222222222222\n"
        "  ops:\n    secret_key: 33333333-3333-4333-8333-333333333333\n"
        "  Bad_Name:\n    secret_key: 44444444-4444-4444-8444-444444444444\n"
    )
    path = write(tmp_path, "accounts:\n  scaleway:\n    ops: {variables: {SCW_SECRET_KEY: {env: OPS}}}\n")
    env = {
        "SCW_CONFIG_PATH": str(scw),
        "SCW_SECRET_KEY": "env-secret-0000000000",
        "OPS": "file-secret-00000000000",
        "MCP_CLOUDOPS_CLI_ACCOUNTS": "1",
    }
    accounts = loaded(path, env)
    scaleway = accounts.of("scaleway")
    assert list(scaleway) == ["default", "team", "ops"]
    assert scaleway["default"].source == "the environment"  # the environment's default beats the CLI's
    assert scaleway["team"].secret("SCW_SECRET_KEY").get_secret_value().startswith("2222")
    assert scaleway["team"].default_zone(REGISTRY.providers["scaleway"]) == "nl-ams-1"  # inherited, as the SDK
    assert scaleway["ops"].source == str(path)  # the file's beats the CLI's
    skipped = "\n".join(accounts.skipped)
    assert "Bad_Name" in skipped and "the environment's account is 'default'" in skipped
    assert "an account 'ops'" in skipped
    assert not any(secret in skipped for secret in ("1111", "2222", "3333", "4444", "env-secret", "file-secret"))
