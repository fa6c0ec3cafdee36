"""What a finished operation came to (tools.yaml `outcome`): fields picked from it, and the text of the
files it wrote, so an agent reads a command's output rather than paths to logs no tool serves."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from mcp_cloudops.operations import dig
from mcp_cloudops.registry_models import Outcome, ToolSpec
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.upstream import UpstreamRequest, Upstreams, encode_segment, fill


def file_path(value: Any, under: str, args: dict[str, Any]) -> str | None:
    """`value`, an upstream's path to a file, rebuilt under `under` (a template filled from `args`) with
    every further segment encoded; None when the upstream named anything else (another place, another
    host, a dot-segment): a file is read only where the tool says its files live."""
    if not isinstance(value, str) or not value.startswith("/") or any(mark in value for mark in ("//", "?", "#")):
        return None
    parts = value.strip("/").split("/")
    prefix = [fill(part, {k: str(v) for k, v in args.items()}) for part in under.strip("/").split("/")]
    rest = parts[len(prefix) :]
    if parts[: len(prefix)] != prefix or not rest or any(part in (".", "..") for part in rest):
        return None
    return fill(under, args) + "/".join(encode_segment(part) for part in rest)


async def read(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    """The outcome of `tool`'s finished operation `op`: picked fields, then each file's text. The files
    share one budget of max_bytes; `output_truncated` says whether any was cut."""
    spec = tool.outcome
    assert spec is not None
    provider = upstreams.registry.provider_of(tool)
    base = upstreams.base_for(tool, args)
    result: dict[str, Any] = {key: dig(op, field) for key, field in spec.pick.items()}
    if spec.read is not None:
        result |= await read_back(upstreams, tool, args, op, spec.read)
    paths: dict[str, str | None] = {}
    for key, field in spec.files.items():  # every path checked before any file is read (or removed)
        located = dig(op, field)
        paths[key] = None if located is None else file_path(located, spec.under or "", args)
        if located is not None and paths[key] is None:
            raise UpstreamError(unexpected(tool, spec, key, op, provider.operation and provider.operation.tool))
    budget, truncated = int(args.get("max_bytes", 0)), False  # the registry gives file readers max_bytes
    for key, path in paths.items():
        if path is None:
            result[key] = None  # nothing recorded for this stream
            continue
        request = UpstreamRequest("GET", base + path)
        try:
            data, cut = await upstreams.download(tool, provider, request, budget)
        except UpstreamError as exc:  # the command ran: say so, and what is unknown
            picked = {name: result[name] for name in spec.pick}
            raise UpstreamError(unread(tool, key, op, picked, str(exc))) from None
        budget, truncated = budget - len(data), truncated or cut
        result[key] = data.decode("utf-8", errors="replace")
        if spec.remove:
            with suppress(UpstreamError):  # left behind, it costs disk only; the answer is what matters
                await upstreams.send(tool, provider, UpstreamRequest("DELETE", request.url))
    if spec.files:
        result["output_truncated"] = truncated
    return result


async def read_back(
    upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any], op: dict[str, Any], path: str
) -> dict[str, Any]:
    """The fields `show` keeps of what the change came to, read with the call's query arguments (its project)."""
    spec = tool.outcome
    assert spec is not None
    provider = upstreams.registry.provider_of(tool)
    try:
        data = await upstreams.send(tool, provider, upstreams.reading(tool, args, path, with_query=True))
    except UpstreamError as exc:  # the change happened: say so, and what is unknown
        raise UpstreamError(
            f"{tool.name} finished (operation {op.get('id')}), but what it came to could not be read back: {exc}"
        ) from None
    return {key: dig(data, field) for key, field in spec.show.items()}


def unexpected(tool: ToolSpec, spec: Outcome, key: str, op: dict[str, Any], follow: str | None) -> str:
    how = f"{follow} with id {op.get('id')}" if follow else "the operation"
    return (
        f"{tool.name} ran (operation {op.get('id')}), but the upstream named a {key} file outside "
        f"{spec.under}, so it was not read. Read how it ended with {how}."
    )


def unread(tool: ToolSpec, key: str, op: dict[str, Any], picked: dict[str, Any], why: str) -> str:
    known = ", ".join(f"{name} {value}" for name, value in picked.items())
    return (
        f"{tool.name} ran (operation {op.get('id')}{', ' + known if known else ''}), but its {key} could not be "
        f"read back, so the output is unknown: {why} Do not simply rerun a command that changes things."
    )
