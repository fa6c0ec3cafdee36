"""Hostile configuration: a boolean setting with a value we do not document must stop the server
with one line naming the variable, never start it with the permissive reading (finding 9)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import server_env

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
