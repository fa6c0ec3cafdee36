"""snapshots.py: what a client is served, as tests/snapshots/ holds it. Whether the files are current is
test_mirrors.py's (every mirror at once); here, what the producers promise beyond their text."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import yaml

from mcp_cloudops import snapshots
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.snapshots import ASKING_CALLS, MirrorError, asking_calls, pretty, questions_text, served

pytestmark = pytest.mark.anyio
DIFF_LINES = 60


async def test_legacy_era_serves_the_same_tools_and_instructions() -> None:
    """A 2025-11-25 client gets the snapshotted content too. Compared as data, not text: that era's
    wire model puts inputSchema's properties and required before type, which changes no meaning."""
    registry = load_registry()
    (current, current_instructions), (legacy, legacy_instructions) = (
        await served(registry),
        await served(registry, mode="legacy"),
    )
    assert legacy_instructions == current_instructions, "the legacy era serves other instructions"
    if legacy != current:
        expected, actual = pretty(current, sort_keys=True), pretty(legacy, sort_keys=True)
        diff = list(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "current", "legacy"))
        pytest.fail(f"the legacy era serves another tool list:\n{''.join(diff[:DIFF_LINES])}", pytrace=False)


def test_asking_calls_must_name_exactly_the_tools_that_ask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool that starts to ask (or stops) without its call in asking_calls.yaml changed is named, with what to do."""
    calls = yaml.safe_load(ASKING_CALLS.read_text())
    del calls["delete-instance-image"]
    calls["list-instances"] = {}
    edited = tmp_path / "asking_calls.yaml"
    edited.write_text(yaml.safe_dump(calls))
    monkeypatch.setattr(snapshots, "ASKING_CALLS", edited)
    with pytest.raises(MirrorError) as refused:
        asking_calls(Sandbox(simulators={}, addresses={}), load_registry())
    assert str(refused.value) == (
        "asking_calls.yaml names no call of delete-instance-image; asking_calls.yaml names list-instances, which "
        "never ask: give each tool that asks one call, on a target the sandbox seeds"
    )


def test_made_up_ids_read_id_and_written_ones_stay() -> None:
    written = yaml.safe_load(ASKING_CALLS.read_text())["delete-compute-instance"]["id"]
    made_up, docker = "0b5e7c1a-3f2d-4e8a-9c61-7d0e5a1b2c3d", "ab" * 32
    text = questions_text({"delete-compute-instance": f"Delete {written}, not {made_up} nor {docker}."})
    assert text == f"## delete-compute-instance\nDelete {written}, not <id> nor <id>.\n"
