"""Write bench/openapi-exoscale.json: the Exoscale operations mcp-cloudops exposes, trimmed from
the `exoscale` wheel's OpenAPI 3.0 document, with the components they reference.

Which operations: every Exoscale tool in tools.yaml, matched by method and path (the wheel's
operationIds differ from our tool names; `mcp_names` in the result maps them). Two schemas in the
wheel use 3.1-style `type: [X, null]`, which FastMCP.from_openapi rejects; if any survives the
trim it is rewritten as 3.0's `type: X, nullable: true`.

    python bench/make_openapi_exoscale.py [--wheel PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_WHEEL = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
DEFAULT_WHEEL = DEFAULT_WHEEL / "exoscale" / "openapi.json"
DEFAULT_OUT = HERE / "openapi-exoscale.json"
REF = re.compile(r"^#/components/([^/]+)/(.+)$")


def our_exoscale_tools() -> list[tuple[str, str, str]]:
    """(tool name, METHOD, path) of every Exoscale tool in tools.yaml."""
    sys.path.insert(0, str(ROOT))
    from mcp_cloudops.registry import load_registry

    registry = load_registry()
    return [(t.name, t.method, t.path) for t in registry.tools if t.provider == "exoscale"]


def refs_in(node: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and (m := REF.match(value)):
                found.add((m.group(1), m.group(2)))
            else:
                found |= refs_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs_in(item)
    return found


def fix_nullable_types(node: Any) -> int:
    """`type: [X, "null"]` -> `type: X, nullable: true` (OpenAPI 3.0). Returns how many were fixed."""
    fixed = 0
    if isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, list):
            rest = [k for k in kind if k != "null"]
            node["type"] = rest[0] if len(rest) == 1 else rest
            if "null" in kind:
                node["nullable"] = True
            fixed += 1
        for value in node.values():
            fixed += fix_nullable_types(value)
    elif isinstance(node, list):
        for item in node:
            fixed += fix_nullable_types(item)
    return fixed


def trim(doc: dict[str, Any], wanted: list[tuple[str, str, str]]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    paths: dict[str, Any] = {}
    names: dict[str, str] = {}
    missing: list[str] = []
    for tool, method, path in wanted:
        operation = doc["paths"].get(path, {}).get(method.lower())
        if operation is None:
            missing.append(f"{tool} ({method} {path})")
            continue
        paths.setdefault(path, {})[method.lower()] = operation
        names[operation["operationId"]] = tool
    # Components reachable from the kept operations, transitively.
    components = doc.get("components", {})
    keep: dict[str, dict[str, Any]] = {}
    todo = list(refs_in(paths))
    while todo:
        section, name = todo.pop()
        if name in keep.get(section, {}):
            continue
        target = components.get(section, {}).get(name)
        if target is None:
            continue
        keep.setdefault(section, {})[name] = target
        todo.extend(refs_in(target))
    if "securitySchemes" in components:
        keep["securitySchemes"] = components["securitySchemes"]
    trimmed = {
        "openapi": doc["openapi"],
        "info": {**doc.get("info", {}), "title": "Exoscale API v2 (mcp-cloudops subset, trimmed by bench/)"},
        "servers": doc.get("servers", []),
        "paths": paths,
        "components": keep,
    }
    if "security" in doc:
        trimmed["security"] = doc["security"]
    return trimmed, names, missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL, help="the exoscale wheel's openapi.json")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    doc = json.loads(args.wheel.read_text(encoding="utf-8"))
    trimmed, names, missing = trim(doc, our_exoscale_tools())
    fixed = fix_nullable_types(trimmed)
    trimmed["x-mcp-names"] = names  # operationId -> our tool name, read by bench/peer_fastmcp.py
    args.out.write_text(json.dumps(trimmed, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    schemas = len(trimmed["components"].get("schemas", {}))
    print(f"{args.out}: {len(names)} operations, {schemas} schemas, {fixed} 3.1-style types rewritten")
    for item in missing:
        print(f"  not in the wheel's document: {item}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
