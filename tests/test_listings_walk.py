"""Issue 11, item 4: a listing can be walked completely through the output cap. Following only what each
result says (its `truncated.next_call` after a cut, else the upstream's next page or cursor) reaches every
item that a walk with small pages and no cut reaches, for every paged tool of the sandbox.

Each call goes the way the server sends it: arguments validated (defaults filled), upstream call,
redaction, then `cap` with the call's arguments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import nirvana, portainer
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

REGISTRY = load_registry()
SMALL_CAP = "4000"
MAX_CALLS = 300  # a walk that loops forever fails instead

# tool, arguments of the walk through the cap, the list in its result, a page size small enough never to be cut
LISTINGS = [
    ("list-instance-images", {}, "images", {"per_page": 2}),
    ("list-scaleway-snapshots", {}, "snapshots", {"per_page": 2}),
    ("list-nirvana-projects", {"limit": 100}, "items", {"limit": 3}),
    ("list-nirvana-operations", {"project_id": nirvana.PROJECT_MAIN, "limit": 100}, "items", {"limit": 3}),
    ("list-portainer-environments", {}, "result", {"limit": 3}),
]
EXTRA = 40  # items added where the seed's listing fits the small cap whole


def grow(sandbox: Sandbox) -> None:
    """More Nirvana projects and Portainer environments than one small-capped result holds."""
    sim = sandbox["nirvana"]
    model = sim.projects[nirvana.PROJECT_MAIN]
    for n in range(EXTRA):
        project_id = f"b7f3e2a0-5d1c-4e8f-9a6b-{n + 1:012x}"
        sim.projects[project_id] = {**model, "id": project_id, "name": f"team-{n:02d}", "tags": ["team"]}
    endpoints = sandbox["portainer"].endpoints
    for n in range(3, 3 + EXTRA):
        endpoints[n] = portainer.Endpoint(n, f"edge-{n}", portainer.DOCKER, f"tcp://10.0.0.{n}:9001")


class Caller:
    """Calls a tool through the MCP client, as an agent does; counts the calls and the cuts."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = 0
        self.cuts = 0

    async def __call__(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        with anyio.fail_after(30):
            answered = await self.client.call_tool(name, arguments)
        assert not answered.is_error, answered.content[0].text
        result = answered.structured_content
        self.calls += 1
        self.cuts += "truncated" in result
        assert self.calls <= MAX_CALLS, f"{name}: no end after {MAX_CALLS} calls"
        return result


@asynccontextmanager
async def caller(sandbox: Sandbox, output_cap: str) -> AsyncIterator[Caller]:
    settings = Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_OUTPUT_CAP": output_cap})
    async with Client(build_server(settings)) as client:
        yield Caller(client)


def next_arguments(arguments: dict[str, Any], result: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The next call's arguments, read only from the result; None at the end of the listing."""
    if "truncated" in result:
        assert "next_call" in result["truncated"], result["truncated"]  # a cut listing always says how to go on
        return arguments | result["truncated"]["next_call"]
    if result.get("next_page"):  # page/per_page: the Link header's next page
        return arguments | {"page": result["next_page"]}
    if (result.get("pagination") or {}).get("next_cursor"):  # cursor/limit
        return arguments | {"cursor": result["pagination"]["next_cursor"]}
    if "total_count" in result and arguments.get("limit"):  # start/limit: Portainer counts from 1
        start = int(arguments.get("start") or 1)
        if start - 1 + len(result[key]) < result["total_count"]:
            return arguments | {"start": start + len(result[key])}
    return None


async def walk(call: Caller, name: str, arguments: dict[str, Any], key: str) -> list[str]:
    """Every id the listing yields, following the results from `arguments` to the end."""
    ids: list[str] = []
    step: dict[str, Any] | None = arguments
    while step is not None:
        result = await call(name, step)
        ids += [str(item.get("id", item.get("Id"))) for item in result[key]]
        step = next_arguments(step, result, key)
    return ids


@pytest.mark.parametrize(("name", "fixed", "key", "small_pages"), LISTINGS, ids=[row[0] for row in LISTINGS])
async def test_a_listing_walked_through_the_cap_misses_nothing(
    sandbox: Sandbox, name: str, fixed: dict[str, Any], key: str, small_pages: dict[str, Any]
) -> None:
    grow(sandbox)
    async with caller(sandbox, "100000000") as uncut:
        expected = await walk(uncut, name, {**fixed, **small_pages}, key)
        assert uncut.cuts == 0 and uncut.calls > 1  # small pages, really paged, never cut
    async with caller(sandbox, SMALL_CAP) as capped:
        seen = await walk(capped, name, dict(fixed), key)
    assert capped.cuts > 0, f"{name}: the default page fits {SMALL_CAP} characters, the walk proves nothing"
    if REGISTRY.by_name[name].pages.style != "cursor":  # a cursor resumes at its page's start: items again
        assert len(seen) == len(set(seen))  # nothing twice either
    assert set(seen) == set(expected) and len(expected) > 1


async def test_the_default_images_listing_is_walked_whole_at_the_default_cap(sandbox: Sandbox) -> None:
    """The user's report: 38 of 63 images seen following next_page at the default cap and page size."""
    async with caller(sandbox, "25000") as call:
        seen = await walk(call, "list-instance-images", {}, "images")
        assert call.cuts > 0
    async with caller(sandbox, "100000000") as uncut:
        everything = await walk(uncut, "list-instance-images", {"per_page": 100}, "images")
    assert sorted(seen) == sorted(everything)
