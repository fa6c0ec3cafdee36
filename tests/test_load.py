"""Load: the streamable HTTP server takes 200 concurrent tool calls with no failure and bounded memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from support import free_port, server_env, stop_process, wait_until_serving

pytestmark = pytest.mark.anyio
CLIENTS, CALLS_EACH = 10, 20  # 200 calls in flight at once
RSS_GROWTH_LIMIT_MB = 150


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_200_concurrent_calls_over_http() -> None:
    port = free_port()
    env = server_env(MCP_CLOUDOPS_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "mcp_cloudops", "serve", "--sandbox", "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until_serving(port, proc)
        async with Client(url) as warmup:
            assert not (await warmup.call_tool("list-compute-instances", {})).is_error
        before = rss_mb(proc.pid)
        failures: list[str] = []
        done = 0

        async def one_client(n: int) -> None:
            nonlocal done
            async with Client(url) as client, anyio.create_task_group() as tg:

                async def one_call(i: int) -> None:
                    nonlocal done
                    tool, args = (
                        ("list-compute-instances", {})
                        if i % 2
                        else ("list-nirvana-operations", {"project_id": "b7f3e2a0-5d1c-4e8f-9a6b-0000000000a1"})
                    )
                    result = await client.call_tool(tool, args)
                    if result.is_error:
                        failures.append(result.content[0].text[:200])
                    done += 1

                for i in range(CALLS_EACH):
                    tg.start_soon(one_call, n * CALLS_EACH + i)

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for n in range(CLIENTS):
                    tg.start_soon(one_client, n)
        assert failures == [] and done == CLIENTS * CALLS_EACH
        growth = rss_mb(proc.pid) - before
        assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.0f} MB under load"
        async with Client(url) as after:
            assert not (await after.call_tool("get-operations", {})).is_error
    finally:
        stop_process(proc)
