"""A tool's registry params -> its published inputSchema, and argument checks an agent can act on."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mcp_cloudops.accounts import ACCOUNT
from mcp_cloudops.registry_models import EVERY_ZONE, Param, Provider, ToolSpec
from mcp_cloudops.settings import Settings
from mcp_cloudops.zones import EVERY_ZONE_WORDS

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

_SHOWN = 60  # characters of a rejected value quoted back to the agent
_NAMES_SHOWN = 5  # unknown argument names quoted back; the rest are counted
_NAME_SHOWN = 40  # characters of each
MAX_URL_VALUE = 4096  # characters of one path or query value: URLs have limits (httpx: 64 KiB)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _is_uuid(value: object) -> bool:
    """The canonical 8-4-4-4-12 hex form only (uuid.UUID also takes braces, urn: prefixes, no dashes)."""
    return not isinstance(value, str) or _UUID.fullmatch(value) is not None


def _json_schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """jsonschema is imported here, on a tool's first call: it takes ~70 ms, and start-up is what
    every client waits for."""
    from jsonschema import Draft202012Validator, FormatChecker

    formats = FormatChecker(formats=())  # the registry allows only "uuid" (registry.ParamSchema)
    formats.checks("uuid")(_is_uuid)
    return Draft202012Validator(schema, format_checker=formats)


class ArgumentError(ValueError):
    """The agent's arguments do not fit the tool's schema; the message says what to fix."""


MAX_WAIT: float = Settings.max_wait  # the default MCP_CLOUDOPS_MAX_WAIT, seconds
MAX_WAIT_MARK = "{max_wait}"  # in a parameter description: the wait cap this server enforces, in seconds


def param_schema(param: Param, provider: Provider, max_wait: float = MAX_WAIT) -> dict[str, Any]:
    schema = dict(param.json_schema)
    if param.location == "zone":
        schema.setdefault("type", "string")
        schema.setdefault("enum", list(provider.zones))
    if param.location == "path" and schema.get("type", "string") == "string" and not schema.keys() & _FIXED_FORM:
        schema.setdefault("minLength", 1)  # an empty segment would change the route
    schema["description"] = param.description.replace(MAX_WAIT_MARK, f"{max_wait:g}")
    return schema


_FIXED_FORM = {"format", "pattern", "enum"}  # a path value of such a form cannot be empty anyway


def wait_params(max_wait: float = MAX_WAIT, default: bool = False) -> tuple[Param, ...]:
    """The server's own `wait` options, with the cap it enforces (MCP_CLOUDOPS_MAX_WAIT) as the schema's
    maximum: a limit is stated where it is enforced, never promised beyond it."""
    cap = int(max_wait) if float(max_wait).is_integer() else max_wait  # 50, as an agent reads it, not 50.0
    return (
        Param.model_validate({
            "name": "wait", "in": "option", "schema": {"type": "boolean", **({"default": True} if default else {})},
            "description": "Wait for the final state.",
        }),
        Param.model_validate({
            "name": "timeout_seconds", "in": "option",
            "schema": {"type": "number", "minimum": 1, "maximum": cap, "default": min(25, cap)},
            "description": "Longest wait, seconds; the operation goes on.",
        }),
    )  # fmt: skip


def account_param(accounts: Mapping[str, str | None], default: str | None) -> Param:
    """The server's own `account` option, for a provider with several accounts: their names, with each
    description, and the default when there is one (else every call names one)."""
    described = "; ".join(f"{name} ({words})" for name, words in accounts.items() if words)  # the enum names all
    listed = described or "one of the enum"
    schema: dict[str, Any] = {"enum": list(accounts)}  # names: no "type" besides
    if default is not None:
        schema["default"] = default
    return Param.model_validate({
        "name": ACCOUNT, "in": "option", "required": default is None, "schema": schema,
        "description": f"Account: {listed}.",
    })  # fmt: skip


def tool_params(tool: ToolSpec, max_wait: float = MAX_WAIT) -> tuple[Param, ...]:
    """The registry's params, plus the server's own `wait` options for tools that return an operation."""
    return tool.params + wait_params(max_wait, tool.wait_default) if tool.returns_operation else tool.params


def input_schema(
    tool: ToolSpec, provider: Provider, max_wait: float = MAX_WAIT, extra: tuple[Param, ...] = ()
) -> dict[str, Any]:
    """The exact JSON Schema published as the tool's inputSchema (unknown arguments refused); `extra`: the
    server's own options beyond the registry's (an `account` choice)."""
    params = tool_params(tool, max_wait) + extra
    properties = {p.name: param_schema(p, provider, max_wait) for p in params}
    for param in tool.params_in("zone") if tool.zonal else ():  # a listing of one zone also lists them all
        zone = properties[param.name]
        properties[param.name] = zone | {"enum": [*zone["enum"], EVERY_ZONE],
                                         "description": zone["description"] + EVERY_ZONE_WORDS}  # fmt: skip
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    return schema


def listed_schema(checked: dict[str, Any], tool: ToolSpec) -> dict[str, Any]:
    """The inputSchema tools/list shows: the tool's input_schema (`checked`, which ArgumentValidator
    uses) less what costs every conversation context while the server checks it anyway: each
    `additionalProperties: false` (an unknown argument is refused, naming the allowed ones), and the
    zone enum (~100 B a tool: the zones are listed once, in the server's instructions, and in the
    error for a wrong one). `checked` is left as it is.
    """
    schema = _without_closed_objects(checked)
    for param in tool.params_in("zone"):
        schema["properties"][param.name].pop("enum", None)
    return schema


def _without_closed_objects(schema: dict[str, Any]) -> dict[str, Any]:
    result = {key: value for key, value in schema.items() if not (key == "additionalProperties" and value is False)}
    if isinstance(result.get("items"), dict):
        result["items"] = _without_closed_objects(result["items"])
    if isinstance(result.get("properties"), dict):
        result["properties"] = {name: _without_closed_objects(prop) for name, prop in result["properties"].items()}
    return result


def _shown(value: Any, limit: int = _SHOWN) -> str:
    """repr(value), cut to `limit` with "…", which tells the final Redactor.cut that a piece of a
    secret may be left there (it masks one)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unknown(names: list[str]) -> str:
    """A few unknown names, each shortened, and how many more: an agent sending thousands gets one
    short line, not all of them back (a 421,055-character error)."""
    shown = ", ".join(_shown(name, _NAME_SHOWN) for name in names[:_NAMES_SHOWN])
    return shown + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")


_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "an object", "null": "null"}  # fmt: skip


def _example(value: Any, rule: Mapping[str, Any]) -> str:
    """A value of the wanted type: the number the agent's text starts with ("70GiB": 70), else the default
    or the minimum."""
    lead = re.match(r"\s*(\d+)", value) if isinstance(value, str) else None
    if lead and rule.get("type") in ("integer", "number"):
        return lead.group(1)
    for key in ("default", "minimum"):
        if key in rule:
            return json.dumps(rule[key])
    return ""


def _wrong_type(where: str, value: Any, rule: Mapping[str, Any]) -> str:
    """The value quoted with what is wanted: `argument 'disk-size': "70GiB" is not an integer: Disk size in
    GiB (10-51200), e.g. 70`."""
    kinds = rule.get("type")
    wanted = " or ".join(_TYPE_WORDS.get(kind, kind) for kind in (kinds if isinstance(kinds, list) else [kinds]))
    text = f"{where}: {_shown_json(value)} is not {wanted}"
    if description := str(rule.get("description", "")).rstrip("."):
        text += f": {description}"
    if example := _example(value, rule):
        text += f", e.g. {example}"
    return text


def _shown_json(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return _shown(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _describe(error: ValidationError, schema: Mapping[str, Any], listers: Mapping[str, str]) -> str:
    """One agent-readable line per failed check: which argument, what was wrong, what is allowed; a missing
    id names the tool that lists its values."""
    path = ".".join(str(part) for part in error.absolute_path)
    where = f"argument {path!r}" if path else "arguments"
    rule = error.schema if isinstance(error.schema, Mapping) else {}
    lister = listers.get(str(error.absolute_path[0])) if error.absolute_path else None
    from_lister = f" (list its values with {lister})" if lister else ""
    match error.validator:
        case "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            named = lister if path else listers.get(missing)
            return (
                f"missing required argument {missing!r}"
                + (f" in {path!r}" if path else "")
                + (f" (list its values with {named})" if named else "")
            )
        case "additionalProperties":
            allowed = ", ".join(rule.get("properties", {})) or "none"
            extra = sorted(set(error.instance) - set(rule.get("properties", {})))
            return f"unknown {where if path else 'argument'} {_unknown(extra)}; allowed: {allowed}"
        case "type":
            return _wrong_type(where, error.instance, rule)
        case "enum":
            return f"{where} must be one of {', '.join(map(str, rule['enum']))}; got {_shown(error.instance)}"
        case "format":
            return f"{where} must be a valid {rule.get('format')}; got {_shown(error.instance)}{from_lister}"
        case "pattern":
            return f"{where} must match {rule.get('pattern')}; got {_shown(error.instance)}{from_lister}"
        case "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum":
            bounds = [f"{k} {rule[k]}" for k in ("minimum", "maximum") if k in rule]
            return f"{where} is out of range ({', '.join(bounds)}); got {_shown(error.instance)}"
        case "minLength" | "maxLength" | "minItems" | "maxItems":
            bounds = [f"{k} {rule[k]}" for k in ("minLength", "maxLength", "minItems", "maxItems") if k in rule]
            return f"{where} has the wrong length ({', '.join(bounds)})"
        case _:
            return f"{where}: {error.message if len(error.message) <= 200 else error.message[:199] + '…'}"


def unquote_json(arguments: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Some clients send object and array arguments as JSON text; take those when they parse to the declared type."""
    result = dict(arguments)
    for name, value in arguments.items():
        kind = {"object": dict, "array": list}.get(properties.get(name, {}).get("type"))
        if kind is None or not isinstance(value, str):
            continue
        try:
            parsed = json.loads(value)
        except ValueError:
            continue
        if isinstance(parsed, kind):
            result[name] = parsed
    return result


def whole_numbers(value: Any, schema: Mapping[str, Any]) -> Any:
    """50.0 where the schema says integer is 50: JSON Schema accepts it, upstream APIs do not."""
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: whole_numbers(v, props.get(k, {})) for k, v in value.items()}
    if kind == "array" and isinstance(value, list):
        return [whole_numbers(item, schema.get("items", {})) for item in value]
    return value


def url_value_problems(arguments: Mapping[str, Any], url_params: frozenset[str]) -> list[str]:
    """Path and query values travel in the URL: no control characters, and a sane length."""
    problems = []
    for name in sorted(url_params & arguments.keys()):
        value = arguments[name]
        if not isinstance(value, str):
            continue
        if _CONTROL.search(value):
            problems.append(f"argument {name!r} contains control characters (newline, tab, NUL...); remove them")
        elif len(value) > MAX_URL_VALUE:
            problems.append(f"argument {name!r} is too long for a URL ({len(value)} > {MAX_URL_VALUE} characters)")
    return problems


class ArgumentValidator:
    """Validates call arguments against one tool's published schema, before any request is built."""

    def __init__(
        self, schema: dict[str, Any], url_params: frozenset[str] = frozenset(), listers: Mapping[str, str] | None = None
    ) -> None:
        self.schema = schema
        self.url_params = url_params
        self.listers = listers or {}  # argument -> the tool listing its values, named when it is missing

    @cached_property
    def _validator(self) -> Draft202012Validator:
        return _json_schema_validator(self.schema)

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Return the arguments with schema defaults filled in; raise ArgumentError listing every fault."""
        arguments = unquote_json(arguments, self.schema["properties"])
        errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        lines = list(dict.fromkeys(_describe(error, self.schema, self.listers) for error in errors))
        lines += url_value_problems(arguments, self.url_params)
        if lines:
            raise ArgumentError("; ".join(lines))
        filled = whole_numbers(dict(arguments), self.schema)
        for name, prop in self.schema["properties"].items():
            if name not in filled and "default" in prop:
                filled[name] = prop["default"]
        return filled
