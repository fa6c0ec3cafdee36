"""One tool call, after its arguments are checked: a websocket session, a chunked upstream wait, or
a request (then, if asked, a wait for the operation it started and what it came to); operation
secrets hidden."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.mcpserver import Context

from mcp_cloudops import audit, diagnosis, operations, outcome, websocket, zones
from mcp_cloudops.audit import Journal
from mcp_cloudops.policy import may_write
from mcp_cloudops.registry_models import ToolSpec
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.shaping import off_loop
from mcp_cloudops.upstream import Upstreams

HIDDEN = "[hidden: an operation secret; the server uses it itself (see --show-operation-secrets)]"


def hide_secrets(data: Any, keys: frozenset[str]) -> Any:
    """`data` with every value under one of `keys`, at any depth, hidden: its shape kept (an exec's
    fds still show which streams exist), each string in it replaced."""
    if isinstance(data, dict):
        return {k: _hidden(v) if k in keys else hide_secrets(v, keys) for k, v in data.items()}
    if isinstance(data, list):
        return [hide_secrets(item, keys) for item in data]
    return data


def _hidden(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hidden(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(item) for item in value]
    return HIDDEN if isinstance(value, str) and value else value


async def dispatch(
    upstreams: Upstreams, spec: ToolSpec, args: dict[str, Any], ctx: Context, journal: Journal | None = None
) -> dict[str, Any]:
    provider = upstreams.registry.provider_of(spec)
    if journal is None or not journal.covers(spec):
        data = await _call(upstreams, spec, args, ctx)
    else:
        data = await _journaled(journal, upstreams, spec, args, ctx)
    operation = provider.operation
    if operation is not None and operation.secrets and not shows_secrets(upstreams.settings):
        keys = frozenset(operation.secrets)
        return await off_loop(lambda result: hide_secrets(result, keys), data, upstreams.received)  # a big one: off
    return data


def shows_secrets(settings: Settings) -> bool:
    """Operation secrets reach only callers that may write (--show-operation-secrets asked for them): a
    secret drives an exec or joins a cluster, which a read-only caller must not be able to."""
    return settings.show_operation_secrets and may_write(settings)


async def _journaled(
    journal: Journal, upstreams: Upstreams, spec: ToolSpec, args: dict[str, Any], ctx: Context
) -> dict[str, Any]:
    """The call between its `sent` record (on disk before the first request) and its `outcome` record.

    A `sent` record that cannot be written stops the call before anything is sent (begin raises). An
    `outcome` record that cannot be written is logged; after a failure the agent's error stands, after
    a success the result is held back as unknown: the write went out, so "retry" could do it twice."""
    provider = upstreams.registry.provider_of(spec)
    account = upstreams.account(provider).name
    entry = await journal.begin(spec, provider, args, *audit.caller(ctx), account=account)
    with audit.tracking(entry):
        try:
            data = await _call(upstreams, spec, args, ctx)
        except (UpstreamError, ConfigError) as exc:
            unknown = isinstance(exc, UpstreamError) and exc.unknown
            await entry.end("unknown" if unknown else "error", error=journal.redactor.cut(str(exc), 500))
            raise
        except BaseException as exc:  # a bug of ours, or the client cancelled: what happened is not known
            with anyio.CancelScope(shield=True):
                await entry.end("unknown", error=f"ended by {type(exc).__name__}")
            raise
    pending = isinstance(data, dict) and data.get("done") is False
    operation = audit.operation_id(provider, data)
    if not await entry.end("pending" if pending else "ok", operation=operation):
        raise entry.unrecorded(spec, operation)
    return data


async def _call(upstreams: Upstreams, spec: ToolSpec, args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The call, and when it failed in a way the upstream does not explain, why (tools.yaml `diagnose`)."""
    try:
        return await _attempt(upstreams, spec, args, ctx)
    except UpstreamError as exc:
        if spec.diagnose is None or not diagnosis.explains(spec, exc):
            raise
        said = await diagnosis.cause(upstreams, spec, args)
        if said is None and exc.silent and spec.diagnose.otherwise is not None:
            said = diagnosis.words(spec.diagnose.otherwise, args)
        if said is None:
            raise
        raise UpstreamError(f"{exc.head} {said}", unknown=exc.unknown, status=exc.status, head=exc.head) from None


async def _attempt(upstreams: Upstreams, spec: ToolSpec, args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(round(done, 1), total, message)

    if spec.websocket:
        return await websocket.stream(upstreams, spec, args)
    if spec.long_poll:
        return await operations.long_poll(upstreams, spec, args, progress)
    if spec.asks_every_zone(args):
        return await zones.every_zone(upstreams, spec, args)
    data = await upstreams.call(spec, args)
    if spec.returns_operation and args.get("wait"):
        timeout = min(float(args["timeout_seconds"]), upstreams.settings.max_wait)
        waited = await operations.wait_for(upstreams, spec, args, data, timeout, progress)
        if spec.outcome is not None and waited["done"]:
            found = await outcome.read(upstreams, spec, args, waited["operation"])
            return found | ({"operation_id": waited["operation"].get("id")} if spec.outcome.brief else waited)
        return waited
    return data
