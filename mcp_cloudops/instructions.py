"""What the server tells every agent at connect, built from the tools it offers: it never names a
provider or a tool the policy left out (--toolsets, --tools, --read-only), and it costs every
conversation context, so it says only what an agent cannot read off the tools themselves."""

from __future__ import annotations

from collections.abc import Sequence

from mcp_cloudops.registry import Registry
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.settings import Settings


def listed(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def operations(provider: Provider, offered: set[str]) -> str:
    """How to get an operation's end from a provider whose mutating calls return one."""
    follow = provider.operation.tool if provider.operation is not None else None
    tail = f", or follow it with {follow}" if follow in offered else ""
    return f"Mutating {provider.title} calls return an operation: pass wait=true for its final state{tail}."


def zones(registry: Registry, settings: Settings, providers: set[str]) -> str:
    """Each zoned provider's zones, the default first: listed here once, not in every tool's schema."""
    lists = []
    accounts = settings.accounts_for(registry)
    for key, provider in registry.providers.items():
        if key in providers:
            account = accounts.default(key)
            default = account.default_zone(provider) if account is not None else provider.default_zone
            lists.append(f"{provider.title} {', '.join(sorted(provider.zones, key=lambda zone: zone != default))}")
    return f"Zones (argument zone; omitted: the first): {'; '.join(lists)}." if lists else ""


def instructions(registry: Registry, settings: Settings, tools: Sequence[ToolSpec]) -> str:
    offered = {tool.name for tool in tools}
    providers = [key for key in registry.providers if any(tool.provider == key for tool in tools)]
    parts = [f"Operate {listed([registry.providers[key].title for key in providers])}." if providers else ""]
    if settings.dynamic_toolsets:
        discovery = registry.discovery_tools()
        parts.append(
            f"Tools come in toolsets, one per cloud, off at first: call {discovery.list.name}, then "
            f"{discovery.enable.name} with the one the task needs; its tools then join the tool list."
        )
    parts.append("Read-only tools are safe to call freely.")
    if any(tool.hints.destructive or tool.credential for tool in tools):
        parts.append("Destructive ones change or delete resources, and ask the user first when the client can.")
    waiting = [key for key in providers if any(tool.provider == key and tool.returns_operation for tool in tools)]
    parts += [operations(registry.providers[key], offered) for key in waiting]
    parts.append(zones(registry, settings, {tool.provider for tool in tools if tool.params_in("zone")}))
    return " ".join(part for part in parts if part)
