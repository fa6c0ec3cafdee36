"""Why a call failed when the upstream does not say (tools.yaml `diagnose`): after the failure, reads that
tell the causes apart, in order; the first that fails names the cause and the tool showing the right values.

A Kubernetes path on a Docker environment reaches Docker, which answers "page not found"; a pod exec that
cannot start just closes. An agent told "page not found" tries other pod names; told "environment 1 is a
Docker environment", it picks another environment.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from mcp_cloudops.operations import dig
from mcp_cloudops.registry_checks import PLACEHOLDER
from mcp_cloudops.registry_models import Check, Find, ToolSpec
from mcp_cloudops.results import UpstreamError

if TYPE_CHECKING:
    from mcp_cloudops.upstream import Upstreams


def explains(tool: ToolSpec, error: UpstreamError) -> bool:
    """Whether the tool's diagnosis covers this failure: one of its statuses, or a stream that closed before
    any output."""
    diagnose = tool.diagnose
    if diagnose is None:
        return False
    return (error.status is not None and error.status in diagnose.status) or (error.silent and diagnose.silent)


async def cause(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> str | None:
    """What the first failing check says, or None when every check passes (or a check cannot be read: the
    upstream's own words then stand)."""
    assert tool.diagnose is not None
    provider = upstreams.registry.provider_of(tool)
    for check in tool.diagnose.checks:
        try:
            data = await upstreams.send(tool, provider, upstreams.reading(tool, args, check.read))
        except UpstreamError:
            return None
        if (said := failed(check, data, args)) is not None:
            return said
    return None


def failed(check: Check, data: Any, args: dict[str, Any]) -> str | None:
    """`check.say` filled in when `data` shows the cause, else None."""
    for field, wanted in check.expect.items():
        value = dig(data, field)
        if value not in wanted:
            found = check.names.get(str(value), "of an unknown kind")
            return words(check.say, args | {"value": value, "found": found})
    if check.find is not None and not found_in(check.find, data, args):
        return words(check.say, args)
    return None


def found_in(find: Find, data: Any, args: dict[str, Any]) -> bool:
    items = dig(data, find.within)
    for item in items if isinstance(items, list) else []:
        if all(dig(item, field) == words(value, args) for field, value in find.where.items()):
            if find.then is None:
                return True
            inner = dig(item, find.then)
            return any(
                all(dig(entry, field) == words(value, args) for field, value in find.has.items())
                for entry in (inner if isinstance(inner, list) else [])
            )
    return False


def words(template: str, values: dict[str, Any]) -> str:
    """The template with each {name} its value: text as it is, anything else as JSON."""

    def value(match: re.Match[str]) -> str:
        found = values.get(match.group(1))
        return found if isinstance(found, str) else json.dumps(found)

    return PLACEHOLDER.sub(value, template)
