"""Destructive tools ask the user first, through MCP elicitation, in both protocol eras.

The SDK's resolvers carry the question: a mid-call request on handshake-era connections, an
input-required round trip on 2026-07-28 ones. A client that cannot elicit (Claude Desktop today)
gets the configured fallback: `allow` (its own approval prompt is the check) or `refuse`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection
from typing import Annotated, Any

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve, build_resolver_plans, find_resolved_parameters
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from mcp_cloudops.redaction import Redactor
from mcp_cloudops.registry import ToolSpec

Run = Callable[..., Awaitable[CallToolResult]]
SHOWN = 300  # characters of the arguments shown in the question


class Confirmation(BaseModel):
    confirm: bool = Field(description="Yes: go ahead with this destructive change")


def can_elicit(ctx: Context) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def question(spec: ToolSpec, arguments: Any, redactor: Redactor) -> str:
    shown = json.dumps(redactor.data(arguments or {}), ensure_ascii=False)[:SHOWN]
    return f"Confirm a destructive change: {spec.title} ({spec.name}) with {shown}. This cannot be undone."


def refusal(spec: ToolSpec, ctx: Context, outcome: ElicitationResult[Confirmation], fallback: str) -> str | None:
    """Why the call must not go ahead, or None when it may."""
    if not can_elicit(ctx):
        if fallback == "allow":
            return None
        return (
            f"{spec.name} is destructive and this client cannot confirm it (no MCP elicitation), so it was "
            "refused and nothing changed. To allow destructive tools for such clients, restart the server "
            "with --confirm-fallback allow (MCP_CLOUDOPS_CONFIRM_FALLBACK=allow)."
        )
    data = getattr(outcome, "data", None)
    if outcome.action == "accept" and isinstance(data, Confirmation) and data.confirm:
        return None
    return f"The user did not confirm {spec.name} ({outcome.action}); nothing was changed. Do not retry unasked."


def guard(
    run: Run,
    spec: ToolSpec,
    fallback: str,
    redactor: Redactor,
    arg_names: Collection[str],
    failed: Callable[[str], CallToolResult],
) -> tuple[Run, dict[str, Any]]:
    """`run` behind a confirmation, and the resolver wiring the SDK's Tool needs for it."""

    async def ask(ctx: Context) -> Elicit[Confirmation] | Confirmation:
        if not can_elicit(ctx):
            return Confirmation(confirm=False)  # unused: refusal() applies the fallback
        params = getattr(ctx, "_input_params", None)  # the call's arguments, to show the user
        return Elicit(question(spec, getattr(params, "arguments", None), redactor), Confirmation)

    async def confirmed(
        ctx: Context, confirmation: ElicitationResult[Confirmation], **arguments: Any
    ) -> CallToolResult:
        if (reason := refusal(spec, ctx, confirmation, fallback)) is not None:
            return failed(reason)
        return await run(ctx, **arguments)

    # Real objects, not strings: the SDK reads the resolver from the annotation.
    confirmed.__annotations__["confirmation"] = Annotated[ElicitationResult[Confirmation], Resolve(ask)]
    resolved = find_resolved_parameters(confirmed)
    return confirmed, {"resolved_params": dict(resolved), "resolver_plans": build_resolver_plans(resolved, arg_names)}
