"""What a call runs when it names it only by id (a Docker exec, an Incus exec operation), and what it acts
on as people know it (a name and a state), read from the upstream so that the user is asked about the
command and the instance themselves, not about opaque ids.

Also the follow-up reads of websocket tools (an exit code once a stream ends): both are one GET whose
answer's named fields are picked.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_cloudops.operations import dig
from mcp_cloudops.registry_models import FollowUp, Target, ToolSpec
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.upstream import Upstreams, zone_values


async def picked(upstreams: Upstreams, tool: ToolSpec, read: FollowUp, args: dict[str, Any]) -> dict[str, Any]:
    """One GET of `read.path` (filled with the call's arguments), and the fields `read.pick` names."""
    data = await upstreams.send(tool, upstreams.registry.provider_of(tool), upstreams.reading(tool, args, read.path))
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


async def target(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> str:
    """The target as people know it, e.g. `"db-1" (state "stopped", disk-size 100)`: its name and the fields
    tools.yaml `ask.target` shows, each as JSON (an upstream's text is quoted, never taken for ours). Read
    with the call's query arguments (its project); unreadable, nobody is asked and nothing is changed."""
    assert tool.ask is not None and tool.ask.target is not None
    spec: Target = tool.ask.target
    provider = upstreams.registry.provider_of(tool)
    zones = zone_values(tool, provider, args, upstreams.account(provider))
    try:
        data = await upstreams.send(tool, provider, upstreams.reading(tool, args, spec.read, with_query=True))
    except UpstreamError as exc:
        raise UpstreamError(
            f"{tool.name} was refused and nothing was changed: what it acts on could not be read to show the user "
            f"first. {exc}"
        ) from None
    fields = [(field.rsplit(".", 1)[-1], dig(data, field)) for field in spec.show]
    fields += [("zone", zone) for zone in dict.fromkeys(zones.values())][:1]  # where it is, as the call resolved it
    shown = ", ".join(f"{name} {json.dumps(value, ensure_ascii=False)}" for name, value in fields)
    name = json.dumps(dig(data, spec.name), ensure_ascii=False)
    return f"{name} ({shown})" if shown else name
