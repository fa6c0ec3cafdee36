"""Which tools a session sees (toolsets.py): all of them by default; with --dynamic-toolsets only the two
discovery tools until the session enables a toolset (then tools/list_changed); over HTTP, the toolsets an
X-MCP-Toolsets header names. One session's toolsets never change another's list, and a tool a session
does not see cannot be called."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from support import HttpServer, server_env

from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()
DISCOVERY = [REGISTRY.discovery.list.name, REGISTRY.discovery.enable.name]
NIRVANA = [tool.name for tool in REGISTRY.tools if tool.provider == "nirvana"]
SCALEWAY = [tool.name for tool in REGISTRY.tools if tool.provider == "scaleway"]
DYNAMIC_BUDGET = 6000  # bytes of the first tools/list in dynamic mode (issue 13)


@asynccontextmanager
async def connected(sandbox: Sandbox, mode: str = "legacy", **env: str) -> AsyncIterator[tuple[Client, list[str]]]:
    """An in-memory client of a dynamic server, and the notifications it received."""
    notes: list[str] = []

    async def on_message(message: Any) -> None:
        notes.append(str(getattr(message, "method", type(message).__name__)))

    settings = Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_DYNAMIC_TOOLSETS": "1", **env})
    async with Client(build_server(settings), mode=mode, message_handler=on_message) as client:
        yield client, notes


async def names(client: Client) -> list[str]:
    return [tool.name for tool in (await client.list_tools()).tools]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_dynamic_session_starts_with_discovery_and_enables_a_toolset(sandbox: Sandbox, mode: str) -> None:
    with anyio.fail_after(30):
        async with connected(sandbox, mode) as (client, notes):
            listed = await client.list_tools()
            assert [tool.name for tool in listed.tools] == DISCOVERY
            wire = json.dumps(listed.model_dump(by_alias=True, exclude_none=True, mode="json"), separators=(",", ":"))
            assert len(wire.encode()) <= DYNAMIC_BUDGET
            hidden = await client.call_tool(NIRVANA[0], {})
            assert hidden.is_error and f"call enable-toolset with toolset='nirvana', then call {NIRVANA[0]}" in (
                hidden.content[0].text
            )

            toolsets = (await client.call_tool("list-toolsets", {})).structured_content["toolsets"]
            assert [t["name"] for t in toolsets] == list(REGISTRY.providers)
            nirvana = next(t for t in toolsets if t["name"] == "nirvana")
            assert nirvana == {
                "name": "nirvana",
                "title": "Nirvana Labs",
                "description": REGISTRY.providers["nirvana"].summary,
                "tools": len(NIRVANA),
                "enabled": False,
                "configured": True,
            }

            enabled = await client.call_tool("enable-toolset", {"toolset": "nirvana"})
            assert enabled.structured_content == {
                "toolset": "nirvana",
                "enabled": True,
                "already_enabled": False,
                "tools": NIRVANA,
            }
            assert await names(client) == DISCOVERY + NIRVANA
            assert not (await client.call_tool("list-nirvana-projects", {"limit": 1})).is_error
            again = await client.call_tool("enable-toolset", {"toolset": "nirvana"})  # idempotent
            assert again.structured_content["already_enabled"] is True
            assert await names(client) == DISCOVERY + NIRVANA
            listing = (await client.call_tool("list-toolsets", {})).structured_content["toolsets"]
            assert [t["name"] for t in listing if t["enabled"]] == ["nirvana"]
            await anyio.sleep(0.1)
    if mode == "legacy":  # handshake era: the session is told, once; 2026-07-28: through subscriptions/listen
        assert notes.count("notifications/tools/list_changed") == 1


async def test_every_provider_is_a_toolset_that_brings_exactly_its_tools(registry: Registry) -> None:
    """Titles, summaries and counts come from tools.yaml: a provider added there is a toolset at once."""
    settings = Settings.from_env({"MCP_CLOUDOPS_DYNAMIC_TOOLSETS": "1"})
    with anyio.fail_after(30):
        async with Client(build_server(settings, registry)) as client:
            toolsets = (await client.call_tool("list-toolsets", {})).structured_content["toolsets"]
            assert [t["name"] for t in toolsets] == list(registry.providers)
            for listed, (key, provider) in zip(toolsets, registry.providers.items(), strict=True):
                own = [tool.name for tool in registry.tools if tool.provider == key]
                assert isinstance(listed.pop("configured"), bool)  # Incus: whether this machine has a socket
                assert listed == {
                    "name": key,
                    "title": provider.title,
                    "description": provider.summary,
                    "tools": len(own),
                    "enabled": False,
                }
                enabled = await client.call_tool("enable-toolset", {"toolset": key})
                assert enabled.structured_content["tools"] == own, key
            assert await names(client) == DISCOVERY + [tool.name for tool in registry.tools]


async def test_the_server_declares_that_its_tool_list_changes(sandbox: Sandbox) -> None:
    async with connected(sandbox) as (client, _):
        assert client.server_capabilities.tools is not None and client.server_capabilities.tools.list_changed
        assert "call list-toolsets, then enable-toolset" in (client.instructions or "")


async def test_bad_toolsets_are_refused_naming_the_lister(sandbox: Sandbox) -> None:
    async with connected(sandbox) as (client, _):
        for arguments in ({"toolset": "aws"}, {}, {"toolset": "nirvana", "extra": 1}):
            refused = await client.call_tool("enable-toolset", arguments)
            assert refused.is_error and "see list-toolsets" in refused.content[0].text
        assert await names(client) == DISCOVERY


async def test_read_only_filters_what_a_toolset_brings(sandbox: Sandbox) -> None:
    async with connected(sandbox, MCP_CLOUDOPS_READ_ONLY="1") as (client, _):
        toolsets = (await client.call_tool("list-toolsets", {})).structured_content["toolsets"]
        scaleway = next(t for t in toolsets if t["name"] == "scaleway")
        read_only = [t.name for t in REGISTRY.tools if t.provider == "scaleway" and t.hints.readOnly]
        assert scaleway["tools"] == len(read_only) < len(SCALEWAY)
        await client.call_tool("enable-toolset", {"toolset": "scaleway"})
        assert await names(client) == DISCOVERY + read_only


async def test_the_default_mode_lists_every_tool_and_no_discovery(client: Client) -> None:
    listed = await names(client)
    assert listed == [tool.name for tool in REGISTRY.tools] and not set(DISCOVERY) & set(listed)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_over_stdio_a_subprocess_enables_a_toolset(mode: str) -> None:
    command = ["-m", "mcp_cloudops", "serve", "--sandbox", "--dynamic-toolsets"]
    params = StdioServerParameters(command=sys.executable, args=command, env=server_env())
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:
            assert await names(client) == DISCOVERY
            await client.call_tool("enable-toolset", {"toolset": "nirvana"})
            assert await names(client) == DISCOVERY + NIRVANA
            assert not (await client.call_tool("list-nirvana-projects", {"limit": 1})).is_error


# --- over HTTP: per session, and the X-MCP-Toolsets header ---------------------------------------------


@pytest.fixture(scope="module")
def dynamic_http() -> Iterator[HttpServer]:
    with HttpServer.running("--dynamic-toolsets") as server:
        yield server


@pytest.fixture(scope="module")
def default_http() -> Iterator[HttpServer]:
    with HttpServer.running() as server:
        yield server


@asynccontextmanager
async def http_client(url: str, **headers: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


async def test_one_sessions_toolsets_never_change_anothers(dynamic_http: HttpServer) -> None:
    with anyio.fail_after(60):
        async with http_client(dynamic_http.url) as first, http_client(dynamic_http.url) as second:
            await first.call_tool("enable-toolset", {"toolset": "nirvana"})
            assert await names(first) == DISCOVERY + NIRVANA
            assert await names(second) == DISCOVERY
            refused = await second.call_tool("list-nirvana-projects", {})
            assert refused.is_error and "enable-toolset" in refused.content[0].text


async def test_a_header_chooses_a_sessions_toolsets(dynamic_http: HttpServer, default_http: HttpServer) -> None:
    with anyio.fail_after(60):
        async with http_client(dynamic_http.url, **{"X-MCP-Toolsets": "scaleway, nirvana"}) as client:
            assert await names(client) == DISCOVERY + SCALEWAY + NIRVANA  # enabled from the start
        async with http_client(default_http.url, **{"X-MCP-Toolsets": "scaleway"}) as client:
            assert await names(client) == SCALEWAY  # the default mode, narrowed
            hidden = await client.call_tool("list-nirvana-projects", {})
            assert hidden.is_error and "X-MCP-Toolsets header leaves out" in hidden.content[0].text
        async with http_client(default_http.url) as client:
            assert len(await names(client)) == len(REGISTRY.tools)
