"""The MCP surface: every registry tool listed with its exact schema and hints; failures stay tool errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.sandbox import nirvana
from mcp_cloudops.sandbox.base import Simulator
from mcp_cloudops.sandbox.runner import run_sandbox
from mcp_cloudops.schema import input_schema, listed_schema
from mcp_cloudops.server import Connections, build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()
UUID = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_list_is_the_registry(registry: Registry, mode: str) -> None:
    async with Client(build_server(Settings.from_env({}), registry), mode=mode) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert list(listed) == [tool.name for tool in registry.tools]
    for spec in registry.tools:
        tool = listed[spec.name]
        assert tool.input_schema == listed_schema(input_schema(spec, registry.provider_of(spec)), spec)
        assert tool.title == spec.title and tool.description == spec.description
        a = tool.annotations
        assert a is not None and a.title == spec.title
        assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint) == (
            spec.hints.readOnly,
            spec.hints.destructive,
            spec.hints.idempotent,
            spec.hints.openWorld,
        )


def test_instructions_list_the_zones_once_default_first() -> None:
    text = build_server(Settings.from_env({"EXOSCALE_ZONE": "de-fra-1"})).instructions or ""
    assert "Exoscale de-fra-1, at-vie-1," in text and "Scaleway fr-par-1, " in text
    incus_only = build_server(Settings.from_env({"MCP_CLOUDOPS_TOOLSETS": "incus"})).instructions or ""
    assert "Zones" not in incus_only


async def test_wrong_zone_error_lists_the_zones() -> None:
    async with Client(build_server(Settings.from_env({}))) as client:
        result = await client.call_tool("list-compute-instances", {"zone": "mars-1"})
    assert result.is_error and "must be one of" in result.content[0].text and "de-fra-1" in result.content[0].text


async def test_missing_credential_names_the_variable() -> None:
    async with Client(build_server(Settings.from_env({}))) as client:
        result = await client.call_tool("list-compute-instances", {})
        assert result.is_error and "EXOSCALE_API_KEY is not set" in result.content[0].text
        result = await client.call_tool("list-nirvana-operations", {"project_id": UUID})
        assert result.is_error and "NIRVANA_LABS_API_KEY" in result.content[0].text


async def test_unreachable_upstream_is_a_tool_error() -> None:
    env = {"NIRVANA_LABS_BASE_URL": "http://127.0.0.1:9", "NIRVANA_LABS_API_KEY": "secret-value-123"}
    async with Client(build_server(Settings.from_env(env))) as client:
        result = await client.call_tool("get-nirvana-operation", {"operation_id": UUID})
    text = result.content[0].text
    assert result.is_error and "Cannot reach Nirvana Labs at 127.0.0.1" in text
    assert "secret-value-123" not in text and "Traceback" not in text


class Misbehaving(Simulator):
    """An upstream that answers garbage, hangs, or fails, to check every failure ends as a clear isError."""

    provider = "nirvana"

    def build_app(self) -> ASGIApp:
        async def operation(request: Request) -> Response:
            kind = request.path_params["operation_id"]
            if kind.startswith("0"):
                return Response("<html>oops</html>", media_type="text/html")
            if kind.startswith("1"):
                await anyio.sleep(30)
            if kind.startswith("2"):
                return Response("<html><body>Internal Server Error</body></html>", status_code=500)
            return Response('{"message": "rate limited"}', status_code=429, media_type="application/json")

        return Starlette(routes=[Route("/v1/operations/{operation_id}", operation)])

    def env(self, address: str) -> dict[str, str]:
        return {
            "NIRVANA_LABS_BASE_URL": address,
            "NIRVANA_LABS_API_KEY": "k",
            "MCP_CLOUDOPS_READ_TIMEOUT": "0.5",
        }


async def test_misbehaving_upstream_gives_clear_errors_and_server_keeps_serving() -> None:
    async with run_sandbox([Misbehaving()]) as sandbox, Client(build_server(Settings.from_env(sandbox.env))) as client:
        garbage = await client.call_tool("get-nirvana-operation", {"operation_id": "0" + UUID[1:]})
        assert garbage.is_error and "not JSON" in garbage.content[0].text
        with anyio.fail_after(10):
            hang = await client.call_tool("get-nirvana-operation", {"operation_id": "1" + UUID[1:]})
        assert hang.is_error and "did not answer in time" in hang.content[0].text
        crash = await client.call_tool("get-nirvana-operation", {"operation_id": "2" + UUID[1:]})
        assert crash.is_error and "HTTP 500" in crash.content[0].text and "<html>" not in crash.content[0].text
        limited = await client.call_tool("get-nirvana-operation", {"operation_id": "3" + UUID[1:]})
        assert limited.is_error and "HTTP 429" in limited.content[0].text and "rate limited" in limited.content[0].text
        assert len((await client.list_tools()).tools) == len(REGISTRY.tools)


async def test_invalid_arguments_never_reach_the_upstream(sandbox) -> None:
    async with Client(build_server(Settings.from_env(sandbox.env))) as client:
        before = len(sandbox["exoscale"].requests)
        for args in (
            {},
            {"id": 5},
            {"id": UUID, "extra": 1},
            {"id": "../x"},
            {"id": UUID, "zone": "ch-gva-9"},
        ):
            result = await client.call_tool("stop-compute-instance", args)
            assert result.is_error and "Invalid arguments for stop-compute-instance" in result.content[0].text
        assert len(sandbox["exoscale"].requests) == before


def test_listing_tools_leaves_the_call_machinery_unimported() -> None:
    """Start-up is what every client waits for: websockets and jsonschema load on the first call. httpx is never
    imported: the upstream client is httpx2, which the SDK itself loads at start."""
    script = """
import sys, anyio
from mcp import Client
from mcp_cloudops.server import Connections, build_server
from mcp_cloudops.settings import Settings

async def main():
    async with Client(build_server(Settings.from_env({}))) as client:
        await client.list_tools()
        print(",".join(sorted(m for m in ("httpx", "websockets", "jsonschema") if m in sys.modules)))
        await client.call_tool("list-compute-instances", {})
        print(",".join(sorted(m for m in ("httpx", "websockets", "jsonschema") if m in sys.modules)))

anyio.run(main)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = done.stdout.splitlines()
    assert before == ""
    assert after == "jsonschema,websockets"


async def test_pooled_clients_close_when_the_session_ends(sandbox) -> None:
    server = build_server(Settings.from_env(sandbox.env))
    connections = server.settings.lifespan.__self__  # the lifespan is Connections.session
    assert isinstance(connections, Connections)
    async with Client(server) as client:
        result = await client.call_tool("get-nirvana-operation", {"operation_id": nirvana.OPERATION_DONE})
        assert not result.is_error, result.content
        pooled = list(connections.upstreams()._clients.values())
        assert pooled and not any(c.is_closed for c in pooled)
    assert all(c.is_closed for c in pooled)
    assert connections._upstreams is None  # a later session starts afresh


async def test_an_internal_error_is_one_line_with_an_id_and_a_redacted_traceback_in_the_log(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "nvl_sandbox_secret_in_a_bug_0000000000000000"

    async def bug(*_: object) -> dict[str, object]:
        raise RuntimeError(f"state went wrong near {secret}")

    monkeypatch.setattr(Connections, "call", bug)
    env = {"NIRVANA_LABS_API_KEY": secret, "NIRVANA_LABS_BASE_URL": "http://127.0.0.1:9"}
    async with Client(build_server(Settings.from_env(env))) as client:
        result = await client.call_tool("get-nirvana-operation", {"operation_id": UUID})
    text = result.content[0].text
    assert result.is_error and "\n" not in text and secret not in text
    assert text.startswith("mcp-cloudops hit an internal error in get-nirvana-operation (RuntimeError, error id ")
    error_id = text.split("error id ", 1)[1].split(")", 1)[0]
    assert len(error_id) == 8
    crashes = [r for r in logs.records if r.levelname == "ERROR" and error_id in r.getMessage()]
    assert len(crashes) == 1  # the same id, at ERROR, with the whole traceback
    assert "Traceback (most recent call last)" in logs.text and "RuntimeError: state went wrong near" in logs.text
    assert secret not in logs.text


def test_a_built_server_leaves_the_collector_alone_and_serve_settles_it() -> None:
    """build_server freezes nothing (a process building many would keep each one's cycles); settled(), which
    `serve` calls once its server is built, moves what exists out of the cyclic collector's passes."""
    import gc

    from mcp_cloudops.server import settled

    gc.unfreeze()
    build_server(Settings.from_env({}))
    assert gc.get_freeze_count() == 0
    try:
        settled()
        assert gc.get_freeze_count() > 10_000  # the registry, its schemas, the SDK
    finally:
        gc.unfreeze()
