"""2. Context cost: the bytes of a tools/list result, per tool and toolset, what they are made of, and
what the cuts we chose not to make would save. An agent pays for these bytes in context on every turn.
With dynamic toolsets: the bytes at connect and after each enable-toolset, and the calls to reach a tool.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from common import BENCH, PEER_PY, ROOT, BenchError, base_env, compact, nbytes


def _strip(node: Any, should_drop: Callable[[str, Any, list[str]], bool], path: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v, should_drop, [*path, k]) for k, v in node.items() if not should_drop(k, v, path)}
    if isinstance(node, list):
        return [_strip(v, should_drop, path) for v in node]
    return node


def _in_properties(path: list[str]) -> bool:
    """Whether the dict at `path` is a property schema (…/properties/<name>), not a properties map."""
    return len(path) >= 2 and path[-2] == "properties"


CONSTRAINTS = ("minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
               "minItems", "maxItems", "uniqueItems", "multipleOf")  # fmt: skip


def breakdown(tool: dict[str, Any]) -> dict[str, int]:
    """Bytes of one tool's tools/list entry by kind. Each category is what removing it saves, taken
    in this order, so the categories add up exactly to the entry's size."""

    def schema_drop(pred: Callable[[str, Any, list[str]], bool]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def apply(t: dict[str, Any]) -> dict[str, Any]:
            t = dict(t)
            if "inputSchema" in t:
                t["inputSchema"] = _strip(t["inputSchema"], pred, [])
            return t

        return apply

    def drop_keys(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda t: {k: v for k, v in t.items() if k not in keys}

    def drop_annotation_title(t: dict[str, Any]) -> dict[str, Any]:
        t = dict(t)
        if isinstance(t.get("annotations"), dict):
            t["annotations"] = {k: v for k, v in t["annotations"].items() if k != "title"}
        return t

    def kw(*names: str, value: Callable[[Any], bool] = lambda v: True) -> Callable[[str, Any, list[str]], bool]:
        """A schema keyword (never a parameter that happens to be named like one)."""
        return lambda k, v, p: k in names and value(v) and not (p and p[-1] == "properties")

    steps = [
        ("param_descriptions", schema_drop(kw("description", value=lambda v: isinstance(v, str)))),
        ("zone_enums", schema_drop(lambda k, v, p: kw("enum")(k, v, p) and bool(p) and p[-1] == "zone")),
        ("other_enums", schema_drop(kw("enum"))),
        ("defaults", schema_drop(kw("default"))),
        ("additionalProperties_false", schema_drop(kw("additionalProperties", value=lambda v: v is False))),
        ("required_lists", schema_drop(kw("required", value=lambda v: isinstance(v, list)))),
        ("types_and_formats", schema_drop(kw("type", "format", value=lambda v: isinstance(v, str | list)))),
        ("constraints", schema_drop(kw(*CONSTRAINTS, value=lambda v: not isinstance(v, dict)))),
        ("param_names_and_nesting", drop_keys("inputSchema")),
        ("output_schema", drop_keys("outputSchema")),
        ("annotations_title_duplicate", drop_annotation_title),
        ("annotations_hints", drop_keys("annotations")),
        ("tool_description", drop_keys("description")),
        ("title", drop_keys("title")),
        ("meta_and_other", lambda t: {k: v for k, v in t.items() if k == "name"}),
    ]
    out: dict[str, int] = {}
    current = deepcopy(tool)
    size = nbytes(current)
    for label, step in steps:
        nxt = step(current)
        new_size = nbytes(nxt)
        out[label] = size - new_size
        current, size = nxt, new_size
    out["name_and_braces"] = size
    return out


def context_cost(tools: list[dict[str, Any]], group_of: Callable[[str], str], result_bytes: int) -> dict[str, Any]:
    per_tool = []
    totals: dict[str, int] = defaultdict(int)
    groups: dict[str, list[int]] = defaultdict(list)
    param_desc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    enums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in tools:
        size = nbytes(t)
        parts = breakdown(t)
        for k, v in parts.items():
            totals[k] += v
        groups[group_of(t["name"])].append(size)
        per_tool.append(
            {
                "name": t["name"],
                "group": group_of(t["name"]),
                "bytes": size,
                "tokens_est": size // 4,
                "breakdown": parts,
            }
        )

        def walk(node: Any, path: list[str]) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "description" and isinstance(v, str) and path and _in_properties(path):
                        entry = param_desc[v]
                        entry[0] += 1
                        entry[1] += len(compact(v).encode()) + len('"description":,')
                    elif k == "enum" and isinstance(v, list):
                        entry = enums[compact(v)]
                        entry[0] += 1
                        entry[1] += len(compact(v).encode()) + len('"enum":,')
                    else:
                        walk(v, [*path, k])
            elif isinstance(node, list):
                for v in node:
                    walk(v, path)

        walk(t.get("inputSchema", {}), [])
    total_tools = sum(r["bytes"] for r in per_tool)
    n = len(per_tool) or 1
    return {
        "tools": len(per_tool),
        "result_bytes": result_bytes,
        "tokens_est": result_bytes // 4,
        "bytes_per_tool": round(result_bytes / n, 1),
        "tokens_per_tool_est": round(result_bytes / n / 4, 1),
        "breakdown_bytes": dict(totals),
        "breakdown_share": {k: round(v / total_tools, 3) for k, v in totals.items()},
        "breakdown_bytes_per_tool": {k: round(v / n, 1) for k, v in totals.items()},
        "by_group": {
            g: {
                "tools": len(v),
                "bytes": sum(v),
                "bytes_per_tool": round(sum(v) / len(v), 1),
                "tokens_est": sum(v) // 4,
            }
            for g, v in groups.items()
        },
        "per_tool": sorted(per_tool, key=lambda r: -r["bytes"]),
        "top_param_descriptions": [
            {"text": text, "count": c, "bytes_total": b}
            for text, (c, b) in sorted(param_desc.items(), key=lambda kv: -kv[1][1])[:15]
        ],
        "top_enums": [
            {"enum": text if len(text) < 160 else text[:157] + "...", "count": c, "bytes_total": b}
            for text, (c, b) in sorted(enums.items(), key=lambda kv: -kv[1][1])[:8]
        ],
    }


MCP_HINT_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


def what_if(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Savings of the cuts we chose not to make (docs/performance.md, "What tools/list shows"), measured on the
    real entries: each alone, then together. Every parameter keeps its description."""

    def without_annotations(t: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
        return {**t, "annotations": a} if a else {k: v for k, v in t.items() if k != "annotations"}

    def no_annotation_title(t: dict[str, Any]) -> dict[str, Any]:
        a = {k: v for k, v in t.get("annotations", {}).items() if k != "title" or v != t.get("title")}
        return without_annotations(t, a)

    def read_only_irrelevant_hints(t: dict[str, Any]) -> dict[str, Any]:
        a = dict(t.get("annotations", {}))
        if a.get("readOnlyHint"):  # the spec: destructive/idempotent hints are meaningful only when not read-only
            a.pop("destructiveHint", None)
            a.pop("idempotentHint", None)
        return without_annotations(t, a)

    def hint_defaults(t: dict[str, Any]) -> dict[str, Any]:
        a = {k: v for k, v in t.get("annotations", {}).items() if MCP_HINT_DEFAULTS.get(k, object()) != v}
        return without_annotations(t, a)

    changes: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
        ("drop annotations.title (repeats the tool's top-level title)", no_annotation_title),
        ("drop destructive/idempotent hints of read-only tools (spec: meaningless there)", read_only_irrelevant_hints),
        ("omit every hint equal to its MCP default (openWorldHint:true, readOnlyHint:false...)", hint_defaults),
    ]
    n = len(tools)
    wrapper = len('{"tools":[]}') + n - 1

    def per_tool(ts: list[dict[str, Any]]) -> float:
        return round((sum(nbytes(t) for t in ts) + wrapper) / n, 1)

    base = per_tool(tools)
    rows = [
        {"change": label, "saves_per_tool": round(base - per_tool([change(t) for t in tools]), 1)}
        for label, change in changes
    ]
    combined = tools
    for _, change in changes:
        combined = [change(t) for t in combined]
    after = per_tool(combined)
    rows.append({"change": "all of the above", "saves_per_tool": round(base - after, 1), "bytes_per_tool_after": after})
    return rows


def _our_server(env: dict[str, str]) -> Any:
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    return build_server(Settings.from_env(env))


def _dumped(result: Any) -> tuple[list[dict[str, Any]], int]:
    """A tools/list result as the wire carries it: (tool entries, bytes of the compact JSON result)."""
    dumped = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped["tools"], nbytes(dumped)


async def our_tools_list(env: dict[str, str]) -> tuple[list[dict[str, Any]], int, dict[str, str]]:
    """tools/list of our server in legacy mode, in-process: (tools, result bytes, name -> provider)."""
    from mcp import Client

    from mcp_cloudops.registry import load_registry

    async with Client(_our_server(env), mode="legacy") as client:
        tools, size = _dumped(await client.list_tools())
    providers = {t.name: t.provider for t in load_registry().tools}
    return tools, size, providers


DYNAMIC_ENV = "MCP_CLOUDOPS_DYNAMIC_TOOLSETS"  # = serve --dynamic-toolsets
DISCOVERY_TOOLS = ("list-toolsets", "enable-toolset")
TOOLSET_FIELDS = ("name", "title", "description", "tools", "enabled", "configured")
DYNAMIC_FIRST_LIST_TARGET = 6000  # bytes of the first tools/list in dynamic mode
MAX_CALLS_TO_REACH = 2  # list-toolsets + enable-toolset


async def reach(env: dict[str, str], toolset: str, wanted: set[str], problems: list[str]) -> dict[str, Any]:
    """An agent that wants the tools `wanted` (of `toolset`), from connect: it lists the tools and, while
    they are not all listed, calls list-toolsets (once), then enable-toolset, and lists again when the
    server says notifications/tools/list_changed. Counts the tool calls it made before they were listed
    and records every listing's bytes. Whatever departs from the documented interface goes to `problems`."""
    import anyio
    from mcp import Client
    from mcp.types import ToolListChangedNotification

    changed = anyio.Event()
    notices = 0

    async def on_message(message: Any) -> None:
        nonlocal notices
        if isinstance(message, ToolListChangedNotification):
            notices += 1
            changed.set()

    where = f"{toolset}:"
    calls: list[str] = []
    listings: list[dict[str, Any]] = []
    structured: dict[str, Any] = {}
    async with Client(_our_server(env), mode="legacy", message_handler=on_message) as client:

        async def list_tools() -> set[str]:
            tools, size = _dumped(await client.list_tools())
            names = [t["name"] for t in tools]
            listings.append({"after_calls": len(calls), "tools": len(names), "names": names, "result_bytes": size})
            return set(names)

        async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            result = await client.call_tool(name, arguments)
            calls.append(name)
            if result.is_error:
                text = " ".join(getattr(c, "text", "") for c in result.content)[:200]
                problems.append(f"{where} {name} {compact(arguments)} returned an error: {text}")
            structured[name] = result.structured_content or {}
            return structured[name]

        listed = await list_tools()
        catalogue: list[dict[str, Any]] | None = None
        while not wanted <= listed and len(calls) <= MAX_CALLS_TO_REACH:
            if catalogue is None:
                catalogue = (await call("list-toolsets", {})).get("toolsets")
                if not isinstance(catalogue, list):
                    problems.append(f"{where} list-toolsets structuredContent has no toolsets list")
                    break
                entry = next((e for e in catalogue if isinstance(e, dict) and e.get("name") == toolset), None)
                if entry is None:
                    problems.append(f"{where} list-toolsets does not list {toolset}")
                    break
                missing = [k for k in TOOLSET_FIELDS if k not in entry]
                if missing:
                    problems.append(f"{where} list-toolsets entry lacks {', '.join(missing)}")
                if entry.get("tools") != len(wanted):
                    problems.append(f"{where} list-toolsets says {entry.get('tools')} tools, default mode lists "
                                    f"{len(wanted)}")  # fmt: skip
                continue
            changed = anyio.Event()
            answer = await call("enable-toolset", {"toolset": toolset})
            if answer.get("toolset") != toolset or answer.get("enabled") is not True:
                problems.append(f"{where} enable-toolset answered {compact(answer)[:160]}")
            elif set(answer.get("tools") or ()) != wanted:
                problems.append(f"{where} enable-toolset's tools differ from the toolset's in default mode")
            with anyio.move_on_after(5):
                await changed.wait()
            if not changed.is_set():
                problems.append(f"{where} no notifications/tools/list_changed within 5 s of enable-toolset")
            listed = await list_tools()
    reached = wanted <= listed
    if not reached:
        problems.append(f"{where} not every tool of {toolset} listed after {len(calls)} call(s) ({', '.join(calls)})")
    elif len(calls) > MAX_CALLS_TO_REACH:
        problems.append(f"{where} {len(calls)} calls before its tools were listed (at most {MAX_CALLS_TO_REACH})")
    return {
        "reached": reached,
        "calls_to_reach": len(calls) if reached else None,
        "calls": calls,
        "tools_list_requests": len(listings),
        "list_changed_notifications": notices,
        "listings": listings,
        "structured": structured,
    }


async def dynamic_toolsets(env: dict[str, str], default_tools: list[dict[str, Any]],
                           providers: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """tools/list bytes at connect in dynamic mode and after enable-toolset of each toolset (each in a
    session of its own, on a server of its own), and the tool calls an agent makes from connect until a
    toolset's tools are listed, in default mode (expected 0) and dynamic mode (at most 2)."""
    problems: list[str] = []
    wanted: dict[str, set[str]] = defaultdict(set)
    for t in default_tools:
        wanted[providers.get(t["name"], "?")].add(t["name"])
    dyn_env = {**env, DYNAMIC_ENV: "1"}
    default_calls: dict[str, int | None] = {}
    per_toolset: dict[str, Any] = {}
    first: dict[str, Any] | None = None
    catalogue: list[dict[str, Any]] | None = None
    for toolset, names in wanted.items():
        default_calls[toolset] = (await reach(env, toolset, names, problems))["calls_to_reach"]
        run = await reach(dyn_env, toolset, names, problems)
        at_connect = run["listings"][0]
        if first is None:
            first = at_connect
            if set(first["names"]) != set(DISCOVERY_TOOLS):
                held = ", ".join(first["names"][:6]) + ("..." if len(first["names"]) > 6 else "")
                problems.append(f"dynamic first tools/list holds {held}, not {', '.join(DISCOVERY_TOOLS)} only")
        elif at_connect["result_bytes"] != first["result_bytes"]:
            problems.append(f"{toolset}: first tools/list {at_connect['result_bytes']} B, another session's "
                            f"{first['result_bytes']} B")  # fmt: skip
        catalogue = catalogue or run["structured"].get("list-toolsets", {}).get("toolsets")
        after = run["listings"][-1]
        expected = set(DISCOVERY_TOOLS) | names
        if run["reached"] and set(after["names"]) != expected:
            extra = ", ".join(sorted(set(after["names"]) - expected)[:4]) or "none"
            problems.append(f"{toolset}: the list after enable-toolset has {after['tools']} tools, expected "
                            f"{len(expected)} (discovery + toolset); extra: {extra}")  # fmt: skip
        per_toolset[toolset] = {
            "tools_in_toolset": len(names),
            "tools": after["tools"],
            "result_bytes": after["result_bytes"],
            "tokens_est": after["result_bytes"] // 4,
            "toolset_bytes_in_default_list": sum(nbytes(t) for t in default_tools if t["name"] in names),
            "calls_to_reach": run["calls_to_reach"],
            "calls": run["calls"],
            "tools_list_requests": run["tools_list_requests"],
            "list_changed_notifications": run["list_changed_notifications"],
        }
    if first is None:
        raise BenchError("dynamic toolsets: the default tools/list is empty")
    reached = [v["calls_to_reach"] for v in per_toolset.values()]
    worst = None if None in reached else max(reached, default=0)
    default_worst = None if None in default_calls.values() else max(default_calls.values(), default=0)
    if default_worst != 0:
        problems.append(f"default mode: calls to reach a tool {default_calls} (expected 0 everywhere)")
    return {
        "env": {DYNAMIC_ENV: "1"},
        "at_connect": {
            "tools": first["tools"],
            "names": first["names"],
            "result_bytes": first["result_bytes"],
            "tokens_est": first["result_bytes"] // 4,
        },
        "after_enable": per_toolset,
        "list_toolsets": catalogue,
        "calls_to_reach": {
            "default_per_toolset": default_calls,
            "default_max": default_worst,
            "dynamic_max": worst,
            "dynamic_target_max": MAX_CALLS_TO_REACH,
        },
        "first_list_target_bytes": DYNAMIC_FIRST_LIST_TARGET,
        "problems": problems,
    }


def peer_tools_list(validate_output: bool) -> tuple[list[dict[str, Any]], int]:
    argv = [str(PEER_PY), str(BENCH / "peer_fastmcp.py"), "tools"] + (["--validate-output"] if validate_output else [])
    done = subprocess.run(argv, capture_output=True, text=True, env=base_env(), cwd=ROOT, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"peer tools/list failed: {done.stderr.strip()[-400:]}")
    dumped = json.loads(done.stdout)
    return dumped["tools"], nbytes(dumped)
