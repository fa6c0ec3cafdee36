"""Hostile tool arguments: traversal, injection, wrong types, unknown and missing names, out-of-range values.

Every rejected call must be a one-line tool error naming the argument, sent nowhere (no simulator
records a request); every accepted free-form value must reach the upstream percent-encoded as
exactly one query parameter, the path untouched; nothing may echo a credential; and the server
must go on serving.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import anyio
import pytest
from mcp import Client
from support import assert_nothing_leaked, text_of

from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import credentials, exoscale, nirvana, scaleway
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

UUID = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"
HEX_ID = "ffffffffffff"
MEGABYTE = "x" * 1_000_000
SCW_IMAGES = "/instance/v1/zones/fr-par-1/images"
# Characters a percent-encoded query value may contain as sent (httpx, urllib.parse.urlencode).
ENCODED = re.compile(r"[A-Za-z0-9._~%+-]*")


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[tuple[Sandbox, Client]]:
    async with (
        run_sandbox() as sandbox,
        Client(build_server(Settings.from_env(sandbox.env), load_registry())) as client,
    ):
        yield sandbox, client


@pytest.fixture
def sandbox(served: tuple[Sandbox, Client]) -> Sandbox:
    return served[0]


@pytest.fixture
def client(served: tuple[Sandbox, Client], caplog: pytest.LogCaptureFixture) -> Client:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mcp_cloudops")
    return served[1]


def request_count(sandbox: Sandbox) -> int:
    return sum(len(sim.requests) for sim in sandbox.simulators.values())


def assert_rejected(result: Any, tool: str, argument: str) -> str:
    """A tool error of exactly one line, from argument validation, naming `argument`."""
    text = text_of(result)
    assert result.is_error, text
    assert result.structured_content is None
    assert text.startswith(f"Invalid arguments for {tool}: ") and text.endswith(". Fix them and call again."), text
    assert f"'{argument}'" in text, text
    assert "\n" not in text and "\r" not in text and "\x00" not in text
    assert len(text) < 1000  # a rejected value is quoted back shortened, never whole
    return text


async def assert_still_serving(client: Client) -> None:
    with anyio.fail_after(10):
        result = await client.call_tool("get-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
    assert not result.is_error, text_of(result)
    assert result.structured_content["image"]["id"] == scaleway.IMAGE_PRIVATE


# --- path values: every path parameter is typed, so hostile values never leave the server ---------------

TRAVERSAL = {
    "dotdot": "../x",
    "dotdot-deep": "../../../../etc/passwd",
    "encoded-dotdot": "%2e%2e",
    "encoded-slash": "..%2F..%2Fadmin",
    "slash": "a/b",
    "query": "x?y=1",
    "hash": "#",
    "fragment": UUID + "#frag",
    "uuid-then-dotdot": UUID + "/../x",
    "uuid-then-query": UUID + "?admin=1",
    "crlf": "\r\nX-Injected: 1",
    "uuid-crlf": UUID + "\r\nX-Injected: 1",
    "nul": "\x00",
    "uuid-nul": UUID + "\x00",
    "one-megabyte": MEGABYTE,
    "rtl-marks": "\u202e" + UUID + "\u200f",
    "emoji": "😀🚀",
    "blank": " ",
    "empty": "",
}
# (tool, the path argument, other required arguments): one tool per provider.
PATH_TOOLS = (
    ("get-instance-image", "image_id", {}),
    ("get-nirvana-operation", "operation_id", {}),
    ("retrieve-compute-instance-details", "id", {}),
    ("get-operation-state", "id", {}),
    ("revert-snapshot-instance", "instance-id", {"id": exoscale.SNAPSHOT_STOPPED}),
    ("execute-websocket", "id", {"endpointId": 1}),
)


@pytest.mark.parametrize("value", list(TRAVERSAL.values()), ids=list(TRAVERSAL))
async def test_hostile_path_values_are_rejected_before_any_request(
    sandbox: Sandbox, client: Client, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    before = request_count(sandbox)
    for tool, argument, others in PATH_TOOLS:
        with anyio.fail_after(10):
            result = await client.call_tool(tool, {**others, argument: value})
        text = assert_rejected(result, tool, argument)
        assert re.search(rf"argument '{argument}' (must be a valid uuid|must match|has the wrong length)", text), text
        assert_nothing_leaked(sandbox.simulators.values(), result, caplog.text)
    assert request_count(sandbox) == before
    await assert_still_serving(client)


@pytest.mark.parametrize(
    "value",
    [UUID + "}", UUID + "urn:", UUID + "uuid:", UUID + "-", UUID + "-" * 1_000_000, "\u0662" + UUID[1:]],
    ids=["brace", "urn", "uuid-prefix", "dash", "megabyte-of-dashes", "arabic-indic-digit"],
)
async def test_uuid_lookalikes_are_rejected_before_any_request(
    sandbox: Sandbox, client: Client, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    before = request_count(sandbox)
    with anyio.fail_after(10):
        result = await client.call_tool("get-nirvana-operation", {"operation_id": value})
    assert_nothing_leaked(sandbox.simulators.values(), result, caplog.text)
    assert request_count(sandbox) == before
    assert_rejected(result, "get-nirvana-operation", "operation_id")


async def test_pattern_does_not_let_a_trailing_newline_through(
    sandbox: Sandbox, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    before = request_count(sandbox)
    with anyio.fail_after(10):
        result = await client.call_tool(
            "attach-websocket", {"endpointId": 1, "id": HEX_ID + "\n", "max_seconds": 1, "idle_seconds": 0.2}
        )
    assert_nothing_leaked(sandbox.simulators.values(), result, caplog.text)
    assert request_count(sandbox) == before
    assert_rejected(result, "attach-websocket", "id")


# --- free-form query values: sent, but as one percent-encoded parameter ----------------------------------

INJECTIONS = {
    "dotdot": "../x",
    "encoded-dotdot": "%2e%2e/%2E%2E",
    "slash": "a/b",
    "query": "x?y=1",
    "ampersand": "a&per_page=1&limit=1&project_id=evil",
    "equals": "k=v",
    "hash": "#",
    "fragment": "x#frag",
    "rtl-marks": "\u202egnp.exe\u200f\u200e",
    "emoji": "emoji 😀🚀",
    "unicode": "ünïcødé 日本 Ω",
    "plus-and-percent": "+ %20 %% %zz +",
    "semicolon": "a;b=1",
    "quotes": "'\"<script>`",
    "json-text": '{"id": "x", "admin": true}',
}


CONTROL = {"crlf": "x\r\nX-Injected: 1\r\n\r\nGET / HTTP/1.1", "nul": "nul\x00byte", "tab": "a\tb"}


@pytest.mark.parametrize("value", list(CONTROL.values()), ids=list(CONTROL))
async def test_control_characters_never_reach_a_url(sandbox: Sandbox, client: Client, value: str) -> None:
    """Header and request smuggling start with a CR/LF in a URL: such values are refused outright."""
    calls = [
        ("list-instance-images", {"name": value}, "scaleway"),
        ("list-nirvana-operations", {"project_id": nirvana.PROJECT_MAIN, "cursor": value}, "nirvana"),
        ("get-operations", {"project": value}, "incus"),
    ]
    for tool, arguments, provider in calls:
        before = len(sandbox[provider].requests)
        result = await client.call_tool(tool, arguments)
        assert result.is_error and "contains control characters" in text_of(result), text_of(result)
        assert len(sandbox[provider].requests) == before
    assert not (await client.call_tool("get-operations", {})).is_error


def single_param(raw_query: str, name: str) -> tuple[str, list[tuple[str, str]]]:
    """The one raw (still encoded) value of `name` in a query string, and all decoded pairs."""
    raw = [part.split("=", 1)[1] for part in raw_query.split("&") if part.split("=", 1)[0] == name]
    assert len(raw) == 1, raw_query
    return raw[0], parse_qsl(raw_query, keep_blank_values=True)


@pytest.mark.parametrize("value", list(INJECTIONS.values()), ids=list(INJECTIONS))
async def test_free_form_query_values_arrive_as_exactly_one_encoded_parameter(
    sandbox: Sandbox, client: Client, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    cases: list[tuple[str, str, dict[str, Any], str, str, list[str]]] = [
        # (tool, argument, other args, simulator, expected path, expected query names in order)
        ("list-instance-images", "name", {}, "scaleway", SCW_IMAGES, ["name", "per_page"]),
        (
            "list-nirvana-operations",
            "cursor",
            {"project_id": nirvana.PROJECT_MAIN},
            "nirvana",
            "/v1/operations",
            ["project_id", "cursor"],
        ),
        (
            "execute-websocket-pod",
            "command",
            {
                "endpointId": 2,
                "namespace": "default",
                "podName": "web-0",
                "containerName": "web",
                "max_seconds": 2,
                "idle_seconds": 0.5,
            },
            "portainer",
            "/api/websocket/pod",
            ["endpointId", "namespace", "podName", "containerName", "command"],
        ),
        ("list-compute-instances", "labels", {}, "exoscale", "/ch-gva-2/v2/instance", ["labels"]),
        ("get-operations", "project", {}, "incus", "/1.0/operations", ["project"]),
    ]
    for tool, argument, others, provider, path, names in cases:
        sim = sandbox[provider]
        before = len(sim.requests)
        with anyio.fail_after(15):
            result = await client.call_tool(tool, {**others, argument: value})
        sent = sim.requests[before:]
        if provider == "portainer":  # the diagnosis of a dropped exec reads the environment, namespaces and pods
            assert {r.method for r in sent[1:]} <= {"GET"} and all("/websocket/" not in r.path for r in sent[1:])
            sent = sent[:1]
        assert len(sent) == 1, (tool, sent)
        request = sent[0]
        assert request.path == path, tool
        raw, pairs = single_param(request.raw_query, argument)
        assert ENCODED.fullmatch(raw), (tool, raw)
        assert [name for name, _ in pairs] == names, (tool, request.raw_query)  # nothing injected
        assert dict(pairs)[argument] == value, tool  # and the value arrives whole
        text = text_of(result)
        if provider == "nirvana":  # an injected cursor is no cursor the upstream ever issued
            assert result.is_error and text == (
                "Nirvana Labs returned HTTP 400 for list-nirvana-operations: invalid cursor. "
                "Fix the arguments the message names and call again."
            )
        elif provider == "portainer":  # no such command in the pod: the upstream drops the socket, an error
            assert result.is_error and "before any output" in text, text
        elif provider == "scaleway":
            assert not result.is_error, text
            assert result.structured_content["images"] == [] and result.structured_content["total_count"] == 0
        elif provider == "exoscale":  # the signature covers the value as sent: the upstream accepted it
            assert not result.is_error, text
            assert result.structured_content == {"instances": []}
        else:
            assert not result.is_error, text
        assert_nothing_leaked(sandbox.simulators.values(), result, caplog.text)
    await assert_still_serving(client)


async def test_megabyte_free_form_value_is_an_argument_error(
    sandbox: Sandbox, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    before = request_count(sandbox)
    with anyio.fail_after(10):
        result = await client.call_tool("list-instance-images", {"name": MEGABYTE})
    assert_nothing_leaked(sandbox.simulators.values(), result, caplog.text)
    assert request_count(sandbox) == before
    assert "internal error" not in text_of(result)
    assert_rejected(result, "list-instance-images", "name")


# --- wrong types, unknown and missing arguments, out-of-range numbers, enum violations -----------------

ZONES_SCW = "fr-par-1, fr-par-2, fr-par-3, nl-ams-1, nl-ams-2, nl-ams-3, pl-waw-1, pl-waw-2, pl-waw-3, it-mil-1"
ZONES_EXO = "at-vie-1, at-vie-2, bg-sof-1, ch-dk-2, ch-gva-2, de-fra-1, de-muc-1, hr-zag-1"
SCW_ALLOWED = "zone, organization, project, name, public, arch, tags, page, per_page"
NEW_INSTANCE = {
    "instance-type": {"id": exoscale.STANDARD_SMALL},
    "template": {"id": exoscale.TEMPLATE_UBUNTU},
    "disk-size": 10,
}
NEW_IMAGE = {"name": "img", "root_volume": scaleway.SNAPSHOT_FR_PAR_1, "arch": "x86_64"}
# (id, tool, arguments, the argument named, the exact reason given)
REJECTED = [
    ("number-as-string", "list-instance-images", {"per_page": "50"}, "per_page",
     "argument 'per_page': \"50\" is not an integer: Images per page (1-100), e.g. 50"),
    ("boolean-as-string", "list-instance-images", {"public": "true"}, "public",
     "argument 'public': \"true\" is not true or false: true: public images; false: private"),
    ("boolean-as-integer", "list-instance-images", {"per_page": True}, "per_page",
     "argument 'per_page': true is not an integer: Images per page (1-100), e.g. 50"),
    ("fraction", "list-instance-images", {"per_page": 1.5}, "per_page",
     "argument 'per_page': 1.5 is not an integer: Images per page (1-100), e.g. 50"),
    ("array-for-string", "list-instance-images", {"name": ["a", "b"]}, "name",
     "argument 'name': [\"a\", \"b\"] is not a string: Name filter"),
    ("object-for-string", "list-instance-images", {"name": {"$ne": None}}, "name",
     "argument 'name': {\"$ne\": null} is not a string: Name filter"),
    ("null-for-string", "list-instance-images", {"name": None}, "name",
     "argument 'name': null is not a string: Name filter"),
    ("number-for-string", "list-nirvana-operations", {"project_id": nirvana.PROJECT_MAIN, "cursor": 7}, "cursor",
     "argument 'cursor': 7 is not a string: pagination.next_cursor from the previous page"),
    ("string-for-endpoint", "execute-websocket", {"endpointId": "1", "id": HEX_ID}, "endpointId",
     "argument 'endpointId': \"1\" is not an integer: Id from list-portainer-environments, e.g. 1"),
    ("string-for-wait", "stop-compute-instance", {"id": UUID, "wait": "yes"}, "wait",
     "argument 'wait': \"yes\" is not true or false: Wait for the final state"),
    ("nested-object-in-labels", "update-compute-instance", {"id": UUID, "labels": {"a": {"b": {"c": 1}}}},
     "labels.a", "argument 'labels.a': {\"b\": {\"c\": 1}} is not a string"),
    ("array-for-object", "create-compute-instance", {**NEW_INSTANCE, "template": [{"id": UUID}]}, "template",
     "argument 'template': [{\"id\": \"2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b\"}] is not an object: "
     "Template {id}, from list-templates"),
    ("unknown", "list-instance-images", {"bogus": 1}, "bogus",
     f"unknown argument 'bogus'; allowed: {SCW_ALLOWED}"),
    ("unknown-traversal-name", "list-instance-images", {"../x": 1}, "../x",
     f"unknown argument '../x'; allowed: {SCW_ALLOWED}"),
    ("unknown-crlf-name", "list-instance-images", {"name\r\nX-Injected": 1}, "name\\r\\nX-Injected",
     f"unknown argument 'name\\r\\nX-Injected'; allowed: {SCW_ALLOWED}"),
    ("unknown-credential-name", "list-nirvana-operations",
     {"project_id": nirvana.PROJECT_MAIN, "api_key": "x"}, "api_key",
     "unknown argument 'api_key'; allowed: project_id, cursor, limit, kind, status, type, resource_id"),
    ("unknown-nested", "create-compute-instance",
     {**NEW_INSTANCE, "instance-type": {"id": exoscale.STANDARD_SMALL, "admin": True}}, "admin",
     "unknown argument 'instance-type' 'admin'; allowed: id"),
    ("missing", "get-instance-image", {}, "image_id",
     "missing required argument 'image_id' (list its values with list-instance-images)"),
    ("missing-query", "list-nirvana-operations", {"limit": 5}, "project_id",
     "missing required argument 'project_id' (list its values with list-nirvana-projects)"),
    ("missing-body", "create-instance-image", {"name": "img", "arch": "x86_64"}, "root_volume",
     "missing required argument 'root_volume' (list its values with list-scaleway-snapshots)"),
    ("zero", "list-instance-images", {"per_page": 0}, "per_page",
     "argument 'per_page' is out of range (minimum 1, maximum 100); got 0"),
    ("too-big", "list-instance-images", {"per_page": 101}, "per_page",
     "argument 'per_page' is out of range (minimum 1, maximum 100); got 101"),
    ("huge", "list-instance-images", {"per_page": 10**30}, "per_page",
     f"argument 'per_page' is out of range (minimum 1, maximum 100); got {10**30}"),
    ("negative", "list-instance-images", {"per_page": -(2**63)}, "per_page",
     f"argument 'per_page' is out of range (minimum 1, maximum 100); got {-(2**63)}"),
    ("page-zero", "list-instance-images", {"page": 0}, "page", "argument 'page' is out of range (minimum 1); got 0"),
    ("disk-too-small", "create-compute-instance", {**NEW_INSTANCE, "disk-size": 5}, "disk-size",
     "argument 'disk-size' is out of range (minimum 10, maximum 51200); got 5"),
    ("wait-too-long", "stop-compute-instance", {"id": UUID, "timeout_seconds": 1000}, "timeout_seconds",
     "argument 'timeout_seconds' is out of range (minimum 1, maximum 50); got 1000"),
    ("incus-timeout", "wait-operation", {"id": UUID, "timeout": -2}, "timeout",
     "argument 'timeout' is out of range (minimum -1); got -2"),
    ("max-bytes", "get-websocket-stream", {"id": UUID, "max_bytes": 2_000_000}, "max_bytes",
     "argument 'max_bytes' is out of range (minimum 1, maximum 1048576); got 2000000"),
    ("max-seconds", "attach-websocket", {"endpointId": 1, "id": HEX_ID, "max_seconds": 0}, "max_seconds",
     "argument 'max_seconds' is out of range (minimum 0.1, maximum 300); got 0"),
    ("endpoint-zero", "execute-websocket", {"endpointId": 0, "id": HEX_ID}, "endpointId",
     "argument 'endpointId' is out of range (minimum 1); got 0"),
    ("limit-zero", "list-nirvana-operations", {"project_id": nirvana.PROJECT_MAIN, "limit": 0}, "limit",
     "argument 'limit' is out of range (minimum 1, maximum 100); got 0"),
    ("zone-mars", "list-instance-images", {"zone": "mars-1"}, "zone",
     f"argument 'zone' must be one of {ZONES_SCW}, all; got 'mars-1'"),
    ("zone-mars-exoscale", "list-compute-instances", {"zone": "mars-1"}, "zone",
     f"argument 'zone' must be one of {ZONES_EXO}, all; got 'mars-1'"),
    ("zone-traversal", "get-instance-image", {"image_id": UUID, "zone": "fr-par-1/../../x"}, "zone",
     f"argument 'zone' must be one of {ZONES_SCW}; got 'fr-par-1/../../x'"),
    ("zone-host-injection", "retrieve-compute-instance-details", {"id": UUID, "zone": "evil.example#"}, "zone",
     f"argument 'zone' must be one of {ZONES_EXO}; got 'evil.example#'"),
    ("zone-case", "list-instance-images", {"zone": "FR-PAR-1"}, "zone",
     f"argument 'zone' must be one of {ZONES_SCW}, all; got 'FR-PAR-1'"),
    ("arch", "list-instance-images", {"arch": "sparc"}, "arch",
     "argument 'arch' must be one of x86_64, arm, arm64; got 'sparc'"),
    ("kind", "list-nirvana-operations", {"project_id": nirvana.PROJECT_MAIN, "kind": "everything"}, "kind",
     "argument 'kind' must be one of vm, volume, vpc, firewall_rule, nks_cluster, nks_node_pool; got 'everything'"),
    ("field-traversal", "reset-instance-field", {"id": UUID, "field": "../labels"}, "field",
     "argument 'field' must be one of labels; got '../labels'"),
    ("uuid-filter", "list-instance-images", {"organization": "not-a-uuid"}, "organization",
     "argument 'organization' must be a valid uuid; got 'not-a-uuid'"),
    ("hex-pattern", "attach-websocket", {"endpointId": 1, "id": "../../etc"}, "id",
     "argument 'id' must match ^[0-9a-f]{12,64}$; got '../../etc' (list its values with list-docker-containers)"),
    ("megabyte-name", "create-instance-image", {**NEW_IMAGE, "name": MEGABYTE}, "name",
     "argument 'name' has the wrong length (maxLength 255)"),
    ("megabyte-stdin", "execute-websocket", {"endpointId": 1, "id": HEX_ID, "stdin": MEGABYTE}, "stdin",
     "argument 'stdin' has the wrong length (maxLength 65536)"),
    ("bad-json-text", "create-compute-instance", {**NEW_INSTANCE, "instance-type": '{"id": '}, "instance-type",
     "argument 'instance-type': \"{\\\"id\\\": \" is not an object: Instance type {id}, from list-instance-types"),
    ("json-text-of-wrong-type", "create-compute-instance", {**NEW_INSTANCE, "instance-type": '["x"]'},
     "instance-type",
     "argument 'instance-type': \"[\\\"x\\\"]\" is not an object: Instance type {id}, from list-instance-types"),
    ("json-text-with-bad-field", "create-compute-instance",
     {**NEW_INSTANCE, "template": json.dumps({"id": "../x"})}, "template.id",
     "argument 'template.id' must be a valid uuid; got '../x' (list its values with list-templates)"),
    ("json-text-array-items", "update-image-2", {"image_id": scaleway.IMAGE_PRIVATE, "tags": "[1, 2]"}, "tags.0",
     "argument 'tags.0': 1 is not a string; argument 'tags.1': 2 is not a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tool", "arguments", "argument", "reason"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED]
)
async def test_bad_arguments_are_one_line_errors_naming_the_argument(
    sandbox: Sandbox,
    client: Client,
    caplog: pytest.LogCaptureFixture,
    tool: str,
    arguments: dict[str, Any],
    argument: str,
    reason: str,
) -> None:
    before = request_count(sandbox)
    with anyio.fail_after(10):
        result = await client.call_tool(tool, arguments)
    text = assert_rejected(result, tool, argument)
    assert text == f"Invalid arguments for {tool}: {reason}. Fix them and call again."
    assert request_count(sandbox) == before
    assert_nothing_leaked(sandbox.simulators.values(), result, caplog.text)
    await assert_still_serving(client)


async def test_a_secret_pasted_into_an_argument_is_not_echoed(
    sandbox: Sandbox, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    before = request_count(sandbox)
    for tool, arguments, argument in (
        ("attach-websocket", {"endpointId": 1, "id": credentials.PORTAINER_API_KEY}, "id"),
        ("get-nirvana-operation", {"operation_id": credentials.NIRVANA_LABS_API_KEY}, "operation_id"),
        ("list-instance-images", {"organization": credentials.EXOSCALE_API_SECRET}, "organization"),
    ):
        with anyio.fail_after(10):
            result = await client.call_tool(tool, arguments)
        text = assert_rejected(result, tool, argument)
        assert "[REDACTED]" in text
        assert_nothing_leaked(sandbox.simulators.values(), result, caplog.text)
    assert request_count(sandbox) == before


# --- accepted shapes: JSON text for objects and arrays, JSON-looking text for strings -------------------


async def test_json_text_objects_and_arrays_are_sent_as_json(sandbox: Sandbox, client: Client) -> None:
    exo = sandbox["exoscale"]
    before = len(exo.requests)
    with anyio.fail_after(10):
        result = await client.call_tool(
            "create-compute-instance",
            {
                "instance-type": json.dumps({"id": exoscale.STANDARD_SMALL}),
                "template": {"id": exoscale.TEMPLATE_UBUNTU},
                "disk-size": 10,
                "labels": '{"env": "test"}',
                "name": '{"looks": "like json"}',
            },
        )
    assert not result.is_error, text_of(result)
    posts = [r for r in exo.requests[before:] if r.method == "POST"]
    assert len(posts) == 1
    assert posts[0].path == "/ch-gva-2/v2/instance"
    assert posts[0].json() == {
        "instance-type": {"id": exoscale.STANDARD_SMALL},
        "template": {"id": exoscale.TEMPLATE_UBUNTU},
        "disk-size": 10,
        "labels": {"env": "test"},
        "name": '{"looks": "like json"}',  # a string parameter stays the text it was given
    }
    scw = sandbox["scaleway"]
    before = len(scw.requests)
    with anyio.fail_after(10):
        result = await client.call_tool("update-image-2", {"image_id": scaleway.IMAGE_PRIVATE, "tags": '["a", "b"]'})
    assert not result.is_error, text_of(result)
    assert [(r.method, r.path, r.json()) for r in scw.requests[before:]] == [
        ("PATCH", f"{SCW_IMAGES}/{scaleway.IMAGE_PRIVATE}", {"tags": ["a", "b"]})
    ]
    assert result.structured_content["image"]["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("tool", "arguments", "provider", "sent"),
    [
        ("list-instance-images", {"per_page": 50.0}, "scaleway", "per_page=50"),
        (
            "resize-compute-instance-disk",
            {"id": exoscale.INSTANCE_STOPPED, "disk-size": 500.0},
            "exoscale",
            '{"disk-size":500}',
        ),
        ("list-nirvana-operations", {"project_id": nirvana.PROJECT_MAIN, "limit": 5.0}, "nirvana", "limit=5"),
    ],
    ids=["query", "body", "nirvana-query"],
)
async def test_integral_floats_are_sent_as_integers(
    sandbox: Sandbox, client: Client, tool: str, arguments: dict[str, Any], provider: str, sent: str
) -> None:
    sim = sandbox[provider]
    before = len(sim.requests)
    with anyio.fail_after(10):
        result = await client.call_tool(tool, arguments)
    wire = [r.raw_query + r.body.decode() for r in sim.requests[before:]]
    assert not any(".0" in part for part in wire), wire
    assert not result.is_error, text_of(result)
    assert any(sent in part for part in wire), wire
