"""Every tool, called through an MCP client, reaches its simulator with the request the real API expects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from fakes import Keyed
from mcp import Client

from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.sandbox import exoscale, nirvana, scaleway
from mcp_cloudops.sandbox.recorder import RecordedRequest
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

RUN, STOP = exoscale.INSTANCE_RUNNING, exoscale.INSTANCE_STOPPED
EXO = "/ch-gva-2/v2"
IMAGES = "/instance/v1/zones/fr-par-1/images"
REGISTRY = load_registry()


Args = dict[str, Any] | Callable[[Any], dict[str, Any]]  # literal, or made from the simulator's state
Path = str | Callable[[dict[str, Any]], str]  # literal, or made from the resolved arguments


@dataclass(frozen=True)
class Case:
    tool: str
    args: Args
    method: str
    path: Path
    query: dict[str, list[str]] = field(default_factory=dict)
    body: Any = None
    expect: dict[str, Any] = field(default_factory=dict)  # keys that must appear in structuredContent
    websocket: bool = False


def op_path(suffix: str = "") -> Callable[[dict[str, Any]], str]:
    return lambda args: f"/1.0/operations/{args['id']}{suffix}"


def token(sim: Any) -> str:
    return sim.seeded["token"]


def fd_secret(sim: Any, op_id: str, fd: str) -> str:
    return sim.operations[op_id].render()["metadata"]["fds"][fd]


def incus_exec(sim: Any) -> dict[str, Any]:
    return {"id": sim.create_exec(["echo", "hello", "agent"])["id"]}


def incus_fd1(sim: Any) -> dict[str, Any]:
    op_id = sim.create_exec(["echo", "hi"])["id"]
    return {"id": op_id, "secret": fd_secret(sim, op_id, "1"), "idle_seconds": 0.3}


CASES = [
    # Incus over its unix socket: envelopes unwrapped, ?recursion / ?public as real query params.
    Case(
        "get-operations",
        {"project": "default"},
        "GET",
        "/1.0/operations",
        query={"project": ["default"]},
        expect={"running": list},
    ),
    Case(
        "get-operations-2",
        {"all-projects": True},
        "GET",
        "/1.0/operations",
        query={"recursion": ["1"], "all-projects": ["true"]},
        expect={"running": list},
    ),
    Case("cancel-operation", lambda sim: {"id": token(sim)}, "DELETE", op_path()),
    Case(
        "get-operation-state",
        lambda sim: {"id": sim.seeded["task"]},
        "GET",
        op_path(),
        expect={"status": "Running", "class": "task"},
    ),
    Case(
        "wait-operation",
        lambda sim: {"id": sim.seeded["task"], "timeout": 1},
        "GET",
        op_path("/wait"),
        query={"timeout": ["1"]},
        expect={"status": str},
    ),
    Case(
        "wait-operation-2",
        lambda sim: {
            "id": token(sim),
            "secret": sim.operations[token(sim)].render()["metadata"]["secret"],
            "timeout": 0,
        },
        "GET",
        op_path("/wait"),
        query={"public": [""], "timeout": ["0"]},
        expect={"class": "token"},
    ),
    Case(
        "get-websocket-stream",
        incus_exec,
        "GET",
        op_path("/websocket"),
        websocket=True,
        expect={"stdout": "hello agent\n", "stderr": "", "exit_code": 0, "status": "Success"},
    ),
    Case(
        "get-websocket-stream-2",
        incus_fd1,
        "GET",
        op_path("/websocket"),
        websocket=True,
        query={"public": [""]},
        expect={"output": str, "stopped": str},
    ),
    Case(
        "list-instances",
        {"all-projects": True},
        "GET",
        "/1.0/instances",
        query={"recursion": ["1"], "all-projects": ["true"]},
        expect={"result": list},
    ),
    Case(
        "exec-instance",
        {"name": "c1", "command": ["echo", "hi"], "environment": {"A": "1"}, "cwd": "/root", "user": 0},
        "POST",
        "/1.0/instances/c1/exec",
        body={
            "command": ["echo", "hi"],
            "environment": {"A": "1"},
            "cwd": "/root",
            "user": 0,
            "record-output": True,
            "wait-for-websocket": False,
            "interactive": False,
        },
        expect={"stdout": "hi\n", "stderr": "", "exit_code": 0, "operation_id": str},
    ),
    Case(
        "update-instance-state",
        {"name": "c2", "action": "start", "timeout": 30, "project": "default"},
        "PUT",
        "/1.0/instances/c2/state",
        query={"project": ["default"]},
        body={"action": "start", "timeout": 30},
        expect={"status": "Running", "operation_id": str},  # waited, then read back
    ),
    # Portainer: X-API-Key on the websocket handshake, each tool its own route.
    Case(
        "attach-websocket",
        lambda sim: {"endpointId": 1, "id": sim.container_id, "idle_seconds": 0.5},
        "GET",
        "/api/websocket/attach",
        websocket=True,
        query={"endpointId": ["1"]},
        expect={"output": str},
    ),
    Case(
        "execute-websocket",
        lambda sim: {"endpointId": 1, "id": sim.exec_id},
        "GET",
        "/api/websocket/exec",
        websocket=True,
        expect={"output": "hello from web\n", "stopped": "closed", "exit_code": 0, "running": False},
    ),
    Case(
        "execute-websocket-pod",
        {
            "endpointId": 2,
            "namespace": "default",
            "podName": "web-0",
            "containerName": "web",
            "command": "echo hi there",
            "idle_seconds": 0.5,
        },
        "GET",
        "/api/websocket/pod",
        websocket=True,
        query={"command": ["echo hi there"], "podName": ["web-0"]},
        expect={"stopped": "idle"},
    ),
    Case(
        "execute-websocket-kubectl-shell-pod",
        {"endpointId": 2, "stdin": "kubectl get pods\n", "idle_seconds": 0.5},
        "GET",
        "/api/websocket/kubernetes-shell",
        websocket=True,
        query={"endpointId": ["2"]},
        expect={"stopped": "idle"},
    ),
    # Exoscale: every request signed, zone in the URL, actions with a literal colon.
    Case("retrieve-signed-url-valid-60", {"id": RUN}, "GET", f"{EXO}/console/{RUN}", expect={"url": str}),
    Case(
        "get-exoscale-operation",
        {"id": exoscale.OPERATION_DONE},
        "GET",
        f"{EXO}/operation/{exoscale.OPERATION_DONE}",
        expect={"state": "success", "reference": dict},
    ),
    Case(
        "create-compute-instance",
        {
            "instance-type": {"id": exoscale.STANDARD_SMALL},
            "template": {"id": exoscale.TEMPLATE_UBUNTU},
            "disk-size": 10,
            "name": "agent-1",
            "labels": {"team": "ai"},
            "zone": "de-fra-1",
        },
        "POST",
        "/de-fra-1/v2/instance",
        body={
            "instance-type": {"id": exoscale.STANDARD_SMALL},
            "template": {"id": exoscale.TEMPLATE_UBUNTU},
            "disk-size": 10,
            "name": "agent-1",
            "labels": {"team": "ai"},
        },
        expect={"state": "pending"},
    ),
    Case(
        "list-compute-instances",
        {"manager-type": "instance-pool"},
        "GET",
        f"{EXO}/instance",
        query={"manager-type": ["instance-pool"]},
        expect={"instances": list},
    ),
    Case("delete-compute-instance", {"id": STOP}, "DELETE", f"{EXO}/instance/{STOP}", expect={"state": "pending"}),
    Case(
        "update-compute-instance",
        {"id": RUN, "name": "web-renamed"},
        "PUT",
        f"{EXO}/instance/{RUN}",
        body={"name": "web-renamed"},
        expect={"state": "pending"},
    ),
    Case("retrieve-compute-instance-details", {"id": RUN}, "GET", f"{EXO}/instance/{RUN}", expect={"id": RUN}),
    Case("reset-instance-field", {"id": RUN, "field": "labels"}, "DELETE", f"{EXO}/instance/{RUN}/labels"),
    Case("set-instance-destruction-protection", {"id": RUN}, "PUT", f"{EXO}/instance/{RUN}:add-protection"),
    Case("create-snapshot-compute-instance", {"id": RUN}, "POST", f"{EXO}/instance/{RUN}:create-snapshot"),
    Case("enable-tpm-instance", {"id": STOP}, "POST", f"{EXO}/instance/{STOP}:enable-tpm"),
    Case(
        "reveal-password-used-during-instance",
        {"id": RUN},
        "GET",
        f"{EXO}/instance/{RUN}:password",
        expect={"password": str},
    ),
    Case("reboot-compute-instance", {"id": RUN}, "PUT", f"{EXO}/instance/{RUN}:reboot"),
    Case("remove-instance-destruction-protection", {"id": RUN}, "PUT", f"{EXO}/instance/{RUN}:remove-protection"),
    Case(
        "reset-compute-instance-base-target",
        {"id": STOP, "template": {"id": exoscale.TEMPLATE_DEBIAN}},
        "PUT",
        f"{EXO}/instance/{STOP}:reset",
        body={"template": {"id": exoscale.TEMPLATE_DEBIAN}},
    ),
    Case("reset-compute-instance-password", {"id": RUN}, "PUT", f"{EXO}/instance/{RUN}:reset-password"),
    Case(
        "resize-compute-instance-disk",
        {"id": STOP, "disk-size": 200},
        "PUT",
        f"{EXO}/instance/{STOP}:resize-disk",
        body={"disk-size": 200},
    ),
    Case(
        "scale-compute-instance-new-instance",
        {"id": STOP, "instance-type": {"id": exoscale.STANDARD_LARGE}},
        "PUT",
        f"{EXO}/instance/{STOP}:scale",
        body={"instance-type": {"id": exoscale.STANDARD_LARGE}},
    ),
    Case(
        "start-compute-instance",
        {"id": STOP, "rescue-profile": "netboot"},
        "PUT",
        f"{EXO}/instance/{STOP}:start",
        body={"rescue-profile": "netboot"},
    ),
    Case("stop-compute-instance", {"id": RUN}, "PUT", f"{EXO}/instance/{RUN}:stop", expect={"state": "pending"}),
    Case(
        "revert-snapshot-instance",
        {"instance-id": STOP, "id": exoscale.SNAPSHOT_STOPPED},
        "POST",
        f"{EXO}/instance/{STOP}:revert-snapshot",
        body={"id": exoscale.SNAPSHOT_STOPPED},
    ),
    # Scaleway: X-Auth-Token, zone in the path, paging from headers.
    Case(
        "list-instance-images",
        {"per_page": 10, "page": 2, "public": True},
        "GET",
        IMAGES,
        query={"per_page": ["10"], "page": ["2"], "public": ["true"]},
        expect={"images": list, "total_count": int, "next_page": 3},
    ),
    Case(
        "create-instance-image",
        {
            "name": "golden",
            "root_volume": scaleway.SNAPSHOT_FR_PAR_1,
            "arch": "x86_64",
            "project": scaleway.SANDBOX_PROJECT,
            "tags": ["ci"],
        },
        "POST",
        IMAGES,
        body={
            "name": "golden",
            "root_volume": scaleway.SNAPSHOT_FR_PAR_1,
            "arch": "x86_64",
            "project": scaleway.SANDBOX_PROJECT,
            "tags": ["ci"],
        },
        expect={"image": dict},
    ),
    Case(
        "update-image",
        {
            "id": scaleway.IMAGE_PRIVATE,
            "name": "replaced",
            "arch": "x86_64",
            "root_volume": {"id": scaleway.SNAPSHOT_FR_PAR_1},
            "extra_volumes": {},
            "public": False,
            "project": scaleway.SANDBOX_PROJECT,
        },
        "PUT",
        f"{IMAGES}/{scaleway.IMAGE_PRIVATE}",
        body={
            "name": "replaced",
            "arch": "x86_64",
            "root_volume": {"id": scaleway.SNAPSHOT_FR_PAR_1},
            "extra_volumes": {},
            "public": False,
            "project": scaleway.SANDBOX_PROJECT,
        },
        expect={"image": dict},
    ),
    Case(
        "get-instance-image",
        {"image_id": scaleway.IMAGE_PRIVATE, "zone": "fr-par-1"},
        "GET",
        f"{IMAGES}/{scaleway.IMAGE_PRIVATE}",
        expect={"image": dict},
    ),
    Case(
        "update-image-2",
        {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed", "tags": ["a"]},
        "PATCH",
        f"{IMAGES}/{scaleway.IMAGE_PRIVATE}",
        body={"name": "renamed", "tags": ["a"]},
        expect={"image": dict},
    ),
    Case(
        "delete-instance-image",
        {"image_id": scaleway.IMAGE_PRIVATE},
        "DELETE",
        f"{IMAGES}/{scaleway.IMAGE_PRIVATE}",
        expect={"ok": True, "status": 204},
    ),
    # Nirvana: bearer token, cursor pagination.
    Case(
        "list-nirvana-operations",
        {"project_id": nirvana.PROJECT_MAIN, "limit": 5},
        "GET",
        "/v1/operations",
        query={"project_id": [nirvana.PROJECT_MAIN], "limit": ["5"]},
        expect={"items": list, "pagination": dict},
    ),
    Case(
        "get-nirvana-operation",
        {"operation_id": nirvana.OPERATION_RUNNING},
        "GET",
        f"/v1/operations/{nirvana.OPERATION_RUNNING}",
        expect={"status": "running"},
    ),
    # Companion tools: the ids the seed tools take, found through this server.
    Case("list-instance-types", {}, "GET", f"{EXO}/instance-type", expect={"instance-types": list}),
    Case(
        "list-templates",
        {"visibility": "private", "family": "ubuntu"},
        "GET",
        f"{EXO}/template",
        query={"visibility": ["private"], "family": ["ubuntu"]},
        expect={"templates": list},
    ),
    Case("list-ssh-keys", {}, "GET", f"{EXO}/ssh-key", expect={"ssh-keys": list}),
    Case(
        "list-security-groups",
        {"visibility": "public"},
        "GET",
        f"{EXO}/security-group",
        query={"visibility": ["public"]},
        expect={"security-groups": list},
    ),
    Case("list-exoscale-snapshots", {}, "GET", f"{EXO}/snapshot", expect={"snapshots": list}),
    Case(
        "list-scaleway-snapshots",
        {"per_page": 10, "page": 2},
        "GET",
        "/instance/v1/zones/fr-par-1/snapshots",
        query={"per_page": ["10"], "page": ["2"]},
        expect={"snapshots": list, "total_count": 30, "next_page": 3},
    ),
    Case(
        "list-portainer-environments",
        {"limit": 10},
        "GET",
        "/api/endpoints",
        query={"excludeSnapshots": ["true"], "limit": ["10"]},
        expect={"result": list, "total_count": int},
    ),
    Case(
        "list-docker-containers",
        {"endpointId": 1},
        "GET",
        "/api/endpoints/1/docker/containers/json",
        query={"all": ["1"]},
        expect={"result": list},
    ),
    Case(
        "list-kubernetes-namespaces",
        {"endpointId": 2},
        "GET",
        "/api/endpoints/2/kubernetes/api/v1/namespaces",
        expect={"items": list},
    ),
    Case(
        "list-kubernetes-pods",
        {"endpointId": 2, "namespace": "default"},
        "GET",
        "/api/endpoints/2/kubernetes/api/v1/namespaces/default/pods",
        expect={"items": list},
    ),
    Case(
        "create-docker-exec",
        lambda sim: {"endpointId": 1, "id": sim.container_id, "Cmd": ["echo", "hi"]},
        "POST",
        lambda args: f"/api/endpoints/1/docker/containers/{args['id']}/exec",
        body={"AttachStdout": True, "AttachStderr": True, "Cmd": ["echo", "hi"]},
        expect={"Id": str},
    ),
    Case(
        "list-nirvana-projects",
        {"limit": 2},
        "GET",
        "/v1/projects",
        query={"limit": ["2"]},
        expect={"items": list, "pagination": dict},
    ),
]


def check_auth(provider: Provider, request: RecordedRequest, env: dict[str, str]) -> None:
    """The request signs in as tools.yaml's `auth` says, with the key `env` gives the server."""
    auth, headers = provider.auth, request.headers
    if auth.scheme == "exoscale-v2":
        assert auth.key_env and headers["authorization"].startswith(f"EXO2-HMAC-SHA256 credential={env[auth.key_env]},")
    elif auth.scheme == "header":
        assert auth.header and auth.secret_env and headers[auth.header.lower()] == env[auth.secret_env]
    elif auth.scheme == "bearer":
        assert auth.secret_env and headers["authorization"] == f"Bearer {env[auth.secret_env]}"
    else:  # incus: the unix socket is the credential (a remote's client certificate: test_incus_tls.py)
        assert "authorization" not in headers


def check_expected(structured: dict[str, Any], expect: dict[str, Any]) -> None:
    for key, wanted in expect.items():
        assert key in structured, f"{key} missing from {sorted(structured)}"
        if isinstance(wanted, type):
            assert isinstance(structured[key], wanted), (key, structured[key])
        else:
            assert structured[key] == wanted, (key, structured[key])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.tool)
async def test_tool_reaches_its_upstream(case: Case, sandbox: Sandbox, client: Client) -> None:
    provider = REGISTRY.provider_of(REGISTRY.by_name[case.tool])
    sim = sandbox[provider.key]
    args = case.args(sim) if callable(case.args) else case.args
    path = case.path(args) if callable(case.path) else case.path
    with anyio.fail_after(30):
        result = await client.call_tool(case.tool, args)
    assert not result.is_error, result.content[0].text
    matching = [r for r in sim.requests if (r.method, r.path) == (case.method, path)]
    assert matching, f"no {case.method} {path} among {[(r.method, r.path) for r in sim.requests]}"
    request = matching[-1]
    assert request.websocket == case.websocket
    for name, values in case.query.items():
        assert request.query.get(name) == values, (name, request.query)
    assert request.json() == case.body
    check_auth(provider, request, sandbox.env)
    check_expected(result.structured_content or {}, case.expect)


def test_every_tool_has_a_case() -> None:
    assert sorted(case.tool for case in CASES) == sorted(tool.name for tool in REGISTRY.tools)


KEY = "loopback-key-0123456789abcdef"


def plain_read(registry: Registry, provider: Provider) -> ToolSpec | None:
    """The provider's first read-only tool that needs no argument and opens no websocket, if it has one."""
    return next(
        (
            tool
            for tool in registry.tools
            if tool.provider == provider.key
            and tool.hints.readOnly
            and not tool.websocket
            and not any(param.required for param in tool.params)
        ),
        None,
    )


async def test_every_key_a_provider_sends_as_is_goes_in_its_header_and_nowhere_else(registry: Registry) -> None:
    """Whatever the provider is called: a tools.yaml `auth` of scheme header or bearer is all it takes."""
    keyed = [p for p in registry.providers.values() if p.auth.scheme in ("header", "bearer")]
    assert keyed
    for provider in keyed:
        tool, sim = plain_read(registry, provider), Keyed(provider, KEY)
        assert tool is not None, f"{provider.key} has no read-only tool that needs no argument"
        async with (
            run_sandbox([sim]) as sandbox,
            Client(build_server(Settings.from_env(sandbox.env), registry)) as client,
        ):
            with anyio.fail_after(30):
                result = await client.call_tool(tool.name, {})
        assert not result.is_error, result.content[0].text
        [request] = sim.requests
        check_auth(provider, request, sandbox.env)
        carrier = (provider.auth.header or "authorization").lower()
        elsewhere = [request.path, request.raw_query, request.body.decode(), result.content[0].text]
        elsewhere += [value for name, value in request.headers.items() if name != carrier]
        assert not any(KEY in text for text in elsewhere), provider.key


async def test_attach_returns_log_lines_without_docker_headers(sandbox: Sandbox, client: Client) -> None:
    sim = sandbox["portainer"]
    result = await client.call_tool("attach-websocket", {"endpointId": 1, "id": sim.container_id, "idle_seconds": 0.5})
    output = result.structured_content["output"]
    assert output.startswith("172.17.0.1 - - [") and "\x00" not in output and "\x01" not in output
