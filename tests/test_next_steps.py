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
