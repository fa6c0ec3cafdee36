"""One tool call, after its arguments are checked: a websocket session, a chunked upstream wait, or
a request (then, if asked, a wait for the operation it started)."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from mcp_cloudops import operations, websocket
from mcp_cloudops.registry import ToolSpec
from mcp_cloudops.upstream import Upstreams


async def dispatch(upstreams: Upstreams, spec: ToolSpec, args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(round(done, 1), total, message)

    if spec.websocket:
        return await websocket.stream(upstreams, spec, args)
    if spec.long_poll:
        return await operations.long_poll(upstreams, spec, args, progress)
    data = await upstreams.call(spec, args)
    if spec.returns_operation and args.get("wait"):
        timeout = min(float(args["timeout_seconds"]), upstreams.settings.max_wait)
        return await operations.wait_for(upstreams, spec, args, data, timeout, progress)
    return data
