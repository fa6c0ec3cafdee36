"""Upstream responses -> what the agent reads: a JSON payload, or one actionable error line."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from mcp_cloudops.redaction import Redactor
from mcp_cloudops.registry_models import Envelope, ErrorWords, Paging, Param, Provider, ToolSpec

_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([a-z]+)"?')
_PAGE = re.compile(r"[?&]page=(\d+)")


class UpstreamError(RuntimeError):
    """A call that did not succeed; the message is safe to show and says what to do next. `unknown`:
    a write that may or may not have happened (the audit journal records it so)."""

    def __init__(
        self, message: str, *, unknown: bool = False, status: int | None = None, head: str = "", silent: bool = False
    ) -> None:
        super().__init__(message)
        self.unknown = unknown
        self.status = status  # the upstream's HTTP status, when it answered with one
        self.head = head or message  # who failed and the upstream's words, without the next step
        self.silent = silent  # a stream that closed before any output: the upstream said nothing at all


MESSAGE_MAX = 500  # characters of an upstream's own error message quoted to the agent
FIELDS_MAX = 300  # characters of the fields an upstream names as wrong
_SHAPES_ONLY = Redactor()  # for callers that hold no redactor: credential shapes, no configured values


# An answer's JSON values are bounded with its bytes. Parsing, redacting and cutting cost about 0.7 µs and
# 160 bytes a value, so `{"items":[{},{},…]}` (3 bytes a value) under the 10 MiB body cap took 3 s and 520 MB.
# Honest API JSON spends 20-30 bytes a value (keys, quotes, separators; the sandbox's listings, shaped like the
# real APIs'), so one value per 16 bytes of the cap (655,360 at 10 MiB) refuses only degenerate answers and
# bounds what one costs to a fifth of that attack's; a small cap still allows MIN_VALUES (milliseconds' work).
VALUE_BYTES = 16
MIN_VALUES = 10_000
SCAN_CHUNK = 256 * 1024  # bytes counted at a time: on a worker thread, the event loop runs between chunks
_STRING = re.compile(rb'"[^"]*"')  # a JSON string, once its escaped backslashes and quotes are removed
_BLANKS = b" \t\r\n"


def values_allowed(max_response_bytes: int) -> int:
    """How many JSON values an answer may hold, for a body cap of `max_response_bytes`."""
    return max(max_response_bytes // VALUE_BYTES, MIN_VALUES)


def _unescaped(content: bytes) -> bytes:
    """JSON text without its escaped backslashes and quotes: then every quote opens or closes a string."""
    return content.replace(b"\\\\", b"").replace(b'\\"', b"")


def _count(text: bytes) -> int:
    """count_values of text already _unescaped. A container of n elements holds n - 1 commas, so the values
    are 1 + the commas outside strings + the containers that are not empty."""
    values, start, last = 1, 0, b""
    while start < len(text):
        end = min(start + SCAN_CHUNK, len(text))
        if text.count(b'"', start, end) % 2:  # the chunk would end inside a string: end it where that closes
            close = text.find(b'"', end)
            end = len(text) if close == -1 else close + 1
        skeleton = _STRING.sub(b"0", text[start:end]).translate(None, _BLANKS)
        opened = skeleton.count(b"[") + skeleton.count(b"{")
        empty = skeleton.count(b"[]") + skeleton.count(b"{}") + (last + skeleton[:1] in (b"[]", b"{}"))
        values += skeleton.count(b",") + opened - empty
        last, start = skeleton[-1:] or last, end
    return values


def count_values(content: bytes) -> int:
    """How many values JSON text holds: the top one, and each element of an array and each member's value
    (keys are not values). Exact for valid JSON; linear, in C-speed steps of SCAN_CHUNK bytes, never parsed."""
    return _count(_unescaped(content))


def too_many_values(content: bytes, most: int) -> bool:
    """Whether JSON text holds more than `most` values, counted only when bounds cannot tell: a value takes
    a byte at least; there is at most one per comma or opening bracket (strings may hold some too); and at
    least one per two strings (a key has its value)."""
    if len(content) <= most or 1 + sum(map(content.count, (b",", b"[", b"{"))) <= most:
        return False
    text = _unescaped(content)
    return text.count(b'"') > 4 * most or _count(text) > most


def parse_body(content: bytes) -> Any:
    """JSON if the body is JSON, else None (the caller decides whether that is an error)."""
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


def one_line(text: str, limit: int = MESSAGE_MAX, redactor: Redactor | None = None) -> str:
    """Upstream words on one line (no smuggled newlines or control characters), redacted, then bounded:
    trimming first could leave half a secret at the cut. Only what the cut can show is read."""
    redactor = redactor or _SHAPES_ONLY
    read = redactor.reads(limit)
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text[:read]).split())
    return redactor.cut(flat + ("…" if len(text) > read else ""), limit)


def _pagination(paging: Paging | None, headers: Mapping[str, str]) -> dict[str, Any]:
    """Paging the provider declares in headers, surfaced so the agent can ask for the next page.
    Header names are lower-case here; a provider that declares none has none read."""
    extra: dict[str, Any] = {}
    if paging is None:
        return extra
    if paging.total_count and (total := headers.get(paging.total_count.lower(), "")).isdigit():
        extra["total_count"] = int(total)
    for url, rel in _LINK.findall(headers.get(paging.next_page.lower(), "") if paging.next_page else ""):
        if rel == "next" and (page := _PAGE.search(url)):
            extra["next_page"] = int(page.group(1))
    return extra


def _unwrapped(response: Envelope | str, body: Any) -> Any:
    """The answer inside the provider's declared envelope; an answer that started background work keeps
    the fields the agent follows it by. A body without the envelope's data field is taken as it is."""
    if not isinstance(response, Envelope) or not isinstance(body, dict) or response.data not in body:
        return body
    started = response.async_
    if started is not None and all(body.get(key) == value for key, value in started.when.items()):
        return {key: body.get(key) for key in started.keep}
    return body[response.data]


def payload(provider: Provider, status: int, headers: dict[str, str], body: Any) -> dict[str, Any]:
    """The structured result of a successful call (always an object, as MCP structuredContent must be)."""
    body = _unwrapped(provider.response, body)
    if body is None:
        return {"ok": True, "status": status}
    result = dict(body) if isinstance(body, dict) else {"result": body}
    result.update(_pagination(provider.paging, headers))
    return result


def upstream_message(errors: ErrorWords, body: Any, text: str, redactor: Redactor | None = None) -> str:
    """The upstream's own words about a failure, read from the fields the provider declares, redacted
    before any cut."""
    if isinstance(body, dict):
        parts = [str(body[key]) for key in errors.words if body.get(key)]
        wrong = body.get(errors.per_field) if errors.per_field else None
        if isinstance(wrong, dict) and wrong:
            fields = json.dumps(wrong, separators=(",", ":"))
            parts.append(f"{errors.per_field}: " + (redactor or _SHAPES_ONLY).cut(fields, FIELDS_MAX))
        if parts:
            return one_line(": ".join(dict.fromkeys(parts)), MESSAGE_MAX, redactor)
    if body is None and text.strip() and not text.lstrip().startswith("<"):
        return one_line(text.strip().splitlines()[0], 200, redactor)
    return "no error message (non-JSON body)" if text.strip() else "empty body"


def retry_after(
    headers: Mapping[str, str], body: Any, field: str | None = None, now: float | None = None
) -> float | None:
    """Seconds the upstream asks us to wait: a Retry-After header (seconds or an HTTP date), else the
    body `field` its provider declares; None when it does not say. Header names are lower-case."""
    header = headers.get("retry-after", "").strip()
    if header.replace(".", "", 1).isdigit():
        return float(header)
    if header:
        try:
            when = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            return max(0.0, when - (time.time() if now is None else now))
    asked = body.get(field) if field and isinstance(body, dict) else None
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked >= 0:
        return float(asked)
    return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "a few seconds"
    if seconds >= 120:
        return f"{math.ceil(seconds / 60)} minutes"
    whole = max(1, math.ceil(seconds))
    return f"{whole} second" + ("s" if whole != 1 else "")


def id_path(param: Param) -> str:
    """Where the id sits in an argument: `template.id` in {id}, `ssh-keys[].name` in [{name}]."""
    schema = param.json_schema
    inner, marker = (schema.get("items", {}), "[]") if schema.get("type") == "array" else (schema, "")
    keys = list(inner.get("properties", {})) if isinstance(inner, dict) and inner.get("type") == "object" else []
    return f"{param.name}{marker}.{keys[0]}" if len(keys) == 1 else param.name


def not_found(tool: ToolSpec) -> str:
    """What to check after a 404: the call's ids (also those inside an object, such as `template.id`), each
    with the tool that lists its values, and its zone or project only where the tool has one."""
    checks = [
        f"{id_path(p)} ({'list them with ' + p.listed_by if p.listed_by else 'from an earlier result'})"
        for p in tool.params
        if p.listed_by or p.from_results
    ]
    checks += [p.name for p in tool.params if p.location == "zone" or p.name == "project"][:1]
    return f"Check {', '.join(checks)}." if checks else "Check the arguments."


def next_step(
    status: int, tool: ToolSpec, provider: Provider, body: Any, wait: float | None = None, said: str = ""
) -> str:
    """What an agent should try after this status and these upstream words."""
    folded = said.casefold()
    for advice in tool.when_failed:
        if advice.status == status and advice.says.casefold() in folded:
            return advice.next
    if status == 400 or status == 422:
        return "Fix the arguments the message names and call again."
    if status == 401:
        names = " and ".join(provider.auth.env_names) or f"the {provider.title} client certificate"
        return f"The credentials were refused: check {names} in the MCP server's environment."
    if status == 403:
        return "The credentials lack permission for this action, or the resource is protected."
    if status == 404:
        return not_found(tool)
    if status == 409:
        return "The resource is in a conflicting state: read its current state, then retry if still needed."
    if status == 429:
        return f"Rate limited: wait {_duration(wait)}, then retry."
    if status >= 500:
        if tool.mutating:
            with_tool = f" with {tool.state_lookup}" if tool.state_lookup else ""
            return f"Upstream failure: the outcome is unknown; read the resource's state{with_tool} before retrying."
        return "Upstream failure: if the message names a cause (wrong secret, finished operation), fix it; else retry."
    return "See the upstream message."


def failed_with(
    tool: ToolSpec,
    provider: Provider,
    status: int,
    body: Any,
    text: str,
    headers: Mapping[str, str] | None = None,
    redactor: Redactor | None = None,
) -> UpstreamError:
    """The error for an upstream's failure answer, one line: who failed, the upstream's words (redacted with
    `redactor`, then cut), what to do next. Its status and its head (who failed, with the upstream's words)
    are kept apart from the next step, for a diagnosis to reword. Without a redactor, only credential shapes
    are masked before the cut: the caller's final Redactor.cut then masks any piece of a configured secret."""
    wait = retry_after(headers or {}, body, provider.retry_after_field)
    said = upstream_message(provider.errors, body, text, redactor)
    head = f"{provider.title} returned HTTP {status} for {tool.name}: {said}."
    step = next_step(status, tool, provider, body, wait, said)
    return UpstreamError(f"{head} {step}", unknown=tool.mutating and status >= 500, status=status, head=head)
