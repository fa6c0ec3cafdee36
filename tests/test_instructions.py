"""The server's instructions name only what the policy offers, and say what the tools cannot."""

from __future__ import annotations

import pytest

from mcp_cloudops.instructions import instructions
from mcp_cloudops.policy import select_tools
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.settings import Settings

REGISTRY = load_registry()


def text(env: dict[str, str], registry: Registry = REGISTRY) -> str:
    settings = Settings.from_env(env)
    return instructions(registry, settings, select_tools(registry, settings))


def test_every_provider_is_named_first(registry: Registry) -> None:
    *others, last = [provider.title for provider in registry.providers.values()]
    assert text({}, registry).startswith(f"Operate {', '.join(others)} and {last}. ")


def test_how_to_follow_an_operation_and_what_asks_first() -> None:
    full = text({})
    assert "or follow it with get-exoscale-operation" in full and "ask the user first" in full


@pytest.mark.parametrize(
    ("env", "absent"),
    [
        ({"MCP_CLOUDOPS_TOOLSETS": "incus"}, ["Exoscale", "get-exoscale-operation", "Zones"]),
        ({"MCP_CLOUDOPS_EXCLUDE_TOOLS": "get-exoscale-operation"}, ["get-exoscale-operation"]),
        ({"MCP_CLOUDOPS_READ_ONLY": "1"}, ["Destructive", "Mutating"]),
    ],
)
def test_nothing_the_policy_left_out_is_named(env: dict[str, str], absent: list[str]) -> None:
    said = text(env)
    for word in absent:
        assert word not in said


def test_zones_default_first() -> None:
    assert "Exoscale de-fra-1, at-vie-1," in text({"EXOSCALE_ZONE": "de-fra-1"})
