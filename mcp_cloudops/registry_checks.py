"""Checks of tools.yaml that span fields: names resolved to definitions, each tool's cross-field
mistakes, and where a validation error lies, said as "tool NAME field F" for the person editing it.

Kept apart from the models (registry_models.py) they check, and from the loader (registry.py) that runs them.
"""

from __future__ import annotations

import re
from typing import Any

from mcp_cloudops.registry_models import Provider, ToolSpec

PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def with_params_resolved(tool: Any, raw: dict[str, Any]) -> Any:
    """A tool whose params may name a definition (`- zone`) instead of spelling it out: each fact is
    stated once, in its provider's `params` or the top-level ones, and used by every tool it fits."""
    if not isinstance(tool, dict) or not isinstance(tool.get("params"), list):
        return tool
    provider = raw["providers"].get(tool.get("provider"))
    if not isinstance(provider, dict):  # an unknown provider is the error to report, not its names
        return {**tool, "params": [param for param in tool["params"] if not isinstance(param, str)]}
    own = provider.get("params")
    defined = {**(raw.get("params") or {}), **(own or {})}  # a provider's own definition wins
    params = []
    for index, param in enumerate(tool["params"]):
        if not isinstance(param, str):
            params.append(param)
        elif isinstance(defined.get(param), dict):
            params.append(defined[param])
        else:
            known = ", ".join(sorted(defined)) or "none"
            raise ValueError(
                f"tool {tool.get('name')!r} field 'params.{index}': no parameter definition named {param!r} "
                f"(provider {tool.get('provider')!r} and the top-level params define: {known})"
            )
    return {**tool, "params": params}


def tool_problems(tool: ToolSpec, providers: dict[str, Provider]) -> list[str]:
    """Every cross-field mistake in one tool, each naming the tool and the field."""
    where = f"tool {tool.name!r}"
    problems: list[str] = []
    provider = providers.get(tool.provider)
    if provider is None:
        return [f"{where} field 'provider': unknown provider {tool.provider!r} (known: {', '.join(providers)})"]

    names = [p.name for p in tool.params]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"{where} field 'params': parameter {name!r} is declared twice")

    placeholders = PLACEHOLDER.findall(tool.path)
    path_params = {p.name for p in tool.params_in("path")}
    zone_params = tool.params_in("zone")
    for name in placeholders:
        if name == "zone" and zone_params:
            continue
        if name not in path_params:
            problems.append(f"{where} field 'path': placeholder {{{name}}} has no 'in: path' parameter")
    for name in path_params - set(placeholders):
        problems.append(f"{where} field 'params': path parameter {name!r} does not appear in path")
    for param in tool.params_in("path"):
        if not param.required:
            problems.append(f"{where} field 'params.{param.name}': path parameters must be required")
    for param in tool.params_in("path", "body"):  # they address one resource or carry a write's content
        if param.narrows:
            problems.append(
                f"{where} field 'params.{param.name}.narrows': a {param.location} parameter does not narrow a result"
            )

    zoned = "{zone}" in (provider.base_url or "") or "{zone}" in tool.path
    if zoned and not zone_params:
        problems.append(f"{where} field 'params': the URL holds {{zone}} but no parameter has 'in: zone'")
    if zone_params and not provider.zones:
        problems.append(f"{where} field 'params': 'in: zone' but provider {provider.key!r} declares no zones")

    if tool.hints.readOnly and tool.method != "GET":
        problems.append(f"{where} field 'hints.readOnly': a read-only tool must use GET, not {tool.method}")
    if tool.hints.readOnly and tool.hints.destructive:
        problems.append(f"{where} field 'hints': readOnly and destructive contradict each other")
    if tool.method in ("GET", "DELETE") and tool.params_in("body"):
        problems.append(f"{where} field 'params': {tool.method} requests carry no body parameters")
    if tool.websocket and tool.method != "GET":
        problems.append(f"{where} field 'method': websocket tools open with GET")
    if tool.returns_operation and provider.operation is None:
        problems.append(f"{where} field 'returns_operation': provider {provider.key!r} declares no 'operation'")
    if (tool.wait_default or tool.outcome is not None) and not tool.returns_operation:
        problems.append(f"{where} field 'wait_default'/'outcome': only a tool with returns_operation waits")
    if tool.outcome is not None:
        for field in ("under", "read"):
            for name in PLACEHOLDER.findall(getattr(tool.outcome, field) or ""):
                if name not in names:
                    problems.append(f"{where} field 'outcome.{field}': placeholder {{{name}}} is not a parameter")
        if tool.outcome.files and "max_bytes" not in names:
            problems.append(f"{where} field 'outcome.files': reading files needs a max_bytes parameter")
    if tool.confirm_only is not None:
        if not tool.hints.destructive:
            problems.append(f"{where} field 'confirm_only': only a destructive tool asks for confirmation")
        if not tool.confirm_only:
            problems.append(f"{where} field 'confirm_only': names no argument, so nothing would be asked")
        by_name = {p.name: p for p in tool.params}
        for name, values in tool.confirm_only.items():
            if name not in by_name:
                problems.append(f"{where} field 'confirm_only': {name!r} is not a parameter")
                continue
            enum = by_name[name].json_schema.get("enum")
            if not values or (enum is not None and not set(values) <= set(enum)):
                problems.append(
                    f"{where} field 'confirm_only.{name}': values {list(values)} must be some of {name}'s values"
                    + (f" {enum}" if enum else "")
                )
    if tool.confirm_given is not None:
        if tool.hints.destructive or tool.credential:
            problems.append(f"{where} field 'confirm_given': this tool asks on every call already")
        if not tool.confirm_given:
            problems.append(f"{where} field 'confirm_given': names no argument, so nothing would be asked")
        for name in tool.confirm_given:
            if name not in names:
                problems.append(f"{where} field 'confirm_given': {name!r} is not a parameter")
    asking = tool.hints.destructive or tool.credential or bool(tool.confirm_given)
    if asking and tool.ask is None:
        problems.append(f"{where} field 'ask': a tool that asks the user says what it does (action, consequence)")
    if tool.ask is not None:
        if not asking:
            problems.append(f"{where} field 'ask': only a tool that asks the user has a question")
        texts = (("action", tool.ask.action), ("target.read", tool.ask.target and tool.ask.target.read),
                 ("covers", tool.ask.covers))  # fmt: skip
        for field, text in texts:
            for name in PLACEHOLDER.findall(text or ""):
                if name not in names:
                    problems.append(f"{where} field 'ask.{field}': placeholder {{{name}}} is not a parameter")
    for n, check in enumerate(tool.diagnose.checks if tool.diagnose else ()):
        texts = [check.read, check.say, *(check.find.where.values() if check.find else ()),
                 *(check.find.has.values() if check.find else ())]  # fmt: skip
        for name in {name for text in texts for name in PLACEHOLDER.findall(text)} - {"value", "found"}:
            if name not in names:
                problems.append(f"{where} field 'diagnose.checks.{n}': placeholder {{{name}}} is not a parameter")
    if tool.diagnose is not None and tool.diagnose.silent and not tool.websocket:
        problems.append(f"{where} field 'diagnose.silent': only a websocket stream can end silent")
    if tool.zonal is not None and not (tool.params_in("zone") and provider.zones and tool.method == "GET"):
        problems.append(f"{where} field 'zonal': only a listing (GET) with a zone parameter lists every zone")
    if tool.review is not None:
        if not (tool.hints.destructive or tool.credential or tool.confirm_given):
            problems.append(f"{where} field 'review': only a tool that asks the user shows what runs")
        for name in PLACEHOLDER.findall(tool.review.path):
            if name not in names:
                problems.append(f"{where} field 'review.path': placeholder {{{name}}} is not a parameter")
    if tool.long_poll is not None:
        if tool.long_poll not in {p.name for p in tool.params_in("query")}:
            problems.append(f"{where} field 'long_poll': {tool.long_poll!r} is not a query parameter")
        if provider.operation is None:
            problems.append(f"{where} field 'long_poll': provider {provider.key!r} declares no 'operation'")
    if tool.demux and not tool.websocket:
        problems.append(f"{where} field 'demux': only websocket streams are demultiplexed")
    if tool.after is not None:
        if not tool.websocket:
            problems.append(f"{where} field 'after': only websocket tools have a follow-up read")
        for name in PLACEHOLDER.findall(tool.after.path):
            if name not in names:
                problems.append(f"{where} field 'after.path': placeholder {{{name}}} is not a parameter")
    if tool.pages is not None:
        query = {p.name for p in tool.params_in("query")}
        for field in ("at", "size"):
            if (name := getattr(tool.pages, field)) not in query:
                problems.append(f"{where} field 'pages.{field}': {name!r} is not a query parameter")
    if tool.attach_all is not None:
        if not tool.websocket:
            problems.append(f"{where} field 'attach_all': only websocket tools attach to streams")
        if tool.attach_all.secret not in {p.name for p in tool.params_in("query")}:
            problems.append(f"{where} field 'attach_all.secret': {tool.attach_all.secret!r} is not a query parameter")
    if tool.only_reads is not None:
        if not (tool.websocket and tool.hints.readOnly):
            problems.append(f"{where} field 'only_reads': only read-only websocket tools refuse streams")
        if tool.only_reads.secret not in {p.name for p in tool.params_in("query")}:
            problems.append(f"{where} field 'only_reads.secret': {tool.only_reads.secret!r} is not a query parameter")
    for name in tool.query:
        if name in names:
            problems.append(f"{where} field 'query': fixed query {name!r} clashes with a parameter")
    if tool.body and tool.method in ("GET", "DELETE"):  # websocket tools are GET: covered
        problems.append(f"{where} field 'body': {tool.method} requests carry no body")
    for name in tool.body:
        if name in names:
            problems.append(f"{where} field 'body': fixed body field {name!r} clashes with a parameter")
    return problems


def field_location(raw: Any, loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into 'tool NAME field F' (or 'provider KEY field F')."""
    if len(loc) >= 2 and loc[0] == "tools" and isinstance(loc[1], int):
        tools = raw.get("tools") if isinstance(raw, dict) else None
        item = tools[loc[1]] if isinstance(tools, list) and loc[1] < len(tools) else None
        name = item.get("name") if isinstance(item, dict) else None
        label = f"tool {name!r}" if name else f"tools[{loc[1]}]"
        field = _field_path(raw, loc[2:], item)
        return f"{label} field {field!r}" if field else label
    if len(loc) >= 2 and loc[0] == "providers":
        field = ".".join(str(part) for part in loc[2:])
        return f"provider {loc[1]!r}" + (f" field {field!r}" if field else "")
    return ".".join(str(part) for part in loc) or "tools.yaml"


def _field_path(raw: Any, loc: tuple[int | str, ...], item: Any) -> str:
    parts: list[str] = []
    node = item
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(str(name) if name else str(part))
            continue
        if isinstance(part, int):
            parts.append(str(part))
            continue
        parts.append(part)
        node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts)
