"""The registries the registry-wide checks run over: tools.yaml as shipped, and a copy with a sixth provider
that only the tests know, signing in with a header as Portainer's X-API-Key does. A check that takes the
`registry` fixture (conftest.py), or walks `EVERY_TOOL`, runs over both: a provider added to tools.yaml is
checked by it without the check being edited to know the provider."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from mcp_cloudops.registry import Registry, default_path, load_registry, parse_registry
from mcp_cloudops.registry_models import ToolSpec

SIXTH = "tinycloud"
SIXTH_PROVIDER: dict[str, Any] = {
    "title": "Tiny Cloud",
    "summary": "Tiny Cloud: servers (a provider only the tests know).",
    "base_url": "https://api.tinycloud.example",
    "url_env": "TINYCLOUD_API_URL",
    "auth": {"scheme": "header", "header": "X-Tiny-Key", "secret_env": "TINYCLOUD_API_KEY"},
}
SIXTH_TOOL: dict[str, Any] = {
    "name": "list-tiny-servers",
    "provider": SIXTH,
    "title": "List Tiny Cloud servers",
    "description": "List the Tiny Cloud servers of the account: each server's id, name, status and size.",
    "method": "GET",
    "path": "/v1/servers",
    "hints": {"readOnly": True, "destructive": False, "idempotent": True, "openWorld": True},
    "params": [
        {
            "name": "status",
            "in": "query",
            "narrows": True,
            "schema": {"type": "string", "enum": ["running", "stopped"]},
            "description": "Only the servers in this status.",
        }
    ],
}


def raw_tools_yaml() -> dict[str, Any]:
    """tools.yaml, parsed but not yet validated."""
    return yaml.safe_load(default_path().read_text(encoding="utf-8"))


def with_sixth_provider(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of the parsed tools.yaml `raw` with the sixth provider's block and its one tool added."""
    data = copy.deepcopy(raw)
    assert SIXTH not in data["providers"], f"tools.yaml has a provider {SIXTH!r}: give the tests' sixth another key"
    data["providers"][SIXTH] = copy.deepcopy(SIXTH_PROVIDER)
    data["tools"].append(copy.deepcopy(SIXTH_TOOL))
    return data


def write_six_providers(folder: Path) -> Path:
    """A scratch tools.yaml with the sixth provider, written in `folder`: what load_registry reads, and what
    MCP_CLOUDOPS_REGISTRY gives a server in another process."""
    path = folder / "tools.yaml"
    path.write_text(yaml.safe_dump(with_sixth_provider(raw_tools_yaml()), sort_keys=False), encoding="utf-8")
    return path


REAL = load_registry()  # once: loading it costs more than most tests
SIX = parse_registry(with_sixth_provider(raw_tools_yaml()))  # what load_registry(write_six_providers(...)) gives
REGISTRIES = {"tools.yaml": REAL, "six-providers": SIX}


def tools_yaml_of(registry: Registry, folder: Path) -> Path:
    """A tools.yaml that loads as `registry` (one of REGISTRIES), for a server in another process
    (MCP_CLOUDOPS_REGISTRY): tools.yaml itself, or the scratch copy written in `folder`."""
    return default_path() if registry is REAL else write_six_providers(folder)


def every_tool() -> list[tuple[Registry, ToolSpec]]:
    """Each tool of any of the registries once, with a registry that holds it: for per-tool checks."""
    seen: dict[str, tuple[Registry, ToolSpec]] = {}
    for registry in REGISTRIES.values():
        for tool in registry.tools:
            seen.setdefault(tool.name, (registry, tool))
    return list(seen.values())


EVERY_TOOL = every_tool()
