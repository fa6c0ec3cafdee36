"""What tools/list serves, kept as reviewed snapshots in tests/snapshots/: a change to any tool shows up in review.

The server is compared with files, not with the functions that build it, so a change in tools.yaml,
schema.py or the SDK that alters what a client sees fails here until the snapshot is regenerated
and the diff reviewed:

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tools_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
SNAPSHOTS = Path(__file__).parent / "snapshots"
REGENERATE = "UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tools_snapshot.py"
DIFF_LINES = 60


async def served(mode: str = "auto", env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Each tool exactly as a client receives it, and the instructions: no credentials needed to list."""
    async with Client(build_server(Settings.from_env(env or {})), mode=mode) as client:
        tools = (await client.list_tools()).tools
        instructions = client.instructions or ""
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools], instructions


def pretty(value: object, *, sort_keys: bool = False) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n"


def short_diff(expected: str, actual: str, fromfile: str, tofile: str) -> str:
    """A unified diff cut to DIFF_LINES lines: enough to see what moved without flooding the report."""
    lines = list(
        difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), fromfile=fromfile, tofile=tofile
        )
    )
    more = f"... {len(lines) - DIFF_LINES} more diff lines\n" if len(lines) > DIFF_LINES else ""
    return "".join(lines[:DIFF_LINES]) + more


def matches_snapshot(name: str, actual: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Fail with a diff and the command to regenerate; under UPDATE_SNAPSHOTS=1 write the file instead."""
    path = SNAPSHOTS / name
    expected = path.read_text(encoding="utf-8") if path.exists() else ""
    if actual == expected:
        return
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        with capsys.disabled():
            print(f"\nwrote tests/snapshots/{name}")
        return
    pytest.fail(
        f"tests/snapshots/{name} no longer matches what the server serves:\n"
        f"{short_diff(expected, actual, f'tests/snapshots/{name}', 'served')}\n"
        f"If the change is intended, regenerate and review the diff: {REGENERATE}",
        pytrace=False,
    )


async def test_tools_list_matches_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    """Snapshotted as the current protocol era serves it: the key order is the server's own."""
    tools, _ = await served()
    matches_snapshot("tools-list.json", pretty(tools), capsys)


async def test_instructions_match_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    """The instructions cost every conversation's context, like the tool list."""
    _, instructions = await served()
    matches_snapshot("instructions.txt", instructions + "\n", capsys)


async def test_read_only_tool_names_match_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    """Which tools --read-only serves is a security decision: a tool joining the set shows in review."""
    tools, _ = await served(env={"MCP_CLOUDOPS_READ_ONLY": "1"})
    matches_snapshot("tools-read-only.txt", "".join(f"{tool['name']}\n" for tool in tools), capsys)


async def test_legacy_era_serves_the_same_tools_and_instructions() -> None:
    """A 2025-11-25 client gets the snapshotted content too. Compared as data, not text: that era's
    wire model puts inputSchema's properties and required before type, which changes no meaning."""
    (current, current_instructions), (legacy, legacy_instructions) = await served(), await served("legacy")
    assert legacy_instructions == current_instructions, "the legacy era serves other instructions"
    if legacy != current:
        diff = short_diff(pretty(current, sort_keys=True), pretty(legacy, sort_keys=True), "current era", "legacy era")
        pytest.fail(f"the legacy era serves another tool list:\n{diff}", pytrace=False)


async def test_dynamic_mode_first_list_and_instructions_match_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    """What a --dynamic-toolsets session sees before it enables anything: the discovery tools."""
    tools, instructions = await served(env={"MCP_CLOUDOPS_DYNAMIC_TOOLSETS": "1"})
    matches_snapshot("tools-list-dynamic.json", pretty({"tools": tools, "instructions": instructions}), capsys)
