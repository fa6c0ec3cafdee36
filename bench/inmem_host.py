"""One in-memory server in a process of its own (ours or the floor), answering blocks of calls the way
`peer_fastmcp.py inmem` does for the peer: every server measured in memory then runs alone in its
process with its client and its direct request, none sharing a heap, a collector or an event loop
with another's.

    python bench/inmem_host.py ours|floor

stdin, one JSON line each:
    {"env": {...}, "addresses": {...}}    first: the sandbox to call (as bench/sandbox_host.py printed it)
    {"n": N, "warmup": W, "op_id": ID}    a block: answers {"samples_ms": {tool: {"mcp": [...],
                                          "direct": [...]}}, "errors": [...]}
    {"profile": N, "op_id": ID}           N calls under cProfile: answers the breakdown
Prints {"ready": true} once built; ends at EOF.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from typing import Any

import anyio
import anyio.to_thread
from callers import DirectCaller, McpCaller
from common import COMMON_TOOLS, ERRORS, base_env
from per_call import interleaved, profile_calls
from sandbox import Sandbox


def build(which: str, sandbox: Sandbox) -> Any:
    if which == "floor":
        from floor_server import build as build_floor

        return build_floor(sandbox.env)
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    return build_server(Settings.from_env(base_env(**sandbox.env)))


async def main(which: str) -> None:
    from mcp import Client

    info = json.loads(sys.stdin.readline())
    sandbox = Sandbox(None, info["env"], info["addresses"])  # type: ignore[arg-type]  # no process here
    server = build(which, sandbox)
    gc.freeze()  # this process hosts its server from now on, as `mcp-cloudops serve` does once built
    direct = DirectCaller("direct", "", sandbox)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(direct.aclose)
        client = await stack.enter_async_context(Client(server, mode="legacy"))
        await client.list_tools()
        mcp = McpCaller("mcp", "", client, lambda t: t)
        print(json.dumps({"ready": True}), flush=True)
        while line := await anyio.to_thread.run_sync(sys.stdin.readline):
            job = json.loads(line)
            mcp.op_id = direct.op_id = job["op_id"]
            ERRORS.items.clear()
            if "profile" in job:
                print(json.dumps(await profile_calls(client, job["op_id"], job["profile"])), flush=True)
                continue
            got = await interleaved([mcp, direct], job["n"], job["warmup"])
            samples = {t: {"mcp": got[t]["mcp"], "direct": got[t]["direct"]} for t in COMMON_TOOLS}
            print(json.dumps({"samples_ms": samples, "errors": ERRORS.items}), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
