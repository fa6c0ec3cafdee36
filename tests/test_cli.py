"""The command line: list-tools, check (also against the sandbox), refusals that happen before anything is
served, and what a mistyped command or flag is told."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from mcp_cloudops.cli import list_tools
from mcp_cloudops.policy import select_tools
from mcp_cloudops.registry import default_path, load_registry
from mcp_cloudops.setting_values import is_loopback
from mcp_cloudops.settings import Settings

TOOL_COUNT = len(load_registry().tools)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_SECRET", "SECRET_KEY"))}
    base = {k: v for k, v in base.items() if not k.startswith(("MCP_CLOUDOPS_", "INCUS_", "PORTAINER_"))}
    return subprocess.run(
        [sys.executable, "-m", "mcp_cloudops", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_tools_prints_every_tool_with_provider_and_hints() -> None:
    result = cli("list-tools")
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and len(lines) == TOOL_COUNT
    assert any(line.split()[:2] == ["stop-compute-instance", "exoscale"] for line in lines)
    rows = json.loads(cli("list-tools", "--json").stdout)
    assert len(rows) == TOOL_COUNT and set(rows[0]["hints"]) == {"readOnly", "destructive", "idempotent", "openWorld"}


def test_installed_console_script() -> None:
    script = Path(sys.executable).parent / "mcp-cloudops"
    if not script.exists():
        pytest.skip("mcp-cloudops is not installed in this environment (pip install -e .)")
    result = subprocess.run([str(script), "list-tools"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == TOOL_COUNT


def test_markdown_table_has_a_row_per_tool() -> None:
    table = list_tools(load_registry(), "markdown").splitlines()
    assert len(table) == TOOL_COUNT + 2 and table[0].startswith("| tool |")


def test_check_reports_credentials_without_values() -> None:
    secret = "super-secret-value-42"
    result = cli("check", env={"SCW_SECRET_KEY": secret})
    assert result.returncode == 0
    assert "scaleway  ready" in result.stdout and "SCW_SECRET_KEY set" in result.stdout
    assert "EXOSCALE_API_KEY MISSING" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_broken_registry_fails_at_start_naming_tool_and_field(tmp_path: Path) -> None:
    raw = yaml.safe_load(default_path().read_text())
    raw["tools"][3]["provider"] = "aws"
    broken = tmp_path / "tools.yaml"
    broken.write_text(yaml.safe_dump(raw))
    result = cli("check", env={"MCP_CLOUDOPS_REGISTRY": str(broken)})
    assert result.returncode == 2
    assert f"tool '{raw['tools'][3]['name']}' field 'provider': unknown provider 'aws'" in result.stderr


def test_non_loopback_bind_is_refused() -> None:
    result = cli("serve", "--transport", "http", "--host", "0.0.0.0")
    assert result.returncode == 2 and "refusing to bind 0.0.0.0" in result.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("192.0.2.1")


def offered_counts(**env: str) -> tuple[int, Counter[str]]:
    """What `serve` would offer under this policy: the tools select_tools keeps, in all and per provider."""
    settings = Settings.from_env(env)
    selected = select_tools(load_registry(), settings)
    return len(selected), Counter(tool.provider for tool in selected)


def check_counts(stdout: str) -> dict[str, int]:
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] and line[0] != " "][1:]
    return {row[0]: int(row[row.index("tools") - 1]) for row in rows if "tools" in row}


@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--read-only"], {"MCP_CLOUDOPS_READ_ONLY": "1"}),
     (["--toolsets", "scaleway,incus"], {"MCP_CLOUDOPS_TOOLSETS": "scaleway,incus"}),
     (["--read-only", "--exclude-tools", "list-instances"],
      {"MCP_CLOUDOPS_READ_ONLY": "1", "MCP_CLOUDOPS_EXCLUDE_TOOLS": "list-instances"})],
)  # fmt: skip
def test_check_counts_what_serve_would_offer(flags: list[str], env: dict[str, str]) -> None:
    """`check --read-only` counted every tool: now the same filter as `serve` (policy.select_tools)."""
    total, per_provider = offered_counts(**env)
    result = cli("check", *flags, env={"SCW_SECRET_KEY": "k"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"this policy offers {total} tools (" in result.stdout.splitlines()[0]
    assert total < TOOL_COUNT
    counts = check_counts(result.stdout)
    assert counts == {key: per_provider[key] for key in load_registry().providers}


def test_check_fails_when_no_offered_provider_is_ready() -> None:
    result = cli("check")
    assert result.returncode == 1 and "not ready: no offered provider is configured" in result.stdout
    result = cli("check", "--toolsets", "exoscale", env={"SCW_SECRET_KEY": "k"})  # ready, but not offered
    assert result.returncode == 1 and "scaleway  off" in result.stdout


@pytest.mark.parametrize(
    ("env", "line"),
    [({"PORTAINER_URL": "https://portainer.example:9443"},
      "Portainer CE: PORTAINER_API_KEY is not set but PORTAINER_URL is: set it, or unset PORTAINER_URL"),
     ({"EXOSCALE_API_SECRET": "s"}, "Exoscale: EXOSCALE_API_KEY is not set but EXOSCALE_API_SECRET is"),
     ({"INCUS_URL": "https://incus.example:8443", "INCUS_CLIENT_CERT": "/nonexistent/client.crt"},
      "INCUS_CLIENT_CERT=/nonexistent/client.crt is not a readable file")],
)  # fmt: skip
def test_check_fails_when_a_configured_provider_cannot_be_used(env: dict[str, str], line: str) -> None:
    """Set in part or wrong: `check` says what to set under the provider's line and exits 1, even when
    another provider is ready."""
    result = cli("check", env={"SCW_SECRET_KEY": "k", "INCUS_CONF": "/nonexistent", **env})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "scaleway  ready" in result.stdout and f"  {line}" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("not ready: ") and "unusable" in result.stdout
    assert "Traceback" not in result.stderr


def test_oauth_flags_are_checked_at_start_with_one_line_naming_the_flag() -> None:
    public = ("--public-url", "https://mcp.example.com/mcp")
    result = cli("serve", "--transport", "http", "--oauth-issuer", "http://sso.example.com", *public)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("MCP_CLOUDOPS_OAUTH_ISSUER='http://sso.example.com' (from --oauth-issuer) is not an https")
    issuer = ("--oauth-issuer", "https://sso.example.com")
    result = cli("serve", "--transport", "http", *issuer, *public, env={"MCP_CLOUDOPS_HTTP_TOKEN": "t0k"})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("MCP_CLOUDOPS_OAUTH_ISSUER (from --oauth-issuer) and MCP_CLOUDOPS_HTTP_TOKEN are both set")
    assert "t0k" not in result.stderr


def test_oauth_lets_the_server_bind_beyond_loopback() -> None:
    """Not refused like a bind without a token: it gets as far as the bind (192.0.2.1 is no local address)."""
    oauth = ("--oauth-issuer", "https://sso.example.com", "--public-url", "https://mcp.example.com/mcp")
    result = cli("serve", "--transport", "http", "--host", "192.0.2.1", *oauth)
    assert result.returncode == 2 and "refusing to bind" not in result.stderr
    assert (
        result.stderr.strip() == "cannot listen on 192.0.2.1:8000: 192.0.2.1 is not an address of this machine: "
        "choose another --host"
    )


def test_the_body_timeout_flag_is_its_variable_and_a_bad_one_stops_the_start_with_one_line() -> None:
    from mcp_cloudops.cli import flags_as_env, parser

    given = parser().parse_args(["serve", "--http-body-timeout", "12.5"])
    assert flags_as_env(given) == {"MCP_CLOUDOPS_HTTP_BODY_TIMEOUT": "12.5"}
    result = cli("serve", "--transport", "http", "--port", "0", "--http-body-timeout", "soon")
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "MCP_CLOUDOPS_HTTP_BODY_TIMEOUT='soon' (from --http-body-timeout) is not a number of seconds > 0: set one, "
        "or leave the flag out for the default (30)"
    ]
    result = cli("check", env={"MCP_CLOUDOPS_HTTP_BODY_TIMEOUT": "-1"})
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "MCP_CLOUDOPS_HTTP_BODY_TIMEOUT='-1' is not a number of seconds > 0: set one, or unset it for the default (30)"
    ]


def test_check_lists_every_account_and_what_was_skipped(tmp_path: Path) -> None:
    scw = tmp_path / "scw.yaml"
    scw.write_text(
        "profiles:\n  team:\n    secret_key: 22222222-2222-4222-8222-222222222222\n  Bad:\n    secret_key: x\n"
    )
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("accounts:\n  scaleway:\n    prod:\n      description: Production\n      variables: {}\n")
    accounts.chmod(0o600)
    env = {"SCW_SECRET_KEY": "env-secret-value-0000", "SCW_CONFIG_PATH": str(scw), "HOME": str(tmp_path)}
    result = cli("check", "--accounts", str(accounts), "--cli-accounts", env=env)
    lines = result.stdout.splitlines()
    assert any(line.startswith("scaleway  ready") and line.endswith("3 accounts") for line in lines), result.stdout
    assert "  default (default): ready, from the environment; SCW_SECRET_KEY set" in lines
    assert any(line.startswith("  team: ready, from scw config") for line in lines)
    assert f"  prod: not set, from {accounts}; SCW_SECRET_KEY MISSING" in lines
    assert any(line.startswith("skipped: scw config") and "'Bad'" in line for line in lines)
    assert "2222" not in result.stdout + result.stderr and "env-secret" not in result.stdout + result.stderr


def test_a_bad_accounts_file_stops_serve_with_one_line_per_problem(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts:\n  nirvana:\n    a: {variables: {NIRVANA_LABS_API_KEY: {env: UNSET_KEY}}}\n"
        "    b: {variables: {NIRVANA_LABS_API_KEY: literal-secret-0123}}\n"
    )
    accounts.chmod(0o644)
    result = cli("serve", "--accounts", str(accounts))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert any("accounts.nirvana.a: variables.NIRVANA_LABS_API_KEY: {env: UNSET_KEY}" in line for line in lines)
    assert any(f"chmod 600 {accounts}" in line for line in lines)
    assert "literal-secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("how", [{"args": ["--sandbox"]}, {"env": {"MCP_CLOUDOPS_SANDBOX": "1"}}])
def test_check_against_the_sandbox_starts_it_and_says_it_is_ready(how: dict) -> None:
    """As `serve --sandbox` does: the simulators started, every provider pointed at them (a real key set
    beside the switch is never used), checked, and the verdict on the last line."""
    env = {"EXOSCALE_API_KEY": "EXOreal", "EXOSCALE_API_SECRET": "real-secret", **how.get("env", {})}
    result = cli("check", *how.get("args", []), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("sandbox: 5 simulators running on this machine")
    rows = check_counts(result.stdout)
    assert rows == dict(Counter(tool.provider for tool in load_registry().tools))
    assert all(f"{key:<9} ready" in result.stdout for key in load_registry().providers)
    assert lines[-1] == "ready: `mcp-cloudops serve --sandbox` serves against these simulators, no account needed"
    assert "real-secret" not in result.stdout + result.stderr


def test_check_against_the_sandbox_keeps_the_policy() -> None:
    result = cli("check", "--sandbox", "--toolsets", "nirvana")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nirvana   ready" in result.stdout and "exoscale  off" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["sevre"], "mcp-cloudops: sevre is not a command: did you mean serve? "
                 "(commands: serve, list-tools, check, generate; see mcp-cloudops --help)"),
     (["lsit-tools", "--json"], "mcp-cloudops: lsit-tools is not a command: did you mean list-tools?"),
     (["deploy"], "mcp-cloudops: deploy is not a command (commands: serve, list-tools, check, generate;"),
     (["serve", "--sandbx"], "mcp-cloudops serve: --sandbx is not a flag of serve: did you mean --sandbox? "
                             "(see mcp-cloudops serve --help)"),
     (["--sandbx", "--transport", "http"], "mcp-cloudops serve: --sandbx is not a flag of serve: did you mean "
                                           "--sandbox?"),
     (["check", "--readonly"], "mcp-cloudops check: --readonly is not a flag of check: did you mean --read-only?"),
     (["serve", "--port=80", "--tolsets=x"], "mcp-cloudops serve: --tolsets is not a flag of serve: did you mean "
                                             "--toolsets?"),
     (["serve", "--bogus"], "mcp-cloudops serve: --bogus is not a flag of serve (see mcp-cloudops serve --help)"),
     (["check", "--transport", "http"], "mcp-cloudops check: --transport is a flag of serve, not of check"),
     (["list-tools", "--sandbox"], "mcp-cloudops list-tools: --sandbox is a flag of serve and check, not of "
                                   "list-tools"),
     (["serve", "now"], "mcp-cloudops serve: unexpected argument 'now': serve takes flags only")],
)  # fmt: skip
def test_a_mistyped_command_or_flag_is_refused_with_the_nearest(args: list[str], message: str) -> None:
    """Like a misspelt setting: one line, exit 2, the command or flag spelt like it when there is one."""
    result = cli(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_flag_abbreviated_is_still_taken() -> None:
    """argparse takes an unambiguous prefix (--read for --read-only): no suggestion gets in its way."""
    result = cli("list-tools", "--read")
    assert result.returncode == 0 and len(result.stdout.splitlines()) < TOOL_COUNT
