"""list-nirvana-projects, the companion that gives list-nirvana-operations its project_id: the request is the
one Nirvana's SDKs send and its cursor pages cover every project once. An agent with no ids getting from a
listed project to one of its operations is in test_agent_tasks.py."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from support import call

from mcp_cloudops.sandbox import credentials, nirvana
from mcp_cloudops.sandbox.runner import Sandbox

pytestmark = pytest.mark.anyio

PROJECT_KEYS = {"id", "name", "tags", "created_at", "updated_at", "resources"}


async def test_answer_shape(client: Client) -> None:
    answer = await call(client, "list-nirvana-projects", {})
    assert set(answer) == {"items", "pagination"}
    assert set(answer["pagination"]) == {"next_cursor", "previous_cursor", "total_count"}
    assert answer["pagination"]["total_count"] == len(answer["items"]) == len(nirvana.SEED_PROJECTS)
    for project in answer["items"]:
        assert set(project) == PROJECT_KEYS
        assert set(project["resources"]["cloud"]) >= {"vms", "volumes", "vpcs", "nks_clusters", "nks_node_pools"}
        assert set(project["resources"]["blockchain"]) == {"rpc_nodes_dedicated", "rpc_nodes_flex"}


async def test_request_is_the_sdks(sandbox: Sandbox, client: Client) -> None:
    """GET /v1/projects with only cursor and limit, as nirvana-go's Projects.List sends them, and the bearer key."""
    sim = sandbox["nirvana"]
    first = await call(client, "list-nirvana-projects", {"limit": 3})
    request = sim.requests[-1]
    assert (request.method, request.path, request.query, request.body) == ("GET", "/v1/projects", {"limit": ["3"]}, b"")
    assert request.headers["authorization"] == f"Bearer {credentials.NIRVANA_LABS_API_KEY}"

    cursor = first["pagination"]["next_cursor"]
    await call(client, "list-nirvana-projects", {"cursor": cursor, "limit": 3})
    assert sim.requests[-1].query == {"cursor": [cursor], "limit": ["3"]}
    await call(client, "list-nirvana-projects", {})
    assert sim.requests[-1].raw_query == ""


async def test_walking_every_cursor_lists_each_project_once(client: Client) -> None:
    seen: list[str] = []
    args: dict[str, Any] = {"limit": 2}
    while True:
        answer = await call(client, "list-nirvana-projects", args)
        seen += [p["id"] for p in answer["items"]]
        if not answer["pagination"]["next_cursor"]:
            break
        args = {"limit": 2, "cursor": answer["pagination"]["next_cursor"]}
    assert len(seen) == len(set(seen)) == len(nirvana.SEED_PROJECTS)
    assert set(seen) == {project[0] for project in nirvana.SEED_PROJECTS}
