"""Carry an asynchronous operation to its end, the same way for every provider.

Polls with backoff, reports MCP progress between polls (so clients don't time out), and stops
as soon as the client cancels (every wait is an anyio sleep). A wait that runs out of time is
not an error: it returns the latest state and says how to keep waiting.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2

from mcp_cloudops.registry_models import OperationSpec, Provider, ToolSpec
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.upstream import UpstreamRequest, Upstreams, encode_segment, fill

Progress = Callable[[float, float, str], Awaitable[None]]

FIRST_DELAY = 0.5  # seconds before the first poll
MAX_DELAY = 5.0
BACKOFF = 1.5
LONG_POLL_CHUNK = 10  # seconds of one upstream-side wait


def dig(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def spec_of(provider: Provider) -> OperationSpec:
    if provider.operation is None:  # the registry guarantees it for tools that wait
        raise UpstreamError(f"{provider.title} operations cannot be followed")
    return provider.operation


def pending(spec: OperationSpec, op: dict[str, Any]) -> bool:
    return op.get(spec.state_field) in spec.pending


def keep_waiting(spec: OperationSpec, op_id: Any, waited: float) -> str:
    how = f"call {spec.tool} with id {op_id}" if spec.tool else "poll it again"
    return f"Still not finished after {waited:.0f} s; the operation goes on. To keep waiting, {how}."


def resource_path(spec: OperationSpec, op: dict[str, Any], base_url: str) -> str | None:
    """Where the resource an operation acted on lives under our base URL; None if not on our API."""
    link = dig(op, spec.link_field) if spec.link_field else None
    if not isinstance(link, str) or not spec.link_prefix or spec.link_prefix not in link:
        return None
    url = httpx2.URL(link)
    if url.host and url.host != httpx2.URL(base_url).host:
        return None  # never follow a link to another host
    rest = url.path.split(spec.link_prefix, 1)[1]
    return "/" + "/".join(encode_segment(part) for part in rest.split("/") if part)


def the_operation(provider: Provider, tool: ToolSpec, answer: Any) -> dict[str, Any]:
    """The operation a call answered with (tools.yaml `operation.answer` says where it sits)."""
    spec = spec_of(provider)
    op = dig(answer, spec.answer) if spec.answer else answer
    if not isinstance(op, dict) or not op.get("id"):
        raise UpstreamError(
            f"{provider.title} answered {tool.name} without an operation to follow, so mcp-cloudops cannot "
            "wait for it. Call again with wait=false to see the answer as it is."
        )
    return op


async def wait_for(
    upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any], op: dict[str, Any], timeout: float, progress: Progress
) -> dict[str, Any]:
    """Poll an operation (made by a call with `args`) until it leaves its pending states or `timeout` passes."""
    provider = upstreams.registry.provider_of(tool)
    spec = spec_of(provider)
    base = upstreams.base_for(tool, args)
    op = the_operation(provider, tool, op)
    op_id = op.get("id")
    started = time.monotonic()
    follower = upstreams.registry.by_name.get(spec.tool or "")
    if follower is not None and follower.long_poll and pending(spec, op):
        # The upstream can wait itself (and forgets a finished operation within seconds): use its wait.
        op = await long_poll(upstreams, follower, {"id": op_id, follower.long_poll: timeout}, progress)
    poll = UpstreamRequest("GET", base + fill(spec.poll, {"id": op_id}))
    delay = FIRST_DELAY
    while pending(spec, op) and (elapsed := time.monotonic() - started) < timeout:
        await progress(elapsed, timeout, f"{provider.title} operation {op_id}: {op.get(spec.state_field)}")
        await anyio.sleep(min(delay, timeout - elapsed))
        delay = min(delay * BACKOFF, MAX_DELAY)
        op = await upstreams.send(tool, provider, poll)
    waited = round(time.monotonic() - started, 1)
    state = op.get(spec.state_field)
    if pending(spec, op):
        return {"operation": op, "done": False, "waited_seconds": waited, "note": keep_waiting(spec, op_id, waited)}
    if state not in spec.success:
        detail = ": ".join(str(op[k]) for k in ("reason", "message", "err") if op.get(k)) or "no reason given"
        # The resource the call acted on (its path's id), else where the tool's writes are read back.
        lister = next((p.listed_by for p in tool.params_in("path") if p.listed_by), None) or tool.state_lookup
        where = f" ({lister})" if lister else ""
        raise UpstreamError(
            f"{provider.title} operation {op_id} for {tool.name} ended in {state} ({detail}). "
            f"The change did not complete: read the resource's current state{where} before trying again."
        )
    result: dict[str, Any] = {"operation": op, "done": True, "waited_seconds": waited}
    if (path := resource_path(spec, op, base)) is not None:
        try:
            result["resource"] = await upstreams.send(tool, provider, UpstreamRequest("GET", base + path))
        except UpstreamError:
            result["resource"] = None  # e.g. deleted by the operation itself
    return result


async def long_poll(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Serve an upstream-side wait (Incus `/wait?timeout=N`) as short waits with progress in between,
    never longer than the server's MCP_CLOUDOPS_MAX_WAIT, so the call never outlives its client."""
    provider = upstreams.registry.provider_of(tool)
    spec = spec_of(provider)
    param = tool.long_poll or ""
    settings = upstreams.settings
    requested = args.get(param, -1)
    budget = settings.max_wait if requested < 0 else min(requested, settings.max_wait)
    chunk_cap = max(1, min(LONG_POLL_CHUNK, int(settings.timeouts(provider)[1]) - 5))
    started = time.monotonic()
    while True:
        remaining = budget - (time.monotonic() - started)
        chunk = min(chunk_cap, max(1, int(remaining))) if remaining > 0 else 0
        op = await upstreams.call(tool, {**args, param: chunk})
        elapsed = time.monotonic() - started
        if not pending(spec, op) or chunk == 0 or elapsed >= budget:
            break
        await progress(elapsed, budget, f"{provider.title} operation {op.get('id')}: {op.get(spec.state_field)}")
    if pending(spec, op) and (requested < 0 or requested > budget):
        op = {**op, "note": keep_waiting(spec, op.get("id"), elapsed)}
    return op
