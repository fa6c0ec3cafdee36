"""Load tools.yaml into frozen models, refusing any mistake at start with the tool and field named."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from mcp_cloudops import registry_cache
from mcp_cloudops.registry_checks import field_location, tool_problems, with_params_resolved
from mcp_cloudops.registry_models import Discovery, Param, Provider, ToolSpec, _Frozen

REGISTRY_VERSION = 1
REGISTRY_ENV = "MCP_CLOUDOPS_REGISTRY"


class RegistryError(ValueError):
    """tools.yaml is broken; the message says which tool and field, and what is wrong."""


class Registry(_Frozen):
    version: int
    params: dict[str, Param] = Field(default_factory=dict)  # definitions any provider's tools name by key
    discovery: Discovery | None = None  # needed by --dynamic-toolsets only
    providers: dict[str, Provider]
    tools: tuple[ToolSpec, ...]

    @model_validator(mode="before")
    @classmethod
    def _name_providers(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("providers"), dict):
            data = dict(data)
            data["providers"] = {
                key: {**value, "key": key} if isinstance(value, dict) else value
                for key, value in data["providers"].items()
            }
            if isinstance(data.get("tools"), list):
                data["tools"] = [with_params_resolved(tool, data) for tool in data["tools"]]
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Registry:
        if self.version != REGISTRY_VERSION:
            raise ValueError(
                f"version {self.version} is not supported (this mcp-cloudops reads version {REGISTRY_VERSION})"
            )
        problems = [p for tool in self.tools for p in tool_problems(tool, self.providers)]
        seen: set[str] = set()
        for tool in self.tools:
            if tool.name in seen:
                problems.append(f"tool {tool.name!r}: duplicate tool name")
            seen.add(tool.name)
        for tool in self.tools:
            for field, step in tool.steps().items():
                if step.tool not in seen:
                    problems.append(f"tool {tool.name!r} field {field!r}: no tool named {step.tool!r}")
            if (only := tool.only_reads) is not None and only.instead not in seen:
                problems.append(f"tool {tool.name!r} field 'only_reads.instead': no tool named {only.instead!r}")
            if tool.lookup is not None and tool.lookup not in seen:
                problems.append(f"tool {tool.name!r} field 'lookup': no tool named {tool.lookup!r}")
            elif tool.mutating and tool.state_lookup is None:
                problems.append(
                    f"tool {tool.name!r} field 'lookup': a tool that changes things must name the tool that reads "
                    "what it changed (its outcome can be unknown)"
                )
            named = [(f"when_failed.{n}", a.tool, "next", a.next) for n, a in enumerate(tool.when_failed)]
            checks = tool.diagnose.checks if tool.diagnose else ()
            named += [(f"diagnose.checks.{n}", c.tool, "say", c.say) for n, c in enumerate(checks)]
            for field, step, words, text in named:  # a next step names a tool that exists, in its own words
                if step not in seen:
                    problems.append(f"tool {tool.name!r} field '{field}.tool': no tool named {step!r}")
                elif step not in text:
                    problems.append(f"tool {tool.name!r} field '{field}.{words}': say to use {step}")
            for param in tool.params:
                where = f"tool {tool.name!r} field 'params.{param.name}"
                if param.listed_by is not None and param.listed_by not in seen:
                    problems.append(f"{where}.listed_by': no tool named {param.listed_by!r}")
                elif param.required and param.is_id and param.listed_by is None and not param.from_results:
                    problems.append(
                        f"{where}': a required id must name the tool that lists its values (listed_by) "
                        "or say only an earlier result gives it (from_results: true)"
                    )
        if self.discovery is not None:
            for field, meta in (("discovery.list", self.discovery.list), ("discovery.enable", self.discovery.enable)):
                if meta.name in seen:
                    problems.append(f"{field}: {meta.name!r} is also an upstream tool's name")
        for provider in self.providers.values():
            named = {"operation.tool": provider.operation and provider.operation.tool}
            for field, name in named.items():
                if name and name not in seen:
                    problems.append(f"provider {provider.key!r} field {field!r}: no tool named {name!r}")
            rule = provider.default_project
            own = [tool for tool in self.tools if tool.provider == provider.key]
            if rule is not None and not any(param.name == rule.param for tool in own for param in tool.params):
                problems.append(
                    f"provider {provider.key!r} field 'default_project.param': none of its tools has {rule.param!r}"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @cached_property
    def by_name(self) -> dict[str, ToolSpec]:
        return {tool.name: tool for tool in self.tools}

    def provider_of(self, tool: ToolSpec) -> Provider:
        return self.providers[tool.provider]

    def discovery_tools(self) -> Discovery:
        """The discovery tools --dynamic-toolsets serves; a registry without them cannot run that mode."""
        if self.discovery is None:
            raise RegistryError("tools.yaml has no discovery section, which --dynamic-toolsets needs")
        return self.discovery


def parse_registry(raw: Any) -> Registry:
    """Validate already-parsed YAML; raise RegistryError listing every problem found."""
    try:
        return Registry.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["loc"]:
                lines.append(f"{field_location(raw, tuple(error['loc']))}: {message}")
            else:
                lines.extend(message.splitlines())
        raise RegistryError("tools.yaml is invalid:\n  " + "\n  ".join(lines)) from None


def default_path() -> Path:
    """tools.yaml: $MCP_CLOUDOPS_REGISTRY, else the checkout's top-level file, else the packaged copy."""
    if override := os.environ.get(REGISTRY_ENV):
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "tools.yaml", here / "tools.yaml"):
        if candidate.is_file():
            return candidate
    raise RegistryError(f"tools.yaml not found next to {here}; set {REGISTRY_ENV} to its path")


def parse_yaml(source: bytes) -> Any:
    """YAML imported here only: a start that finds tools.yaml in the cache never loads the parser."""
    import yaml

    # libyaml's loader when present: ~7x faster than the pure-Python one on tools.yaml.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(source.decode("utf-8"), Loader=loader)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def load_registry(path: Path | None = None) -> Registry:
    source = path or default_path()
    try:
        raw = registry_cache.parsed(source.read_bytes(), parse_yaml)
    except (OSError, ValueError) as exc:  # ValueError: not YAML, or not UTF-8
        raise RegistryError(f"cannot read {source}: {exc}") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{source}: expected a mapping with version, providers and tools")
    return parse_registry(raw)
