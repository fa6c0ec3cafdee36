"""2. Context cost: the bytes of a tools/list result, per tool and toolset, what they are made of, and
what the cuts we chose not to make would save. An agent pays for these bytes in context on every turn.
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
    """Savings of the cuts we chose not to make (README, "What tools/list shows"), measured on the
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


async def our_tools_list(env: dict[str, str]) -> tuple[list[dict[str, Any]], int, dict[str, str]]:
    """tools/list of our server in legacy mode, in-process: (tools, result bytes, name -> provider)."""
    from mcp import Client

    from mcp_cloudops.registry import load_registry
    from mcp_cloudops.server import build_server
    from mcp_cloudops.settings import Settings

    server = build_server(Settings.from_env(env))
    async with Client(server, mode="legacy") as client:
        result = await client.list_tools()
    dumped = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    providers = {t.name: t.provider for t in load_registry().tools}
    return dumped["tools"], nbytes(dumped), providers


def peer_tools_list(validate_output: bool) -> tuple[list[dict[str, Any]], int]:
    argv = [str(PEER_PY), str(BENCH / "peer_fastmcp.py"), "tools"] + (["--validate-output"] if validate_output else [])
    done = subprocess.run(argv, capture_output=True, text=True, env=base_env(), cwd=ROOT, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"peer tools/list failed: {done.stderr.strip()[-400:]}")
    dumped = json.loads(done.stdout)
    return dumped["tools"], nbytes(dumped)
