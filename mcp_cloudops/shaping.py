"""Fit a result into what the model should read: cut lists, then long strings, and say how to narrow.

The cap counts characters of the JSON text the model reads. Cutting keeps the result valid JSON
with the same shape, so an agent can still use what it got, and the note names the tool's own
arguments that narrow the next call.
"""

from __future__ import annotations

import heapq
import json
from typing import Any

from mcp_cloudops.registry import ToolSpec

MIN_STRING = 200  # a string is not cut below this many characters
NOTE_ROOM = 600  # characters kept free for the truncation note
DETAILS_MAX = 300  # characters of the note listing what was cut
MIN_CAP = 1000  # a cap below this would leave no room for both content and note


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def narrowing_hint(tool: ToolSpec) -> str:
    """How to get a smaller result next time: the parameters tools.yaml flags `narrows`, in the tool's order."""
    names = [p.name for p in tool.params if p.narrows]
    if names:
        return f"narrow the call with {', '.join(names)}"
    return "ask for one item at a time (by id) instead of a whole listing"


def _lists(data: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Lists at the top level and one level down (e.g. Incus operations grouped by status)."""
    found = [(data, key) for key, value in data.items() if isinstance(value, list)]
    for value in data.values():
        if isinstance(value, dict):
            found += [(value, key) for key, inner in value.items() if isinstance(inner, list)]
    return found


def _strings(value: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, inner in items:
        if isinstance(inner, str) and len(inner) > MIN_STRING:
            found.append((value, key))
        else:
            _strings(inner, found)
    return found


# Sizes are kept up to date rather than measured again: with compact separators, a value's JSON is
# the concatenation of its parts', so replacing a part changes the whole by the difference of the
# two parts' lengths. Measuring the whole after every cut made the cap quadratic (12 s for 2,500
# strings of 250 characters, every client waiting).


def _halve_lists(cut: dict[str, Any], size: int, budget: int, kept: dict[str, str], down_to: int) -> int:
    """Halve the largest list (never below `down_to` items) until the result fits or none can shrink;
    return the new size. Each halving measures only the half kept."""
    if size <= budget:
        return size
    heap = [(-len(dumps(owner[key])), n, owner, key) for n, (owner, key) in enumerate(_lists(cut))]
    heapq.heapify(heap)  # the largest list first, ties in document order
    while size > budget and heap:
        negative, n, owner, key = heapq.heappop(heap)
        if len(owner[key]) <= down_to:
            continue
        original = kept.get(key, str(len(owner[key])))
        owner[key] = owner[key][: max(down_to, len(owner[key]) // 2)]
        kept[key] = original
        smaller = len(dumps(owner[key]))
        size += smaller + negative
        heapq.heappush(heap, (-smaller, n, owner, key))
    return size


def _cut_strings(cut: dict[str, Any], size: int, budget: int, kept: dict[str, str]) -> int:
    """Shorten the longest strings, each once, by what is still over the budget; return the new size."""
    if size <= budget:
        return size
    places = sorted(_strings(cut, []), key=lambda place: len(place[0][place[1]]), reverse=True)
    for owner, key in places:
        text = owner[key]
        shorter = text[: max(MIN_STRING, len(text) - (size - budget) - 20)] + "…[cut]"
        if len(shorter) >= len(text):
            break  # the rest are no longer than this one
        owner[key] = shorter
        kept.setdefault(str(key), f"{len(text)} characters")
        size += len(dumps(shorter)) - len(dumps(text))
        if size <= budget:
            break
    return size


def _preview(text: str, budget: int) -> str:
    """The start of the result's JSON text, as a string whose own JSON fits the budget."""
    preview = text[:budget]
    while len(dumps(preview)) > budget:  # escaping may lengthen it: shrink until it fits (twice at most)
        preview = preview[: len(preview) - (len(dumps(preview)) - budget) - 1]
    return preview


def cap(data: dict[str, Any], limit: int, tool: ToolSpec) -> dict[str, Any]:
    """`data` if it fits in `limit` characters, else a cut copy with a `truncated` note.

    Time is linear in the size of `data`: it is serialized once, and each part that is cut is
    measured once more (the cut parts together are no bigger than the whole).
    """
    limit = max(limit, MIN_CAP)
    text = dumps(data)
    size = len(text)
    if size <= limit:
        return data
    budget = limit - NOTE_ROOM
    cut: dict[str, Any] = json.loads(text)  # a deep copy we may change
    kept: dict[str, str] = {}
    left = _halve_lists(cut, size, budget, kept, down_to=1)  # keep one item: its long strings are cut next
    left = _cut_strings(cut, left, budget, kept)
    left = _halve_lists(cut, left, budget, kept, down_to=0)
    if left > budget or len(dumps(cut)) > budget:  # the second check costs at most the budget
        cut = {"preview": _preview(text, budget)}
    details = ", ".join(
        f"{key}: {len(_find(cut, key))} of {total} kept" if total.isdigit() else f"{key} cut from {total}"
        for key, total in kept.items()
    )
    if len(details) > DETAILS_MAX:
        details = details[: DETAILS_MAX - 1] + "…"
    cut["truncated"] = {
        "note": f"Result cut to fit {limit} characters (it had {size}){': ' + details if details else ''}. "
        f"To see the rest, {narrowing_hint(tool)}.",
    }
    return cut


def _find(data: dict[str, Any], key: str) -> list[Any]:
    for owner, name in _lists(data):
        if name == key:
            return owner[key]
    return []
