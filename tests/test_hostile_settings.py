"""Hostile configuration: a boolean setting with a value we do not document must stop the server
with one line naming the variable, never start it with the permissive reading (finding 9)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import server_env

from mcp_cloudops.registry import load_registry
from mcp_cloudops.settings import ConfigError, Settings

UNDOCUMENTED = ["y", "enabled", "2", "tru", "nein", "-1", "yes please"]


@pytest.mark.parametrize("value", UNDOCUMENTED)
def test_an_undocumented_boolean_is_refused_not_read_as_false(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"MCP_CLOUDOPS_READ_ONLY": value})
    message = str(caught.value)
    assert "MCP_CLOUDOPS_READ_ONLY" in message and repr(value) in message
    assert "1, true, yes, on" in message and "\n" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("On", True), ("0", False), ("false", False),
     ("No", False), ("off", False), ("", False)],
)  # fmt: skip
def test_documented_booleans_are_read(value: str, expected: bool) -> None:
    assert Settings.from_env({"MCP_CLOUDOPS_READ_ONLY": value}).read_only is expected
    assert Settings.from_env({"MCP_CLOUDOPS_STATELESS": value}).stateless is expected


@pytest.mark.parametrize("command", [["serve"], ["list-tools"], ["check"]])
def test_the_cli_stops_with_one_line_for_an_undocumented_boolean(command: list[str]) -> None:
    """`MCP_CLOUDOPS_READ_ONLY=y` used to start with every write tool; now nothing starts."""
    done = subprocess.run(
        [sys.executable, "-m", "mcp_cloudops", *command],
        env=server_env(strip=("MCP_CLOUDOPS_",), MCP_CLOUDOPS_READ_ONLY="y"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MCP_CLOUDOPS_READ_ONLY" in lines[0] and "Traceback" not in done.stderr


# Every number, with a value that is no number and one out of its range: (variable, not a number, out of range).
NUMBERS = [
    ("MCP_CLOUDOPS_CONNECT_TIMEOUT", "soon", "0"),
    ("MCP_CLOUDOPS_READ_TIMEOUT", "soon", "-5"),
    ("MCP_CLOUDOPS_MAX_WAIT", "forever", "0"),
    ("MCP_CLOUDOPS_RETRIES", "two", "-1"),
    ("MCP_CLOUDOPS_RETRY_AFTER_CAP", "10s", "-1"),
    ("MCP_CLOUDOPS_MAX_RESPONSE_BYTES", "10MiB", "0"),
    ("MCP_CLOUDOPS_OUTPUT_CAP", "25k", "999"),
    ("MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT", "ten", "0"),
    ("MCP_CLOUDOPS_HTTP_BODY_TIMEOUT", "soon", "0"),
    ("MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT", "5s", "inf"),
    ("MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS", "lots", "0"),
    ("MCP_CLOUDOPS_EXOSCALE_READ_TIMEOUT", "soon", "nan"),
    ("MCP_CLOUDOPS_INCUS_CONNECT_TIMEOUT", "1m", "-1"),
]
BAD_NUMBERS = [(name, value) for name, word, out in NUMBERS for value in (word, out)]


@pytest.mark.parametrize(("name", "value"), BAD_NUMBERS)
def test_every_number_is_checked_at_start(name: str, value: str) -> None:
    """`RETRIES=-1` used to start and fail every read ("unreachable"); `OUTPUT_CAP=25k`, a traceback."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r} is not a ") and "\n" not in message
    assert "set one, or unset it" in message


def test_every_bad_value_is_told_at_once_one_line_each() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"MCP_CLOUDOPS_OUTPUT_CAP": "25k", "MCP_CLOUDOPS_READ_TIMEOUT": "soon"})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and {line.split("=")[0] for line in lines} == {
        "MCP_CLOUDOPS_OUTPUT_CAP",
        "MCP_CLOUDOPS_READ_TIMEOUT",
    }


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("MCP_CLOUDOPS_RETRIES", "0", 0), ("MCP_CLOUDOPS_RETRY_AFTER_CAP", "0", 0.0),
     ("MCP_CLOUDOPS_OUTPUT_CAP", "1000", 1000), ("MCP_CLOUDOPS_READ_TIMEOUT", " 2.5 ", 2.5)],
)  # fmt: skip
def test_the_edges_of_each_range_are_accepted(name: str, value: str, expected: float) -> None:
    settings = Settings.from_env({name: value})
    assert getattr(settings, name.removeprefix("MCP_CLOUDOPS_").lower()) == expected


def test_a_per_provider_timeout_overrides_and_is_checked() -> None:
    exoscale = load_registry().providers["exoscale"]
    settings = Settings.from_env({"MCP_CLOUDOPS_EXOSCALE_READ_TIMEOUT": "90", "MCP_CLOUDOPS_CONNECT_TIMEOUT": "2"})
    assert settings.timeouts(exoscale) == (2.0, 90.0)
    with pytest.raises(ConfigError, match="MCP_CLOUDOPS_EXOSCALE_READ_TIMEOUT='x'"):  # built by hand, unchecked
        Settings({"MCP_CLOUDOPS_EXOSCALE_READ_TIMEOUT": "x"}).timeouts(exoscale)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [("MCP_CLOUDOPS_LOG_LEVEL", "loud", "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
     ("MCP_CLOUDOPS_REGISTRY", "/nonexistent/tools.yaml", "is not a readable file (no such file or directory)")],
)  # fmt: skip
def test_words_and_paths_are_checked_at_start(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(f"{name}={value!r} is not") and says in str(caught.value)


@pytest.mark.parametrize("value", [",", " , ,", "good-token,bad\x01token"])
def test_an_http_token_a_client_cannot_send_is_refused_without_quoting_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"MCP_CLOUDOPS_HTTP_TOKEN": value})
    message = str(caught.value)
    assert message.startswith("MCP_CLOUDOPS_HTTP_TOKEN is not ") and "good-token" not in message


def test_a_flag_is_named_beside_its_variable() -> None:
    name = "MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: "x"}, {name: "--http-idle-timeout"})
    assert str(caught.value) == (
        "MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT='x' (from --http-idle-timeout) is not a number of seconds > 0: set one, "
        "or leave the flag out for the default (15)"
    )
