"""zone "all" on a zonal listing (issue 22 item 5): every zone asked at once, merged in zone order with each
item's zone, failing and silent zones named, and a cut result saying where to resume."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import pytest
from fakes import HostileScaleway, serving
from mcp import Client
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_cloudops.registry import load_registry
from mcp_cloudops.registry_models import EVERY_ZONE
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.schema import input_schema

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()
SCALEWAY_ZONES = REGISTRY.providers["scaleway"].zones


def test_only_zonal_listings_take_every_zone() -> None:
    zonal = {tool.name for tool in REGISTRY.tools if tool.zonal}
    assert zonal == {
        "list-compute-instances",
        "list-exoscale-snapshots",
        "list-instance-images",
        "list-scaleway-snapshots",
    }
    for tool in REGISTRY.tools:
        for param in tool.params_in("zone"):
            zone = input_schema(tool, REGISTRY.provider_of(tool))["properties"][param.name]
            assert (EVERY_ZONE in zone["enum"]) == (tool.name in zonal), tool.name
            assert zone["description"].endswith('"all": every zone at once.') == (tool.name in zonal)


async def test_every_exoscale_zone_in_one_call(client: Client, sandbox: Sandbox) -> None:
    result = await client.call_tool("list-compute-instances", {"zone": "all"})
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert data["zones"] == list(REGISTRY.providers["exoscale"].zones) and "zone_errors" not in data
    assert {(i["name"], i["zone"]) for i in data["instances"]} >= {("web-1", "ch-gva-2"), ("db-1", "ch-gva-2")}
    zones = [i["zone"] for i in data["instances"]]
    assert zones == sorted(zones, key=REGISTRY.providers["exoscale"].zones.index)  # in zone order
    asked = {r.path.split("/")[1] for r in sandbox["exoscale"].requests if r.path.endswith("/instance")}
    assert asked == set(REGISTRY.providers["exoscale"].zones)  # one request a zone


async def test_one_zone_alone_is_answered_as_before(client: Client) -> None:
    result = await client.call_tool("list-compute-instances", {"zone": "ch-gva-2"})
    assert set(result.structured_content) == {"instances"}


def zone_of(request: Request) -> str:
    return request.url.path.split("/zones/")[1].split("/")[0]


async def test_failing_and_silent_zones_are_named_and_the_rest_answered() -> None:
    async def behave(sim: Any, request: Request) -> Response:
        zone = zone_of(request)
        if zone == "nl-ams-1":
            await anyio.sleep(30)  # never answers within the wait cap
        if zone == "pl-waw-1":
            return JSONResponse({"message": "zone unavailable", "type": "unavailable"}, status_code=503)
        return JSONResponse({"images": [{"id": f"image-{zone}", "name": f"in {zone}"}]}, headers={"X-Total-Count": "1"})

    scaleway = HostileScaleway()
    scaleway.behave = behave
    async with serving(scaleway, max_wait="2", retries="0") as (_, client):
        started = time.monotonic()
        with anyio.fail_after(20):
            result = await client.call_tool("list-instance-images", {"zone": "all"})
    assert time.monotonic() - started < 10
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert data["zones"] == [zone for zone in SCALEWAY_ZONES if zone not in ("nl-ams-1", "pl-waw-1")]
    assert [image["zone"] for image in data["images"]] == data["zones"]
    assert list(data["zone_errors"]) == ["nl-ams-1", "pl-waw-1"]
    assert data["zone_errors"]["nl-ams-1"] == "no answer within 2 s: call again with zone 'nl-ams-1' alone"
    assert "HTTP 503" in data["zone_errors"]["pl-waw-1"] and "zone unavailable" in data["zone_errors"]["pl-waw-1"]


async def test_a_cut_listing_of_every_zone_says_where_to_resume() -> None:
    async def behave(sim: Any, request: Request) -> Response:
        zone = zone_of(request)
        images = (
            [{"id": f"{zone}-{n}", "name": "x" * 300} for n in range(4)] if zone in ("fr-par-2", "nl-ams-2") else []
        )
        return JSONResponse({"images": images}, headers={"X-Total-Count": str(len(images))})

    scaleway = HostileScaleway()
    scaleway.behave = behave
    async with serving(scaleway, output_cap="2000") as (_, client):
        result = await client.call_tool("list-instance-images", {"zone": "all"})
    data = json.loads(result.content[0].text)
    kept = [image["id"] for image in data["images"]]
    assert kept and kept == [f"fr-par-2-{n}" for n in range(len(kept))]  # the first items, in zone order
    resume = data["truncated"]["next_call"]
    assert resume["zone"] == "fr-par-2"
    assert (resume["page"] - 1) * resume["per_page"] == len(kept)  # the first item cut begins that page
    assert "then each later zone that had items, alone (nl-ams-2)" in data["truncated"]["note"]
