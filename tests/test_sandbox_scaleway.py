"""The Scaleway images simulator: auth, zones, pagination headers, CRUD and error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.runner import run_sandbox
from mcp_cloudops.sandbox.scaleway import (
    IMAGE_IN_USE,
    IMAGE_PRIVATE,
    IMAGE_PRIVATE_AMS,
    SANDBOX_ORGANIZATION,
    SANDBOX_PROJECT,
    SANDBOX_PROJECT_2,
    SCALEWAY_ORGANIZATION,
    SNAPSHOT_FR_PAR_1,
    SNAPSHOT_FR_PAR_1_DATA,
    SNAPSHOT_NL_AMS_1,
    SNAPSHOTS_PER_ZONE,
    ScalewaySimulator,
    link_header,
)

pytestmark = pytest.mark.anyio


IMAGE_KEYS = {
    "id",
    "name",
    "arch",
    "creation_date",
    "modification_date",
    "default_bootscript",
    "extra_volumes",
    "from_server",
    "organization",
    "project",
    "public",
    "root_volume",
    "state",
    "tags",
    "zone",
}
IMAGES = "/instance/v1/zones/fr-par-1/images"
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
    "error_reason",
    "zone",
}
SNAPSHOTS = "/instance/v1/zones/fr-par-1/snapshots"


@asynccontextmanager
async def scaleway() -> AsyncIterator[tuple[ScalewaySimulator, httpx.AsyncClient]]:
    sim = ScalewaySimulator()
    async with run_sandbox([sim]) as sandbox:
        env = sandbox.env
        assert env == {"SCW_API_URL": sandbox.addresses["scaleway"], "SCW_SECRET_KEY": credentials.SCW_SECRET_KEY}
        async with httpx.AsyncClient(
            base_url=env["SCW_API_URL"],
            headers={"X-Auth-Token": env["SCW_SECRET_KEY"]},
            timeout=5,
        ) as client:
            yield sim, client


def links(response: httpx.Response) -> dict[str, str]:
    """rel -> URL from the Link header."""
    result = {}
    for part in response.headers["link"].split(","):
        url, rel = part.split(";")
        result[rel.strip().removeprefix('rel="').removesuffix('"')] = url.strip()[1:-1]
    return result


async def test_auth_and_zone_errors() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (sim, client):
            missing = await client.get(IMAGES, headers={"X-Auth-Token": ""})
            assert missing.status_code == 401
            assert missing.json()["type"] == "denied_authentication" and missing.json()["message"]
            wrong = await client.get(IMAGES, headers={"X-Auth-Token": "00000000-0000-4000-8000-000000000000"})
            assert (wrong.status_code, wrong.json()["reason"]) == (401, "not_found")

            zone = await client.get("/instance/v1/zones/us-east-1/images")
            assert (zone.status_code, zone.json()) == (400, {"message": "Unknown zone in path"})

            assert sim.requests[0].headers["x-auth-token"] == ""
            assert sim.recorder.last().path == "/instance/v1/zones/us-east-1/images"


async def test_pagination_headers_and_pages() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (_sim, client):
            first = await client.get(IMAGES, params={"public": "true"})
            assert first.status_code == 200
            total = int(first.headers["x-total-count"])
            assert total == 60 and len(first.json()["images"]) == 50
            assert set(first.json()) == {"images"}
            assert set(first.json()["images"][0]) == IMAGE_KEYS
            rels = links(first)
            assert set(rels) == {"first", "next", "last"}
            assert rels["next"] == f"{IMAGES}?page=2&per_page=50&public=true"

            second = await client.get(rels["next"])
            assert len(second.json()["images"]) == 10
            assert set(links(second)) == {"first", "previous", "last"}
            seen = {i["id"] for i in first.json()["images"]} | {i["id"] for i in second.json()["images"]}
            assert len(seen) == 60

            past = await client.get(IMAGES, params={"page": 3})
            assert (past.status_code, past.json()) == (200, {"images": []})
            assert past.headers["x-total-count"] == "63"

            small = await client.get(IMAGES, params={"per_page": 100})
            assert len(small.json()["images"]) == 63 and set(links(small)) == {"first", "last"}

            too_big = await client.get(IMAGES, params={"per_page": 101, "page": 0, "public": "yes"})
            assert too_big.status_code == 400
            body = too_big.json()
            assert (body["type"], body["message"]) == ("invalid_request_error", "Validation Error")
            assert set(body["fields"]) == {"per_page", "page", "public"}
            assert all(isinstance(v, list) for v in body["fields"].values())


def test_link_header_is_pure() -> None:
    header = link_header("/p", [("arch", "arm64")], page=1, per_page=10, total=0)
    assert header == '</p?page=1&per_page=10&arch=arm64>; rel="first",</p?page=1&per_page=10&arch=arm64>; rel="last"'


async def test_filters() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (_sim, client):

            async def ids(**params: Any) -> set[str]:
                response = await client.get(IMAGES, params={"per_page": 100, **params})
                assert response.status_code == 200, response.text
                return {i["id"] for i in response.json()["images"]}

            private = await ids(public="false")
            assert IMAGE_PRIVATE in private and IMAGE_IN_USE in private and len(private) == 3
            assert await ids(project=SANDBOX_PROJECT, public="false") == {IMAGE_PRIVATE, IMAGE_IN_USE}
            assert len(await ids(organization=SCALEWAY_ORGANIZATION)) == 60
            assert await ids(tags="golden,prod") == {IMAGE_IN_USE}
            arm = await client.get(IMAGES, params={"arch": "arm64", "name": "noble"})
            assert {(i["arch"], i["name"]) for i in arm.json()["images"]} == {("arm64", "Ubuntu 24.04 Noble Numbat")}
            ams = await client.get("/instance/v1/zones/nl-ams-1/images", params={"public": "false"})
            assert [i["id"] for i in ams.json()["images"]] == [IMAGE_PRIVATE_AMS]


async def test_create_get_patch_put_delete() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (sim, client):
            body = {"name": "my-image", "root_volume": SNAPSHOT_FR_PAR_1, "arch": "x86_64", "project": SANDBOX_PROJECT}
            created = await client.post(
                IMAGES, json={**body, "tags": ["a"], "extra_volumes": {"1": {"id": SNAPSHOT_FR_PAR_1_DATA}}}
            )
            assert created.status_code == 201, created.text
            image = created.json()["image"]
            assert set(image) == IMAGE_KEYS and image["state"] == "available" and image["zone"] == "fr-par-1"
            assert image["root_volume"]["id"] == SNAPSHOT_FR_PAR_1 and image["public"] is False
            assert image["extra_volumes"]["1"]["id"] == SNAPSHOT_FR_PAR_1_DATA
            assert image["organization"] == SANDBOX_ORGANIZATION
            assert sim.recorder.last("POST").json()["name"] == "my-image"
            path = f"{IMAGES}/{image['id']}"

            got = await client.get(path)
            assert got.json() == {"image": image}

            patched = await client.patch(path, json={"name": "renamed", "tags": ["b", "c"]})
            assert patched.status_code == 200
            assert (patched.json()["image"]["name"], patched.json()["image"]["tags"]) == ("renamed", ["b", "c"])
            assert patched.json()["image"]["arch"] == "x86_64"
            assert (await client.patch(path, json={"root_volume": SNAPSHOT_FR_PAR_1})).status_code == 400

            partial = await client.put(path, json={"name": "only-a-name"})
            assert partial.status_code == 400
            assert {"arch", "root_volume", "public", "extra_volumes"} <= set(partial.json()["fields"])
            whole = {**patched.json()["image"], "name": "replaced", "tags": [], "extra_volumes": {}}
            replaced = await client.put(path, json=whole)
            assert replaced.status_code == 200, replaced.text
            assert replaced.json()["image"]["tags"] == [] and replaced.json()["image"]["extra_volumes"] == {}
            moved = await client.put(path, json={**whole, "root_volume": {"id": SNAPSHOT_FR_PAR_1_DATA}})
            assert "root_volume" in moved.json()["fields"]

            deleted = await client.delete(path)
            assert (deleted.status_code, deleted.content) == (204, b"")
            gone = await client.get(path)
            assert gone.status_code == 404
            assert gone.json() == {"type": "unknown_resource", "message": f'"{image["id"]}" not found'}


async def test_create_validation_and_conflicts() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (_sim, client):
            missing = await client.post(IMAGES, json={"name": "x"})
            assert missing.status_code == 400
            assert missing.json()["fields"]["root_volume"] == ["required key not provided"]
            assert {"arch", "project"} <= set(missing.json()["fields"])

            bad = await client.post(
                IMAGES,
                json={"name": "x", "root_volume": "nope", "arch": "mips", "project": SANDBOX_PROJECT, "colour": 1},
            )
            assert bad.json()["fields"] == {
                "root_volume": ["nope is not a valid UUID."],
                "arch": ["value must be one of ['x86_64', 'arm', 'arm64']"],
                "colour": ["extra keys not allowed"],
            }

            base = {"name": "x", "root_volume": SNAPSHOT_NL_AMS_1, "arch": "arm64"}
            other_zone = await client.post(IMAGES, json={**base, "project": SANDBOX_PROJECT})
            assert (other_zone.status_code, other_zone.json()["type"]) == (404, "unknown_resource")
            by_org = await client.post(
                "/instance/v1/zones/nl-ams-1/images", json={**base, "organization": SANDBOX_ORGANIZATION}
            )
            assert by_org.status_code == 201 and by_org.json()["image"]["project"] == SANDBOX_PROJECT
            second_project = await client.post(
                "/instance/v1/zones/nl-ams-1/images", json={**base, "project": SANDBOX_PROJECT_2}
            )
            assert second_project.status_code == 201
            foreign = await client.post(
                IMAGES, json={**base, "root_volume": SNAPSHOT_FR_PAR_1, "project": SCALEWAY_ORGANIZATION}
            )
            assert foreign.status_code == 403

            in_use = await client.delete(f"{IMAGES}/{IMAGE_IN_USE}")
            assert in_use.status_code == 409 and in_use.json()["type"] == "conflict"
            public_id = (await client.get(IMAGES, params={"public": "true", "per_page": 1})).json()["images"][0]["id"]
            assert (await client.delete(f"{IMAGES}/{public_id}")).status_code == 403
            assert (await client.get(f"{IMAGES}/not-a-uuid")).status_code == 400
            assert (await client.get(f"/instance/v1/zones/fr-par-2/images/{IMAGE_PRIVATE}")).status_code == 404


async def test_injected_faults() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (sim, client):
            sim.rate_limit_next(retry_after=2)
            limited = await client.get(IMAGES)
            assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
            sim.fail_next(500, {"message": "internal error"})
            assert (await client.get(IMAGES)).json() == {"message": "internal error"}
            assert (await client.get(IMAGES)).status_code == 200


async def test_snapshots_page_like_images() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (_sim, client):
            first = await client.get(SNAPSHOTS, params={"per_page": 20})
            assert first.status_code == 200 and set(first.json()) == {"snapshots"}
            assert first.headers["x-total-count"] == str(SNAPSHOTS_PER_ZONE["fr-par-1"]) == "30"
            snapshot = first.json()["snapshots"][0]
            assert set(snapshot) == SNAPSHOT_KEYS and set(snapshot["base_volume"]) == {"id", "name"}
            assert (snapshot["zone"], snapshot["state"], snapshot["organization"]) == (
                "fr-par-1",
                "available",
                SANDBOX_ORGANIZATION,
            )
            assert links(first) == {
                "first": f"{SNAPSHOTS}?page=1&per_page=20",
                "next": f"{SNAPSHOTS}?page=2&per_page=20",
                "last": f"{SNAPSHOTS}?page=2&per_page=20",
            }
            second = await client.get(links(first)["next"])
            assert len(second.json()["snapshots"]) == 10 and set(links(second)) == {"first", "previous", "last"}
            ids = [s["id"] for s in first.json()["snapshots"] + second.json()["snapshots"]]
            assert len(ids) == len(set(ids)) == 30
            dates = [s["creation_date"] for s in first.json()["snapshots"] + second.json()["snapshots"]]
            assert dates == sorted(dates, reverse=True)  # newest first, as the images

            past = await client.get(SNAPSHOTS, params={"page": 2})
            assert (past.json(), past.headers["x-total-count"]) == ({"snapshots": []}, "30")
            none_here = await client.get("/instance/v1/zones/it-mil-1/snapshots")
            assert (none_here.json(), none_here.headers["x-total-count"]) == ({"snapshots": []}, "0")
            ams = await client.get("/instance/v1/zones/nl-ams-1/snapshots")
            assert SNAPSHOT_NL_AMS_1 in {s["id"] for s in ams.json()["snapshots"]}
            assert len(ams.json()["snapshots"]) == SNAPSHOTS_PER_ZONE["nl-ams-1"]


async def test_snapshot_filters_and_errors() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (_sim, client):

            async def listed(**params: Any) -> list[dict[str, Any]]:
                response = await client.get(SNAPSHOTS, params={"per_page": 100, **params})
                assert response.status_code == 200, response.text
                return response.json()["snapshots"]

            assert {s["project"] for s in await listed(project=SANDBOX_PROJECT_2)} == {SANDBOX_PROJECT_2}
            assert len(await listed(organization=SANDBOX_ORGANIZATION)) == 30
            assert await listed(organization=SCALEWAY_ORGANIZATION) == []  # the public images' snapshots are not ours
            web_1 = await listed(name="WEB-1-root")
            assert web_1 and {s["base_volume"]["name"] for s in web_1} == {"web-1-root"}
            by_volume = await listed(base_volume_id=web_1[0]["base_volume"]["id"])
            assert {s["id"] for s in by_volume} == {s["id"] for s in web_1}
            assert {s["base_volume"]["name"] for s in await listed(tags="nightly,prod")} == {"db-1-data"}

            bad = await client.get(SNAPSHOTS, params={"public": "true", "arch": "x86_64", "base_volume_id": "x"})
            assert (bad.status_code, bad.json()["type"]) == (400, "invalid_request_error")
            assert bad.json()["fields"] == {
                "public": ["extra keys not allowed"],
                "arch": ["extra keys not allowed"],
                "base_volume_id": ["x is not a valid UUID."],
            }
            images_only = await client.get(IMAGES, params={"base_volume_id": web_1[0]["base_volume"]["id"]})
            assert images_only.json()["fields"] == {"base_volume_id": ["extra keys not allowed"]}
            denied = await client.get(SNAPSHOTS, headers={"X-Auth-Token": "wrong"})
            assert (denied.status_code, denied.json()["reason"]) == (401, "invalid_argument")


async def test_every_private_image_root_is_a_listed_snapshot_and_any_listed_one_makes_an_image() -> None:
    with anyio.fail_after(10):
        async with scaleway() as (sim, client):
            private = [i for i in sim.images.values() if not i["public"]]
            for image in private:
                zone = image["zone"]
                listed = await client.get(f"/instance/v1/zones/{zone}/snapshots", params={"per_page": 100})
                assert image["root_volume"]["id"] in {s["id"] for s in listed.json()["snapshots"]}, image["name"]
            for snapshot in (await client.get(SNAPSHOTS, params={"per_page": 100})).json()["snapshots"]:
                body = {"name": "x", "root_volume": snapshot["id"], "arch": "x86_64", "project": snapshot["project"]}
                created = await client.post(IMAGES, json=body)
                assert created.status_code == 201, created.text
                root = created.json()["image"]["root_volume"]
                assert root == {k: snapshot[k] for k in ("id", "name", "size", "volume_type")}
