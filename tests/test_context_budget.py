"""What tools/list costs an agent's context, kept under a budget so it cannot silently grow.

Budget: 900 bytes per tool on average (compact JSON, as the client receives it), no tool over
2,500, and every parameter still described. Raising it is a reviewed change to this file.
"""

from __future__ import annotations

import json

import pytest
from mcp import Client

from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
AVERAGE_BUDGET = 900
PER_TOOL_MAX = 2500


async def listed() -> list[dict]:
    async with Client(build_server(Settings.from_env({})), mode="legacy") as client:
        result = await client.list_tools()
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")["tools"]


def size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def test_tools_list_stays_within_budget() -> None:
    tools = await listed()
    average = size({"tools": tools}) / len(tools)
    assert average <= AVERAGE_BUDGET, f"tools/list averages {average:.0f} B/tool (budget {AVERAGE_BUDGET})"
    heavy = {t["name"]: size(t) for t in tools if size(t) > PER_TOOL_MAX}
    assert not heavy, f"tools over {PER_TOOL_MAX} B: {heavy}"


async def test_trimming_never_drops_a_description() -> None:
    for tool in await listed():
        assert len(tool["description"]) >= 60, tool["name"]
        for name, prop in tool["inputSchema"]["properties"].items():
            assert len(prop.get("description", "")) >= 8, f"{tool['name']}.{name}"
