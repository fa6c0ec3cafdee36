"""Exoscale's companion tools: the read-only listings an agent calls to find the ids the seed tools
take, called through an MCP client against the simulator, down to the request the vendor's spec
describes. An agent's whole flow built only from what they return is in test_agent_tasks.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from mcp import Client
from support import call

from mcp_cloudops.sandbox import credentials, exoscale
from mcp_cloudops.sandbox.recorder import RecordedRequest
from mcp_cloudops.sandbox.runner import Sandbox

pytestmark = pytest.mark.anyio

EXO = f"/{exoscale.DEFAULT_ZONE}/v2"
READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": True}


@dataclass(frozen=True)
class Listing:
    tool: str
    path: str  # under /{zone}/v2, as in Exoscale's OpenAPI document
    key: str  # the list the answer holds
    fields: frozenset[str]  # every item has these
    query: tuple[str, ...] = ()  # the query parameters the spec gives this path
    sometimes: dict[str, frozenset[str]] = field(default_factory=dict)  # id -> fields only that item has


LISTINGS = [
    Listing(
        "list-instance-types",
        "/instance-type",
        "instance-types",
        frozenset({"id", "family", "size", "cpus", "memory", "authorized", "zones"}),
        sometimes={exoscale.GPU_SMALL: frozenset({"gpus"})},  # the spec's gpus is > 0: GPU types only
    ),
    Listing(
        "list-templates",
        "/template",
        "templates",
        frozenset(
            {"id", "name", "family", "description", "default-user", "boot-mode", "build", "size", "created-at"}
            | {"password-enabled", "ssh-key-enabled"}
        ),
        query=("visibility", "family"),
    ),
    Listing("list-ssh-keys", "/ssh-key", "ssh-keys", frozenset({"name", "fingerprint"})),
    Listing(
        "list-security-groups",
        "/security-group",
        "security-groups",
        frozenset({"id", "name", "description", "rules", "external-sources"}),
        query=("visibility",),
    ),
    Listing(
        "list-exoscale-snapshots",
        "/snapshot",
        "snapshots",
        frozenset({"id", "name", "state", "size", "created-at", "instance"}),
        sometimes={exoscale.SNAPSHOT_STOPPED: frozenset({"export"})},  # exported: its download link
    ),
]


def last_request(sandbox: Sandbox, path: str) -> RecordedRequest:
    """The newest request the simulator got for `path`, with the vendor's signature scheme."""
    matching = [r for r in sandbox["exoscale"].requests if r.path == path]
    assert matching, f"no request for {path}"
    request = matching[-1]
    assert request.headers["authorization"].startswith(f"EXO2-HMAC-SHA256 credential={credentials.EXOSCALE_API_KEY},")
    return request


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda listing: listing.tool)
async def test_listing_answers_with_its_key_and_fields(listing: Listing, sandbox: Sandbox, client: Client) -> None:
    result = await call(client, listing.tool, {})
    items = result[listing.key]
    assert items, f"{listing.tool} listed nothing"
    for item in items:
        expected = listing.fields | listing.sometimes.get(item.get("id", ""), frozenset())
        assert expected <= set(item), (listing.tool, sorted(expected - set(item)))
    assert {item.get("id") for item in items} >= set(listing.sometimes)
    request = last_request(sandbox, EXO + listing.path)
    assert (request.method, request.query, request.body) == ("GET", {}, b"")


async def test_listings_are_read_only_and_take_the_spec_query(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for listing in LISTINGS:
        tool = tools[listing.tool]
        hints = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
        assert {k: hints.get(k) for k in READ_ONLY} == READ_ONLY, listing.tool
        assert set(tool.input_schema["properties"]) == {"zone", *listing.query}, listing.tool


async def test_template_filters_narrow_and_reach_the_api_as_sent(sandbox: Sandbox, client: Client) -> None:
    public = await call(client, "list-templates", {})
    private = await call(client, "list-templates", {"visibility": "private"})
    ubuntu = await call(client, "list-templates", {"visibility": "public", "family": "ubuntu"})
    assert {t["id"] for t in private["templates"]} == {exoscale.TEMPLATE_PRIVATE}
    assert exoscale.TEMPLATE_PRIVATE not in {t["id"] for t in public["templates"]}
    assert 0 < len(ubuntu["templates"]) < len(public["templates"])
    assert {t["family"] for t in ubuntu["templates"]} == {"ubuntu"}
    request = last_request(sandbox, f"{EXO}/template")
    assert request.query == {"visibility": ["public"], "family": ["ubuntu"]}
    assert "signed-query-args=" in request.headers["authorization"]  # the filters are signed too


async def test_security_group_visibility_and_zone(sandbox: Sandbox, client: Client) -> None:
    own = await call(client, "list-security-groups", {})
    public = await call(client, "list-security-groups", {"visibility": "public", "zone": "de-fra-1"})
    assert {g["id"] for g in own["security-groups"]} == {exoscale.SECURITY_GROUP_DEFAULT, exoscale.SECURITY_GROUP_WEB}
    assert [g["id"] for g in public["security-groups"]] == [exoscale.SECURITY_GROUP_PUBLIC]
    assert last_request(sandbox, "/de-fra-1/v2/security-group").query == {"visibility": ["public"]}


async def test_snapshots_are_listed_per_zone(sandbox: Sandbox, client: Client) -> None:
    assert await call(client, "list-exoscale-snapshots", {"zone": "de-fra-1"}) == {"snapshots": []}
    assert last_request(sandbox, "/de-fra-1/v2/snapshot").query == {}
