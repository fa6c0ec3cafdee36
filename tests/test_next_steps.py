"""Errors name the next step (issue 22 item 2): each asserted word for word, through the client, as an agent
reads them."""

from __future__ import annotations

import pytest
from mcp import Client
from support import text_of

from mcp_cloudops.sandbox import exoscale
from mcp_cloudops.sandbox.runner import Sandbox

pytestmark = pytest.mark.anyio
UNKNOWN_UUID = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"


async def test_exec_in_a_stopped_instance_says_to_start_it(client: Client) -> None:
    result = await client.call_tool("exec-instance", {"name": "c2", "command": ["true"]})
    assert result.is_error
    assert text_of(result) == (
        "Incus returned HTTP 400 for exec-instance: Instance is not running. The instance is stopped: start it "
        "with update-instance-state (action: start), then run the command again."
    )


async def test_a_missing_id_names_its_lister(client: Client) -> None:
    result = await client.call_tool("list-nirvana-operations", {})
    assert text_of(result) == (
        "Invalid arguments for list-nirvana-operations: missing required argument 'project_id' (list its values "
        "with list-nirvana-projects). Fix them and call again."
    )


async def test_a_value_of_the_wrong_type_is_quoted_with_what_is_wanted(client: Client) -> None:
    arguments = {"instance-type": {"id": exoscale.STANDARD_SMALL}, "template": {"id": UNKNOWN_UUID}}
    result = await client.call_tool("create-compute-instance", {**arguments, "disk-size": "70GiB"})
    assert text_of(result) == (
        "Invalid arguments for create-compute-instance: argument 'disk-size': \"70GiB\" is not an integer: Disk "
        "size in GiB (10-51200), e.g. 70. Fix them and call again."
    )


@pytest.mark.parametrize(
    ("asked", "nearest"),
    [
        ("list-exoscale-instances", "list-compute-instances, list-instance-types, list-exoscale-snapshots"),
        ("list-nirvana-operation", "list-nirvana-operations, get-nirvana-operation, list-nirvana-projects"),
        ("list-pods", "list-kubernetes-pods, list-templates, list-nirvana-projects"),
    ],
)
async def test_an_unknown_tool_suggests_the_nearest_weighing_provider_words(
    client: Client, asked: str, nearest: str
) -> None:
    result = await client.call_tool(asked, {})
    assert result.is_error
    assert text_of(result) == f"Unknown tool {asked!r}. The nearest this caller can use: {nearest}. Call one of them."


async def test_a_name_near_nothing_gets_no_wrong_lead(client: Client) -> None:
    result = await client.call_tool("zzzz", {})
    assert text_of(result) == "Unknown tool 'zzzz': read tools/list for the tools this caller can use."


async def test_ids_inside_objects_name_their_listers_on_404(client: Client, sandbox: Sandbox) -> None:
    arguments = {"instance-type": {"id": exoscale.STANDARD_SMALL}, "template": {"id": UNKNOWN_UUID}, "disk-size": 10}
    result = await client.call_tool("create-compute-instance", {**arguments, "ssh-keys": [{"name": "nobody"}]})
    assert result.is_error
    assert text_of(result).endswith(
        "Check instance-type.id (list them with list-instance-types), template.id (list them with list-templates), "
        "ssh-keys[].name (list them with list-ssh-keys), security-groups[].id (list them with "
        "list-security-groups), zone."
    ), text_of(result)


ENVIRONMENT_KINDS = [
    ("list-kubernetes-pods", {"endpointId": 1, "namespace": "default"},
     "Portainer CE returned HTTP 404 for list-kubernetes-pods: page not found. Environment 1 is a Docker "
     "environment (Type 1), and this tool needs a Kubernetes one (Type 5, 6 or 7): pick one from "
     "list-portainer-environments."),
    ("list-docker-containers", {"endpointId": 2},
     "Portainer CE returned HTTP 400 for list-docker-containers: Invalid environment type: the environment is not "
     "a Docker environment. Environment 2 is a Kubernetes environment (Type 5), and this tool needs a Docker one "
     "(Type 1, 2 or 4): pick one from list-portainer-environments."),
]  # fmt: skip


@pytest.mark.parametrize(("tool", "arguments", "said"), ENVIRONMENT_KINDS, ids=[case[0] for case in ENVIRONMENT_KINDS])
async def test_an_environment_of_the_other_kind_says_which_kind_it_is(
    client: Client, tool: str, arguments: dict[str, int | str], said: str
) -> None:
    result = await client.call_tool(tool, arguments)
    assert result.is_error and text_of(result) == said


DROPPED = "Portainer CE dropped the execute-websocket-pod session (close code 1006) before any output. "
POD_CAUSES = [
    ({"namespace": "nope"},
     "Environment 2 has no namespace nope: list its namespaces with list-kubernetes-namespaces."),
    ({"podName": "web-9"}, "Namespace default has no pod web-9: list its pods with list-kubernetes-pods."),
    ({"containerName": "db"}, "Pod web-0 has no container db: list-kubernetes-pods shows each pod's containers."),
    ({"command": "frob now"}, "Its namespace, pod and container exist, so the command could not start: check that "
     "the program frob now starts with is in the container's image (the command is split on spaces, with no shell)."),
]  # fmt: skip


@pytest.mark.parametrize(("changed", "cause"), POD_CAUSES, ids=["namespace", "pod", "container", "command"])
async def test_a_pod_exec_dropped_before_any_output_says_what_was_missing(
    sandbox: Sandbox, changed: dict[str, str], cause: str
) -> None:
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    arguments = {"endpointId": 2, "namespace": "default", "podName": "web-0", "containerName": "web", "command": "ls"}
    env = {**sandbox.env, "MCP_CLOUDOPS_CONFIRM_FALLBACK": "allow"}
    async with Client(build_server(Settings.from_env(env))) as client:
        result = await client.call_tool("execute-websocket-pod", arguments | changed)
    assert result.is_error and text_of(result) == DROPPED + cause


def test_an_operation_that_cannot_be_cancelled_says_to_wait_for_it() -> None:
    from mcp_cloudops.registry import load_registry
    from mcp_cloudops.results import failed_with

    registry = load_registry()
    tool = registry.by_name["cancel-operation"]
    body = {"type": "error", "error": "This operation can't be cancelled", "error_code": 400}
    assert str(failed_with(tool, registry.provider_of(tool), 400, body, "")) == (
        "Incus returned HTTP 400 for cancel-operation: This operation can't be cancelled. This operation cannot be "
        "cancelled (its may_cancel is false): wait for its end with wait-operation instead."
    )
