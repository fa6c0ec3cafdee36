"""What a call runs when it names it only by id (a Docker exec, an Incus exec operation), read from
the upstream so that the user is asked about the command itself, not about an opaque id.

Also the follow-up reads of websocket tools (an exit code once a stream ends): both are one GET whose
answer's named fields are picked.
"""

from __future__ import annotations

from typing import Any

from mcp_cloudops.operations import dig
from mcp_cloudops.registry_models import FollowUp, ToolSpec
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.upstream import UpstreamRequest, Upstreams, fill


async def picked(upstreams: Upstreams, tool: ToolSpec, read: FollowUp, args: dict[str, Any]) -> dict[str, Any]:
    """One GET of `read.path` (filled with the call's arguments), and the fields `read.pick` names."""
    provider = upstreams.registry.provider_of(tool)
    request = UpstreamRequest("GET", upstreams.base_for(tool, args) + fill(read.path, args))
    data = await upstreams.send(tool, provider, request)
    return {name: dig(data, field) for name, field in read.pick.items()}


async def what_runs(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """The fields the question shows first (tools.yaml `review`). Unreadable, nobody is asked and nothing
    runs: a yes to an id alone is what this prevents."""
    assert tool.review is not None
    try:
        return await picked(upstreams, tool, tool.review, args)
    except UpstreamError as exc:
        raise UpstreamError(
            f"{tool.name} was refused and nothing was run: what it would run could not be read to show the "
            f"user first. {exc}"
        ) from None
