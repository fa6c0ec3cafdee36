"""`zone: "all"` on a listing tools.yaml marks `zonal`: every zone asked at once (a few at a time), the
items merged in zone order, each carrying its `zone`, and the zones that failed or did not answer in time
named in `zone_errors`. Finding one instance among eight Exoscale zones took an agent eight calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from mcp_cloudops.registry_models import ToolSpec
from mcp_cloudops.results import UpstreamError, one_line

if TYPE_CHECKING:  # the call machinery loads on the first call; the schema reads the words below at start
    from mcp_cloudops.upstream import Upstreams

EVERY_ZONE_WORDS = ' "all": every zone at once.'  # appended to the zone's description on zonal tools
AT_ONCE = 4  # zones asked at the same time: enough to answer in one wait, few enough to spare the upstream


async def every_zone(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """The listing of every zone of the tool's provider, merged. A zone's failure is reported, not raised:
    the others' items are still what the agent asked for."""
    assert tool.zonal is not None
    provider = upstreams.registry.provider_of(tool)
    zone_name = tool.params_in("zone")[0].name
    wait = upstreams.settings.max_wait
    answers: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    limiter = anyio.CapacityLimiter(AT_ONCE)

    async def ask(zone: str) -> None:
        async with limiter:
            with anyio.move_on_after(wait) as scope:
                try:
                    answers[zone] = await upstreams.call(tool, {**args, zone_name: zone})
                except UpstreamError as exc:
                    errors[zone] = one_line(str(exc))
            if scope.cancelled_caught:
                errors[zone] = f"no answer within {wait:g} s: call again with zone {zone!r} alone"

    async with anyio.create_task_group() as group:
        for zone in provider.zones:
            group.start_soon(ask, zone)
    return merged(tool, provider.zones, answers, errors)


def merged(
    tool: ToolSpec, zones: tuple[str, ...], answers: dict[str, dict[str, Any]], errors: dict[str, str]
) -> dict[str, Any]:
    """One listing: the items of each zone that answered, in zone order, each with its `zone`; per zone, the
    next page where the upstream has one; and each zone's error."""
    assert tool.zonal is not None
    items, next_pages = [], {}
    for zone in zones:
        if zone not in answers:
            continue
        found = answers[zone].get(tool.zonal)
        items += [{**item, "zone": zone} if isinstance(item, dict) else item for item in found or []]
        if answers[zone].get("next_page") is not None:
            next_pages[zone] = answers[zone]["next_page"]
    result: dict[str, Any] = {tool.zonal: items, "zones": [zone for zone in zones if zone in answers]}
    if next_pages:
        result["next_page"] = next_pages  # zone -> the page to ask next, in that zone alone
    if errors:
        result["zone_errors"] = {zone: errors[zone] for zone in zones if zone in errors}
    return result
