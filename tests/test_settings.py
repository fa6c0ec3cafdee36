"""Settings from the environment: every value checked, misspelt names refused, OAuth taken together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcp_cloudops.registry import load_registry
from mcp_cloudops.settings import ConfigError, Settings, unknown_settings

REGISTRY = load_registry()
INCUS = REGISTRY.providers["incus"]


def test_every_setting_the_readme_or_the_code_names_is_known() -> None:
    """A variable missing from settings.KNOWN_SETTINGS would be refused at start as a misspelling."""
    root = Path(__file__).parent.parent
    docs = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "mcp_cloudops").glob("*.py")]
    texts = [path.read_text() for path in docs]
    named = {name for text in texts for name in re.findall(r"MCP_CLOUDOPS_[A-Z0-9_]*[A-Z0-9]", text)}
    assert "MCP_CLOUDOPS_READ_ONLY" in named and "MCP_CLOUDOPS_EXOSCALE_READ_TIMEOUT" in named
    assert unknown_settings(dict.fromkeys(named, "1"), REGISTRY) == []
    assert unknown_settings({"MCP_CLOUDOPS_READONLY": "1", "MCP_CLOUDOPS_AWS_READ_TIMEOUT": "3"}, REGISTRY) == [
        "MCP_CLOUDOPS_AWS_READ_TIMEOUT is not an mcp-cloudops setting: no provider is called aws (per-provider "
        "timeouts name one of INCUS, EXOSCALE, SCALEWAY, PORTAINER, NIRVANA). Unset it "
        '(see docs/configuration.md, "Checked at start")',
        "MCP_CLOUDOPS_READONLY is not an mcp-cloudops setting: did you mean MCP_CLOUDOPS_READ_ONLY? Unset it "
        '(see docs/configuration.md, "Checked at start")',
    ]


# --- OAuth -------------------------------------------------------------------------------------------------------

OAUTH = {
    "MCP_CLOUDOPS_OAUTH_ISSUER": "https://sso.example.com/realms/ops",
    "MCP_CLOUDOPS_PUBLIC_URL": "https://mcp.example.com/mcp",
}


def refusal(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    return str(caught.value).splitlines()


def test_oauth_settings_are_read_and_known() -> None:
    settings = Settings.from_env(OAUTH | {"MCP_CLOUDOPS_OAUTH_READ_SCOPE": "ops.read"})
    assert settings.oauth and settings.oauth_issuer == OAUTH["MCP_CLOUDOPS_OAUTH_ISSUER"]
    assert (settings.oauth_read_scope, settings.oauth_write_scope) == ("ops.read", "cloudops:write")
    assert not Settings.from_env({}).oauth
    names = [*OAUTH, "MCP_CLOUDOPS_OAUTH_READ_SCOPE", "MCP_CLOUDOPS_OAUTH_WRITE_SCOPE"]
    assert unknown_settings(dict.fromkeys(names, "x"), REGISTRY) == []
    loopback = {
        "MCP_CLOUDOPS_OAUTH_ISSUER": "http://127.0.0.1:8080",
        "MCP_CLOUDOPS_PUBLIC_URL": "http://[::1]:8000/mcp",
    }
    assert Settings.from_env(loopback).oauth  # http:// on loopback only: a local issuer, tests


@pytest.mark.parametrize(
    ("env", "line"),
    [({"MCP_CLOUDOPS_OAUTH_ISSUER": "http://sso.example.com/realms/ops"},
      "MCP_CLOUDOPS_OAUTH_ISSUER='http://sso.example.com/realms/ops' is not an https:// URL (http:// is accepted "
      "only for a loopback host): set it to the authorization server's issuer URL, e.g. "
      "https://sso.example.com/realms/REALM"),
     ({"MCP_CLOUDOPS_PUBLIC_URL": "http://10.0.0.5:8000/mcp"},
      "MCP_CLOUDOPS_PUBLIC_URL='http://10.0.0.5:8000/mcp' is not an https:// URL (http:// is accepted only for a "
      "loopback host): set it to this server's MCP URL as clients reach it, e.g. https://mcp.example.com/mcp"),
     ({"MCP_CLOUDOPS_OAUTH_ISSUER": "sso.example.com"}, "MCP_CLOUDOPS_OAUTH_ISSUER='sso.example.com' is not an "
      "https:// URL: set it to the authorization server's issuer URL, e.g. https://sso.example.com/realms/REALM"),
     ({"MCP_CLOUDOPS_PUBLIC_URL": "https://mcp.example.com/mcp#x"},
      "MCP_CLOUDOPS_PUBLIC_URL='https://mcp.example.com/mcp#x' is not a usable URL (it has a query or fragment)"),
     ({"MCP_CLOUDOPS_OAUTH_ISSUER": "https://admin:hunter2@sso.example.com"},
      "MCP_CLOUDOPS_OAUTH_ISSUER is not a usable URL (it carries a user name or password)"),
     ({"MCP_CLOUDOPS_OAUTH_WRITE_SCOPE": "cloudops write"},
      "MCP_CLOUDOPS_OAUTH_WRITE_SCOPE='cloudops write' is not an OAuth scope name (printable ASCII, no space, "
      "quote or backslash): set one, or unset it for the default (cloudops:write)"),
     ({"MCP_CLOUDOPS_OAUTH_WRITE_SCOPE": "cloudops:read"},
      "MCP_CLOUDOPS_OAUTH_READ_SCOPE and MCP_CLOUDOPS_OAUTH_WRITE_SCOPE are both 'cloudops:read': give them "
      "different names"),
     ({"MCP_CLOUDOPS_HTTP_TOKEN": "t0k"},
      "MCP_CLOUDOPS_OAUTH_ISSUER and MCP_CLOUDOPS_HTTP_TOKEN are both set: use one (OAuth for a team, a token for "
      "one user) and unset the other")],
)  # fmt: skip
def test_a_bad_oauth_setting_is_one_line_naming_what_to_set(env: dict[str, str], line: str) -> None:
    lines = refusal(OAUTH | env)
    assert any(shown.startswith(line) for shown in lines), lines
    assert "hunter2" not in "\n".join(lines) and "t0k" not in "\n".join(lines)


def test_an_issuer_and_a_public_url_go_together() -> None:
    [line] = refusal({"MCP_CLOUDOPS_OAUTH_ISSUER": OAUTH["MCP_CLOUDOPS_OAUTH_ISSUER"]})
    assert line.startswith("MCP_CLOUDOPS_OAUTH_ISSUER is set but MCP_CLOUDOPS_PUBLIC_URL is not: set ")
    assert "--public-url" in line and "audience" in line
    [line] = refusal({"MCP_CLOUDOPS_PUBLIC_URL": OAUTH["MCP_CLOUDOPS_PUBLIC_URL"]})
    assert line.startswith("MCP_CLOUDOPS_PUBLIC_URL is set but MCP_CLOUDOPS_OAUTH_ISSUER is not: set ")


def test_state_keys_are_shared_secrets_of_32_bytes_or_more() -> None:
    from mcp_cloudops.redaction import configured_secrets
    from mcp_cloudops.registry import load_registry
    from mcp_cloudops.server import request_state_security

    key = "k" * 32
    settings = Settings.from_env({"MCP_CLOUDOPS_STATE_KEYS": f"{key}, {'n' * 40}"})
    assert request_state_security(settings) is not None
    assert {key, "n" * 40} <= set(configured_secrets(load_registry(), settings))  # redacted like any secret
    assert request_state_security(Settings.from_env({})) is None  # one process: the SDK's own key
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"MCP_CLOUDOPS_STATE_KEYS": "short"})
    assert "MCP_CLOUDOPS_STATE_KEYS" in str(refused.value) and "short" not in str(refused.value)


BODY_TIMEOUT = "MCP_CLOUDOPS_HTTP_BODY_TIMEOUT"


def test_the_body_timeout_is_read_and_checked_like_the_header_timeout() -> None:
    """A request body must arrive within it (red-team finding 4); a value that is no positive number of seconds
    stops the start with one line, as MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT does."""
    assert Settings.from_env({}).http_body_timeout == 30
    assert Settings.from_env({BODY_TIMEOUT: " 2.5 "}).http_body_timeout == 2.5
    assert unknown_settings({BODY_TIMEOUT: "5"}, REGISTRY) == []
    for bad in ("soon", "30s", "0", "-1", "inf", "nan"):
        assert refusal({BODY_TIMEOUT: bad}) == [
            f"{BODY_TIMEOUT}={bad!r} is not a number of seconds > 0: set one, or unset it for the default (30)"
        ]
