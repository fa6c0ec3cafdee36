"""list-scaleway-snapshots, the companion that gives create-instance-image its root_volume: the request is
the one Scaleway's SDK sends and its pages cover every snapshot once. An agent with no ids getting from a
listed snapshot to an image and back is in test_agent_tasks.py."""

from __future__ import annotations

import pytest
from mcp import Client
from support import call

from mcp_cloudops.sandbox import credentials, scaleway
from mcp_cloudops.sandbox.runner import Sandbox

pytestmark = pytest.mark.anyio

SNAPSHOTS = "/instance/v1/zones/fr-par-1/snapshots"
SNAPSHOT_KEYS = {
    "id",
    "name",
    "organization",
    "project",
    "tags",
    "volume_type",
    "size",
    "state",
    "base_volume",
    "creation_date",
    "modification_date",
    "zone",
}


def own_snapshots(sim: scaleway.ScalewaySimulator, zone: str) -> set[str]:
    return {s["id"] for s in sim.snapshots.values() if s["zone"] == zone}


async def test_answer_shape_and_paging_fields(sandbox: Sandbox, client: Client) -> None:
    answer = await call(client, "list-scaleway-snapshots", {})
    assert set(answer) == {"snapshots", "total_count"}  # one page holds them all: no next_page
    assert answer["total_count"] == len(answer["snapshots"]) == len(own_snapshots(sandbox["scaleway"], "fr-par-1"))
    for snapshot in answer["snapshots"]:
        assert set(snapshot) >= SNAPSHOT_KEYS and set(snapshot["base_volume"]) == {"id", "name"}
        assert snapshot["zone"] == "fr-par-1"
    paged = await call(client, "list-scaleway-snapshots", {"zone": "nl-ams-1", "per_page": 3})
    assert (len(paged["snapshots"]), paged["total_count"], paged["next_page"]) == (3, 4, 2)


async def test_request_is_the_sdks(sandbox: Sandbox, client: Client) -> None:
    """Same path and query names as scaleway-sdk-python's InstanceV1API.list_snapshots; no body; the token."""
    sim = sandbox["scaleway"]
    volume = next(iter(sim.snapshots.values()))["base_volume"]["id"]
    args = {
        "zone": "fr-par-1",
        "name": "web",
        "project": scaleway.SANDBOX_PROJECT,
        "organization": scaleway.SANDBOX_ORGANIZATION,
        "base_volume_id": volume,
        "tags": "nightly,web",
        "page": 1,
        "per_page": 10,
    }
    await call(client, "list-scaleway-snapshots", args)
    request = sim.requests[-1]
    assert (request.method, request.path, request.body) == ("GET", SNAPSHOTS, b"")
    assert request.query == {name: [str(value)] for name, value in args.items() if name != "zone"}
    assert request.headers["x-auth-token"] == credentials.SCW_SECRET_KEY

    await call(client, "list-scaleway-snapshots", {"zone": "pl-waw-1"})
    bare = sim.requests[-1]  # only per_page, the schema's default (the API's own: the same answer as without)
    assert (bare.path, bare.raw_query) == ("/instance/v1/zones/pl-waw-1/snapshots", "per_page=50")


async def test_walking_every_page_lists_each_snapshot_once(sandbox: Sandbox, client: Client) -> None:
    seen: list[str] = []
    page: int | None = 1
    while page is not None:
        answer = await call(client, "list-scaleway-snapshots", {"per_page": 7, "page": page})
        seen += [s["id"] for s in answer["snapshots"]]
        assert answer["total_count"] == 30
        page = answer.get("next_page")
    assert len(seen) == len(set(seen)) == 30
    assert set(seen) == own_snapshots(sandbox["scaleway"], "fr-par-1")
    assert [r.query["page"] for r in sandbox["scaleway"].requests] == [["1"], ["2"], ["3"], ["4"], ["5"]]
