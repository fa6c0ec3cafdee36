"""The Nirvana Labs operations simulator: bearer auth, cursor pagination, filters, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.nirvana import (
    OPERATION_DONE,
    OPERATION_FAILED,
    OPERATION_PENDING,
    OPERATION_RUNNING,
    PROJECT_MAIN,
    PROJECT_OTHER,
    SEED_PROJECTS,
    NirvanaSimulator,
    encode_cursor,
    parse_list_query,
)
from mcp_cloudops.sandbox.runner import run_sandbox

pytestmark = pytest.mark.anyio


OPERATION_KEYS = {"id", "created_at", "details", "kind", "project_id", "resource_id", "status", "type", "updated_at"}
PROJECT_KEYS = {"id", "created_at", "name", "resources", "tags", "updated_at"}


@asynccontextmanager
async def nirvana() -> AsyncIterator[tuple[NirvanaSimulator, httpx.AsyncClient]]:
    sim = NirvanaSimulator()
    async with run_sandbox([sim]) as sandbox:
        env = sandbox.env
        assert env["NIRVANA_LABS_API_KEY"] == credentials.NIRVANA_LABS_API_KEY
        async with httpx.AsyncClient(
            base_url=env["NIRVANA_LABS_BASE_URL"],
            headers={"Authorization": f"Bearer {env['NIRVANA_LABS_API_KEY']}"},
            timeout=5,
        ) as client:
            yield sim, client


async def list_all(client: httpx.AsyncClient, path: str = "/v1/operations", **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor like the SDKs do: same query, plus the cursor."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            return items


async def test_auth_is_required() -> None:
    with anyio.fail_after(10):
        async with nirvana() as (sim, client):
            missing = await client.get(
                "/v1/operations", params={"project_id": PROJECT_MAIN}, headers={"Authorization": ""}
            )
            assert missing.status_code == 401 and isinstance(missing.json()["message"], str)
            wrong = await client.get(f"/v1/operations/{OPERATION_DONE}", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["message"]
            assert sim.recorder.last().headers["authorization"] == "Bearer nope"


async def test_cursor_pagination_walks_every_operation_once() -> None:
    with anyio.fail_after(10):
        async with nirvana() as (sim, client):
            first = await client.get("/v1/operations", params={"project_id": PROJECT_MAIN})
            body = first.json()
            assert set(body) == {"items", "pagination"}
            assert len(body["items"]) == 10 and set(body["items"][0]) == OPERATION_KEYS
            assert body["pagination"]["total_count"] == 36 and body["pagination"]["previous_cursor"] is None
            assert body["items"][0]["id"] == OPERATION_RUNNING  # newest first

            second = await client.get(
                "/v1/operations", params={"project_id": PROJECT_MAIN, "cursor": body["pagination"]["next_cursor"]}
            )
            back = second.json()["pagination"]["previous_cursor"]
            assert back
            again = await client.get("/v1/operations", params={"project_id": PROJECT_MAIN, "cursor": back})
            assert again.json()["items"] == body["items"]

            main = await list_all(client, project_id=PROJECT_MAIN, limit=7)
            assert len(main) == len({op["id"] for op in main}) == 36
            assert all(op["project_id"] == PROJECT_MAIN for op in main)
            assert main[-1]["id"] == OPERATION_DONE
            other = await list_all(client, project_id=PROJECT_OTHER, limit=100)
            assert len(other) == 24

            last = await client.get("/v1/operations", params={"project_id": PROJECT_OTHER, "limit": 24})
            assert last.json()["pagination"]["next_cursor"] is None
            assert "cursor=" not in sim.requests[0].raw_query and "cursor=" in sim.requests[1].raw_query


async def test_filters_and_sort() -> None:
    with anyio.fail_after(10):
        async with nirvana() as (_sim, client):
            failed = await list_all(client, project_id=PROJECT_OTHER, status="failed")
            assert OPERATION_FAILED in {op["id"] for op in failed}
            assert all(op["status"] == "failed" for op in failed)
            vms = await list_all(client, project_id=PROJECT_MAIN, kind="vm", type="create")
            assert vms and all((op["kind"], op["type"]) == ("vm", "create") for op in vms)
            resource = vms[0]["resource_id"]
            by_resource = await list_all(client, project_id=PROJECT_MAIN, resource_id=resource)
            assert {op["resource_id"] for op in by_resource} == {resource}
            oldest = await client.get(
                "/v1/operations", params={"project_id": PROJECT_MAIN, "sort": "created_at", "limit": 1}
            )
            assert oldest.json()["items"][0]["id"] == OPERATION_DONE
            window = await list_all(
                client,
                project_id=PROJECT_MAIN,
                created_at_min="2025-01-01T10:00:00Z",
                created_at_max="2025-01-01T12:00:00Z",
            )
            assert window and all("2025-01-01T10:00:00Z" <= op["created_at"] <= "2025-01-01T12:00:00Z" for op in window)


async def test_get_one_and_errors() -> None:
    with anyio.fail_after(10):
        async with nirvana() as (sim, client):
            got = await client.get(f"/v1/operations/{OPERATION_PENDING}")
            assert got.status_code == 200
            op = got.json()
            assert set(op) == OPERATION_KEYS and op["status"] == "pending" and op["project_id"] == PROJECT_OTHER
            updated = (await client.get(f"/v1/operations/{OPERATION_DONE}")).json()
            assert updated["type"] == "update" and set(updated["details"]["changes"]["size"]) == {"from", "to"}

            missing = await client.get("/v1/operations/00000000-0000-4000-8000-000000000000")
            assert missing.status_code == 404 and isinstance(missing.json()["message"], str)

            for params in (
                {},
                {"project_id": PROJECT_MAIN, "cursor": "garbage!"},
                {"project_id": PROJECT_MAIN, "limit": 0},
                {"project_id": PROJECT_MAIN, "limit": "ten"},
                {"project_id": PROJECT_MAIN, "status": "finished"},
                {"project_id": PROJECT_MAIN, "sort": "name"},
                {"project_id": PROJECT_MAIN, "page": 2},
            ):
                response = await client.get("/v1/operations", params=params)
                assert response.status_code == 400, params
                assert isinstance(response.json()["message"], str)

            foreign = encode_cursor(parse_list_query([("project_id", PROJECT_OTHER)]), 10)
            mixed = await client.get("/v1/operations", params={"project_id": PROJECT_MAIN, "cursor": foreign})
            assert (mixed.status_code, mixed.json()) == (400, {"message": "invalid cursor"})

            sim.rate_limit_next(retry_after=3)
            limited = await client.get(f"/v1/operations/{OPERATION_DONE}")
            assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")

            added = sim.add_operation(kind="volume", type="delete")
            assert (await client.get(f"/v1/operations/{added['id']}")).json()["status"] == "pending"
            sim.set_status(added["id"], "done")
            assert (await client.get(f"/v1/operations/{added['id']}")).json()["status"] == "done"


async def test_projects_page_by_cursor_and_match_the_operations() -> None:
    with anyio.fail_after(10):
        async with nirvana() as (sim, client):
            first = (await client.get("/v1/projects", params={"limit": 3})).json()
            assert set(first) == {"items", "pagination"} and len(first["items"]) == 3
            assert set(first["items"][0]) == PROJECT_KEYS
            assert set(first["items"][0]["resources"]) == {"blockchain", "cloud"}
            assert first["pagination"]["total_count"] == len(SEED_PROJECTS) == 7
            assert first["pagination"]["previous_cursor"] is None and first["pagination"]["next_cursor"]
            created = [p["created_at"] for p in first["items"]]
            assert created == sorted(created, reverse=True)  # newest first, as the operations

            projects = await list_all(client, "/v1/projects", limit=2)
            assert len(projects) == len({p["id"] for p in projects}) == 7
            assert "limit=2" in sim.requests[-1].raw_query and "cursor=" in sim.requests[-1].raw_query
            listed = {p["id"]: p for p in projects}
            assert {op["project_id"] for op in sim.operations.values()} <= set(listed)
            main = listed[PROJECT_MAIN]
            vm_ids = {op["resource_id"] for op in await list_all(client, project_id=PROJECT_MAIN, kind="vm")}
            deleted = {
                op["resource_id"] for op in await list_all(client, project_id=PROJECT_MAIN, kind="vm", type="delete")
            }
            assert main["resources"]["cloud"]["vms"] == len(vm_ids - deleted) > 0
            assert all(
                p["resources"]["cloud"]["vms"] == 0 for p in projects if p["id"] not in (PROJECT_MAIN, PROJECT_OTHER)
            )


async def test_project_filters_sort_and_errors() -> None:
    with anyio.fail_after(10):
        async with nirvana() as (_sim, client):
            assert [p["name"] for p in await list_all(client, "/v1/projects", tags="prod")] == [
                "rpc-mainnet",
                "production",
            ]
            assert [p["name"] for p in await list_all(client, "/v1/projects", name="SANDBOX", sort="name")] == [
                "sandbox-alice",
                "sandbox-bob",
            ]
            for params in ({"limit": 101}, {"sort": "size"}, {"project_id": PROJECT_MAIN}, {"cursor": "garbage!"}):
                response = await client.get("/v1/projects", params=params)
                assert response.status_code == 400 and isinstance(response.json()["message"], str), params
            operations = (await client.get("/v1/operations", params={"project_id": PROJECT_MAIN})).json()
            foreign = await client.get("/v1/projects", params={"cursor": operations["pagination"]["next_cursor"]})
            assert (foreign.status_code, foreign.json()) == (400, {"message": "invalid cursor"})
            unauthenticated = await client.get("/v1/projects", headers={"Authorization": ""})
            assert unauthenticated.status_code == 401
