"""Portainer's companion tools find every id the websocket tools take, through an MCP client against
the sandbox: the requests they send, their answers and their errors. An agent that starts with no ids
running a command in a container and in a pod is in test_agent_tasks.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp import Client
from support import call, refused

from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.portainer import PortainerSimulator
from mcp_cloudops.sandbox.recorder import RecordedRequest
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

COMPANIONS = [
    "list-portainer-environments",
    "list-docker-containers",
    "list-kubernetes-namespaces",
    "list-kubernetes-pods",
    "create-docker-exec",
]
EXEC_BODY = {"AttachStdout": True, "AttachStderr": True}  # the tool's fixed fields, always sent


@dataclass(frozen=True)
class Case:
    """One call and the exact request Portainer must receive for it."""

    tool: str
    args: dict[str, Any]
    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    body: Any = None


WEB = PortainerSimulator(seed=True).container_ids["web"]  # seeded ids are the same in every simulator
CASES = [
    Case("list-portainer-environments", {}, "GET", "/api/endpoints", {"excludeSnapshots": ["true"]}),
    Case(
        "list-portainer-environments",
        {"search": "k8s", "start": 1, "limit": 10},
        "GET",
        "/api/endpoints",
        {"excludeSnapshots": ["true"], "search": ["k8s"], "start": ["1"], "limit": ["10"]},
    ),
    Case("list-docker-containers", {"endpointId": 1}, "GET", "/api/endpoints/1/docker/containers/json", {"all": ["1"]}),
    Case(
        "list-docker-containers",
        {"endpointId": 1, "filters": '{"status":["exited"]}'},
        "GET",
        "/api/endpoints/1/docker/containers/json",
        {"all": ["1"], "filters": ['{"status":["exited"]}']},
    ),
    Case("list-kubernetes-namespaces", {"endpointId": 2}, "GET", "/api/endpoints/2/kubernetes/api/v1/namespaces"),
    Case(
        "list-kubernetes-pods",
        {"endpointId": 2, "namespace": "default"},
        "GET",
        "/api/endpoints/2/kubernetes/api/v1/namespaces/default/pods",
    ),
    Case(
        "list-kubernetes-pods",
        {"endpointId": 2, "namespace": "default", "limit": 1},
        "GET",
        "/api/endpoints/2/kubernetes/api/v1/namespaces/default/pods",
        {"limit": ["1"]},
    ),
    Case(
        "create-docker-exec",
        {"endpointId": 1, "id": WEB, "Cmd": ["echo", "hi"]},
        "POST",
        f"/api/endpoints/1/docker/containers/{WEB}/exec",
        body={**EXEC_BODY, "Cmd": ["echo", "hi"]},
    ),
    Case(
        "create-docker-exec",
        {
            "endpointId": 1,
            "id": "web",
            "Cmd": ["sh"],
            "Tty": True,
            "AttachStdin": True,
            "Env": ["LANG=C"],
            "WorkingDir": "/srv",
            "User": "nginx",
        },
        "POST",
        "/api/endpoints/1/docker/containers/web/exec",
        body={
            **EXEC_BODY,
            "Cmd": ["sh"],
            "Tty": True,
            "AttachStdin": True,
            "Env": ["LANG=C"],
            "WorkingDir": "/srv",
            "User": "nginx",
        },
    ),
]


def only_request(sim: PortainerSimulator, before: int) -> RecordedRequest:
    """The one request a call made (a companion tool makes exactly one)."""
    made = sim.requests[before:]
    assert len(made) == 1, [(r.method, r.path) for r in made]
    return made[0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.tool}-{len(c.args)}")
async def test_each_call_sends_exactly_the_vendors_request(case: Case, sandbox: Sandbox, client: Client) -> None:
    sim = sandbox["portainer"]
    before = len(sim.requests)
    await call(client, case.tool, case.args)
    request = only_request(sim, before)
    assert (request.method, request.path, request.websocket) == (case.method, case.path, False)
    assert request.query == case.query
    assert request.json() == case.body
    assert request.headers["x-api-key"] == credentials.PORTAINER_API_KEY


async def test_environments_answer_an_array_as_result_with_its_total_count(client: Client) -> None:
    everything = await call(client, "list-portainer-environments", {})
    assert [(e["Id"], e["Name"], e["Type"], e["Status"]) for e in everything["result"]] == [
        (1, "local", 1, 1),
        (2, "k8s", 5, 1),
    ]
    assert everything["total_count"] == 2
    assert everything["result"][0]["Snapshots"] is None  # excludeSnapshots: no container lists in the answer
    page = await call(client, "list-portainer-environments", {"start": 2, "limit": 1})
    assert ([e["Id"] for e in page["result"]], page["total_count"]) == ([2], 2)  # the count is of all pages


async def test_containers_pods_and_exec_answer_shapes(sandbox: Sandbox, client: Client) -> None:
    containers = (await call(client, "list-docker-containers", {"endpointId": 1}))["result"]
    assert {c["Names"][0]: c["State"] for c in containers} == {"/web": "running", "/ticker": "running", "/db": "exited"}
    assert all({"Id", "Image", "Status", "Labels"} <= c.keys() for c in containers)

    namespaces = await call(client, "list-kubernetes-namespaces", {"endpointId": 2})
    assert namespaces["kind"] == "NamespaceList"
    assert [(n["metadata"]["name"], n["status"]["phase"]) for n in namespaces["items"]] == [
        ("default", "Active"),
        ("kube-system", "Active"),
    ]
    pods = await call(client, "list-kubernetes-pods", {"endpointId": 2, "namespace": "default"})
    assert pods["kind"] == "PodList"
    assert [(p["metadata"]["name"], p["status"]["phase"]) for p in pods["items"]] == [
        ("web-0", "Running"),
        ("web-1", "Running"),
    ]
    page = await call(client, "list-kubernetes-pods", {"endpointId": 2, "namespace": "default", "limit": 1})
    rest = await call(
        client,
        "list-kubernetes-pods",
        {"endpointId": 2, "namespace": "default", "limit": 1, "continue": page["metadata"]["continue"]},
    )
    assert [p["metadata"]["name"] for p in page["items"] + rest["items"]] == ["web-0", "web-1"]

    created = await call(client, "create-docker-exec", {"endpointId": 1, "id": "web", "Cmd": ["true"]})
    assert set(created) == {"Id"} and len(created["Id"]) == 64
    inspect = sandbox["portainer"].get_exec(created["Id"]).inspect()
    assert (inspect["OpenStdout"], inspect["OpenStderr"], inspect["Running"]) == (True, True, False)  # not started


async def test_errors_say_what_went_wrong_and_what_to_check(sandbox: Sandbox, client: Client) -> None:
    sim = sandbox["portainer"]
    text = await refused(client, "list-docker-containers", {"endpointId": 9})
    assert "HTTP 404 for list-docker-containers" in text and "Unable to find an environment" in text
    assert "Check endpointId (list them with list-portainer-environments)." in text  # no zone, no project

    text = await refused(client, "create-docker-exec", {"endpointId": 1, "id": "nope", "Cmd": ["ls"]})
    assert "HTTP 404 for create-docker-exec: No such container: nope." in text
    assert "id (list them with list-docker-containers)" in text

    db = sim.container_ids["db"]
    text = await refused(client, "create-docker-exec", {"endpointId": 1, "id": db, "Cmd": ["ls"]})
    assert f"HTTP 409 for create-docker-exec: Container {db} is not running." in text
    assert "read its current state" in text

    text = await refused(client, "list-kubernetes-pods", {"endpointId": 9, "namespace": "default"})
    assert "HTTP 404" in text and "Unable to find an environment" in text
    text = await refused(client, "list-docker-containers", {"endpointId": 2})  # a Kubernetes environment
    assert "HTTP 400" in text and "not a Docker environment" in text
    text = await refused(client, "list-docker-containers", {"endpointId": 1, "filters": '{"colour":["red"]}'})
    assert "invalid filter 'colour'" in text

    before = len(sim.requests)
    text = await refused(client, "create-docker-exec", {"endpointId": 1, "id": "web", "Cmd": []})
    assert "Invalid arguments for create-docker-exec" in text and "'Cmd'" in text
    text = await refused(client, "create-docker-exec", {"endpointId": 1, "id": "web"})
    assert "missing required argument 'Cmd'" in text
    assert len(sim.requests) == before  # refused before anything was sent


async def test_read_only_mode_offers_the_listings_but_not_the_exec(sandbox: Sandbox) -> None:
    async with Client(build_server(Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_READ_ONLY": "1"}))) as client:
        offered = {tool.name for tool in (await client.list_tools()).tools}
    assert offered >= set(COMPANIONS) - {"create-docker-exec"}
    assert "create-docker-exec" not in offered


def test_the_tools_result_shapes_are_described_for_an_agent() -> None:
    """Each description names what its answer holds and which tool takes its ids (what an agent reads)."""
    tools = load_registry().by_name
    assert "{result: [{Id" in tools["list-portainer-environments"].description
    assert "total_count" in tools["list-portainer-environments"].description
    for name, takers in {
        "list-docker-containers": ["attach-websocket", "create-docker-exec"],
        "list-kubernetes-pods": ["execute-websocket-pod"],
        "create-docker-exec": ["execute-websocket"],
    }.items():
        assert all(taker in tools[name].description for taker in takers), name
    assert tools["create-docker-exec"].body == EXEC_BODY
