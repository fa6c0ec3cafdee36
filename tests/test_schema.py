"""Published schemas are the registry's, and bad arguments get one clear line each."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from registries import EVERY_TOOL

from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.registry_models import ToolSpec
from mcp_cloudops.schema import ArgumentError, ArgumentValidator, input_schema, listed_schema
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

REGISTRY = load_registry()


def validator(name: str) -> ArgumentValidator:
    tool = REGISTRY.by_name[name]
    return ArgumentValidator(input_schema(tool, REGISTRY.provider_of(tool)))


def reject(name: str, arguments: dict) -> str:
    with pytest.raises(ArgumentError) as caught:
        validator(name).validate(arguments)
    return str(caught.value)


@pytest.mark.parametrize(("registry", "tool"), EVERY_TOOL, ids=[tool.name for _, tool in EVERY_TOOL])
def test_every_schema_is_closed_valid_and_described(registry: Registry, tool: ToolSpec) -> None:
    schema = input_schema(tool, registry.provider_of(tool))
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{tool.name}.{name} has no description"


@pytest.mark.parametrize(("registry", "tool"), EVERY_TOOL, ids=[tool.name for _, tool in EVERY_TOOL])
def test_listed_schema_is_the_checked_one_less_closed_objects_and_zone_lists(
    registry: Registry, tool: ToolSpec
) -> None:
    provider = registry.provider_of(tool)
    checked = input_schema(tool, provider)
    listed = listed_schema(checked, tool)
    assert checked == input_schema(tool, provider)  # the validator's schema is left whole
    Draft202012Validator.check_schema(listed)
    assert '"additionalProperties": false' not in json.dumps(listed)
    assert "enum" not in listed["properties"].get("zone", {})
    assert listed["properties"].keys() == checked["properties"].keys()
    assert listed.get("required") == checked.get("required")
    for name, prop in listed["properties"].items():
        assert prop["description"] == checked["properties"][name]["description"]
        assert prop.get("type") == checked["properties"][name].get("type")


def test_listed_schema_keeps_typed_additional_properties() -> None:
    tool = REGISTRY.by_name["create-compute-instance"]
    listed = listed_schema(input_schema(tool, REGISTRY.providers["exoscale"]), tool)
    assert listed["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert listed["properties"]["instance-type"]["required"] == ["id"]


def test_zone_gets_the_provider_enum() -> None:
    schema = input_schema(REGISTRY.by_name["stop-compute-instance"], REGISTRY.providers["exoscale"])
    assert "ch-gva-2" in schema["properties"]["zone"]["enum"]
    assert "zone" not in schema.get("required", [])


def test_missing_required() -> None:
    assert "missing required argument 'id'" in reject("stop-compute-instance", {})


def test_unknown_argument_lists_allowed() -> None:
    message = reject("get-operation-state", {"id": "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b", "verbose": True})
    assert "unknown argument 'verbose'" in message and "allowed: id" in message


def test_wrong_type_and_format() -> None:
    """The value is quoted with what is wanted (issue 22 item 2): its type, the parameter's description, and
    an example, the number a unit-suffixed text starts with where there is one."""
    assert reject("get-operation-state", {"id": 42}) == (
        "argument 'id': 42 is not a string: Operation UUID (from get-operations)"
    )
    assert "must be a valid uuid" in reject("get-operation-state", {"id": "../x"})


def test_enum_names_the_choices() -> None:
    message = reject("stop-compute-instance", {"id": "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b", "zone": "mars-1"})
    assert "argument 'zone' must be one of" in message and "ch-gva-2" in message


def test_long_values_are_not_echoed_whole() -> None:
    message = reject("get-operation-state", {"id": "x" * 100_000})
    assert len(message) < 400


def test_defaults_are_filled_for_options() -> None:
    args = validator("get-websocket-stream").validate({"id": "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b", "secret": "s"})
    assert args["max_seconds"] > 0 and args["idle_seconds"] > 0 and args["max_bytes"] > 0


def test_object_arguments_sent_as_json_text_are_accepted() -> None:
    uuid = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"
    args = validator("scale-compute-instance-new-instance").validate(
        {"id": uuid, "instance-type": json.dumps({"id": uuid})}
    )
    assert args["instance-type"] == {"id": uuid}
    assert "is not an object" in reject("scale-compute-instance-new-instance", {"id": uuid, "instance-type": "[1]"})


@pytest.mark.anyio
async def test_the_wait_cap_is_stated_where_it_is_enforced() -> None:
    """MCP_CLOUDOPS_MAX_WAIT bounds every wait: the schema's maximum and the descriptions say the same."""
    async with Client(build_server(Settings.from_env({"MCP_CLOUDOPS_MAX_WAIT": "20"}))) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        timeout = tools["start-compute-instance"].input_schema["properties"]["timeout_seconds"]
        assert (timeout["maximum"], timeout["default"]) == (20, 20)
        assert "20 s at most per call" in tools["wait-operation"].input_schema["properties"]["timeout"]["description"]
        refused = await client.call_tool(
            "start-compute-instance",
            {"id": "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000002", "wait": True, "timeout_seconds": 30},
        )
    assert refused.is_error and "timeout_seconds" in refused.content[0].text
