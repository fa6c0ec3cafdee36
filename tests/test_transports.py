"""The server as clients run it: a subprocess over stdio and over streamable HTTP, in both protocol eras."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from support import SECRETS, debug_server_env, free_port, server_env, wait_until_serving

from mcp_cloudops.registry import load_registry

pytestmark = pytest.mark.anyio
MODES = ["legacy", "auto"]


def hint(value: bool | None, default: bool) -> bool:
    """A hint as a client reads it: one left out is MCP's default. The sandbox has two accounts, and a tool
    with an `account` choice states only the hints that differ from the defaults, and no second title."""
    return default if value is None else value


async def exercise(client: Client) -> None:
    tools = await client.list_tools()
    assert len(tools.tools) == len(load_registry().tools)
    for tool in tools.tools:
        assert tool.title and tool.description and tool.annotations and tool.annotations.title in (None, tool.title)
        assert hint(tool.annotations.open_world_hint, True) is True and tool.input_schema["type"] == "object"
        assert tool.input_schema["properties"]["account"]["enum"] == ["default", "team"]
    stop = next(t for t in tools.tools if t.name == "stop-compute-instance")
    assert stop.title and stop.annotations and hint(stop.annotations.read_only_hint, False) is False
    assert "enum" not in stop.input_schema["properties"]["zone"]  # listed once, in the instructions
    unknown = await client.call_tool("list-compute-instances", {"zone": "ch-gva-2", "verbose": True})
    assert unknown.is_error and "unknown argument 'verbose'" in unknown.content[0].text
    listed = await client.call_tool("list-compute-instances", {})
    assert not listed.is_error, listed.content
    assert isinstance(listed.structured_content["instances"], list)
    bad = await client.call_tool("stop-compute-instance", {"id": "../../etc"})
    assert bad.is_error and "uuid" in bad.content[0].text


@pytest.mark.parametrize("mode", MODES)
async def test_stdio_subprocess(mode: str) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_cloudops", "serve", "--sandbox"], env=server_env()
    )
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:
            await exercise(client)


@dataclass
class HttpServer:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> str:
        """Stop the server and return everything it logged."""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcp_cloudops",
            "serve",
            "--sandbox",
            "--transport",
            "http",
            "--port",
            str(port),
        ],
        env=debug_server_env(),  # every upstream exchange is logged at DEBUG
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:

        def stderr_once_exited() -> str:  # reading a live process's pipe would block
            return proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""

        wait_until_serving(port, proc, stderr_once_exited, timeout=15)
        yield HttpServer(url, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", MODES)
async def test_streamable_http_subprocess(http_server: HttpServer, mode: str) -> None:
    with anyio.fail_after(60):
        async with Client(http_server.url, mode=mode) as client:
            await exercise(client)


async def test_logs_go_to_stderr_without_secrets(http_server: HttpServer) -> None:
    async with Client(http_server.url) as client:
        await exercise(client)
        await client.call_tool("get-instance-image", {"image_id": "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"})
        await client.call_tool("execute-websocket", {"endpointId": 1, "id": "ffff", "max_seconds": 1})
    logged = http_server.stop()
    assert "list-compute-instances -> exoscale 200" in logged
    for secret in SECRETS:
        assert secret not in logged
    assert "/v2/instance" not in logged  # request URLs are never logged


async def test_http_rejects_foreign_host_header(http_server: HttpServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            http_server.url,
            headers={
                "Host": "evil.example:80",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    assert response.status_code in (400, 403, 421)
