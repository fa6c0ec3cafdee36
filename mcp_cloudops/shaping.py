"""Fit a result into what the model should read: cut lists, then long strings, and say how to narrow.

The cap counts characters of the JSON text the model reads. Cutting keeps the result valid JSON
with the same shape, so an agent can still use what it got, and the note names the tool's own
arguments that narrow the next call. When the cut drops items of a paged listing, the result also
says how the next call resumes at the first dropped item, so following it walks the listing whole.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from mcp_cloudops.registry_models import Pages, ToolSpec

T = TypeVar("T")

MIN_STRING = 200  # a string is not cut below this many characters
NOTE_ROOM = 600  # characters kept free for the truncation note
DETAILS_MAX = 300  # characters of the note listing what was cut
RESUME_ROOM = 250  # characters more, for a cut listing: how the next call resumes at the first item cut
ZONE_ROOM = 150  # and for a listing of every zone: the zone to resume in, and the zones after it
MIN_CAP = 1000  # a cap below this would leave no room for both content and note
LIGHT = 1024  # values (and 64-character pieces of strings) of a result redacted and cut on the event loop
LIGHT_BYTES = 16384  # or bytes of the upstream bodies it was made from (honest API JSON: 16-30 bytes a value)


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def fits(text: str, limit: int) -> bool:
    """Whether a result whose JSON is `text` is within the output cap `limit` as it is."""
    return len(text) <= max(limit, MIN_CAP)


def light(data: Any, budget: int = LIGHT) -> bool:
    """Whether `data` holds at most `budget` values, each 64 characters of a string or key counting as one
    more: what takes well under a millisecond to redact and cut. Reads no further than the budget."""
    budget -= 1  # the value itself
    stack = [data]
    while stack and budget >= 0:
        value = stack.pop()
        if isinstance(value, str):
            budget -= len(value) // 64
        elif isinstance(value, dict | list):
            budget -= len(value)  # its items, counted before any is read: a huge one is never walked
            if budget >= 0 and isinstance(value, dict):
                budget -= sum(map(len, value)) // 64  # its keys (JSON's: strings), 64 characters a value
                stack.extend(value.values())
            elif budget >= 0:
                stack.extend(value)
    return budget >= 0


async def off_loop(shape: Callable[[Any], T], data: Any, received: int = 0) -> T:
    """shape(data) at once for a light result, else on a worker thread: redacting and cutting a big one
    (up to MCP_CLOUDOPS_MAX_RESPONSE_BYTES of it) takes long enough to hold up every other client.
    `received`, the bytes of the upstream bodies `data` was made from, tells without walking it; 0 (none
    counted: a websocket's output) has it walked."""
    if received < LIGHT_BYTES if received else light(data):
        return shape(data)  # a thread would cost more than the work (0.1-0.2 ms a call)
    return await anyio.to_thread.run_sync(shape, data)


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


def cap(
    data: dict[str, Any], limit: int, tool: ToolSpec, args: dict[str, Any] | None = None, *, own: bool = False
) -> dict[str, Any]:
    """`data` if it fits in `limit` characters, else a cut copy with a `truncated` note. With the call's
    (validated) `args`, a cut that drops items of a paged listing says where the next call resumes.
    `own`: the caller hands `data` over (a fresh copy nothing else reads), so it is cut in place, not
    copied first: for a big result, a quarter less time and a third less memory.

    Time is linear in the size of `data`: it is serialized once, and each part that is cut is
    measured once more (the cut parts together are no bigger than the whole).
    """
    text = dumps(data)
    if fits(text, limit):
        return data
    limit = max(limit, MIN_CAP)
    size = len(text)
    pages = tool.pages if args is not None else None  # tools.yaml `pages`: how a listing pages
    per_zone = _per_zone(data, tool, args)  # zone "all": each zone's items, counted before the cut
    budget = limit - NOTE_ROOM - (min(_resume_room(pages, args or {}), limit // 4) if pages else 0)
    budget -= ZONE_ROOM if per_zone else 0
    cut: dict[str, Any] = data if own else json.loads(text)  # a deep copy we may change, unless given one
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
    items = _items_kept(cut, kept)
    note = f"Result cut to fit {limit} characters (it had {size}){': ' + details if details else ''}. "
    if per_zone and args is not None and items is not None:
        return _zone_resumed(cut, tool, args, per_zone, note)
    if pages is not None and args is not None and items is not None:
        resumed = _resumed(json.loads(dumps(cut)), pages, continuation(pages, tool, args, items), note, tool)
        if len(dumps(resumed)) <= limit:  # else (an absurdly long cursor) the plain note below
            return resumed
    cut["truncated"] = {"note": note + f"To see the rest, {narrowing_hint(tool)}."}
    return cut


def _per_zone(data: dict[str, Any], tool: ToolSpec, args: dict[str, Any] | None) -> dict[str, int]:
    """For a listing of every zone (zone "all"), how many items each zone gave, in zone order; else {}."""
    if args is None or not tool.asks_every_zone(args):
        return {}
    counts: dict[str, int] = {}
    for item in data.get(tool.zonal) or []:
        zone = item.get("zone") if isinstance(item, dict) else None
        if isinstance(zone, str):
            counts[zone] = counts.get(zone, 0) + 1
    return counts


def _zone_resumed(
    cut: dict[str, Any], tool: ToolSpec, args: dict[str, Any], per_zone: dict[str, int], note: str
) -> dict[str, Any]:
    """A cut listing of every zone, saying where to resume: the first zone that lost items, alone (at the
    page its first cut item is on, where the listing pages), then each zone after it."""
    assert tool.zonal is not None
    kept = dict.fromkeys(per_zone, 0)
    for item in cut.get(tool.zonal) or []:
        if isinstance(item, dict) and item.get("zone") in kept:
            kept[item["zone"]] += 1
    zones = list(per_zone)
    first = next((zone for zone in zones if kept[zone] < per_zone[zone]), zones[-1] if zones else "")
    zone_name = tool.params_in("zone")[0].name
    resume = {zone_name: first}
    if tool.pages is not None:
        resume |= continuation(tool.pages, tool, {**args, zone_name: first}, kept.get(first, 0))
    after = zones[zones.index(first) + 1 :] if first in zones else []
    then = f", then each later zone that had items, alone ({', '.join(after)})" if after else ""
    cut["truncated"] = {
        "note": note
        + "To resume at the first item cut, call again with the same arguments but "
        + ", ".join(f"{name}={value}" for name, value in resume.items())
        + f"{then} (next_call: the arguments to change); to get less, {narrowing_hint(tool)}.",
        "next_call": resume,
    }
    return cut


def _find(data: dict[str, Any], key: str) -> list[Any]:
    for owner, name in _lists(data):
        if name == key:
            return owner[key]
    return []


# --- resuming a cut listing ----------------------------------------------------------------------------------


def _items_kept(cut: dict[str, Any], kept: dict[str, str]) -> int | None:
    """How many items of the listing survived the cut: None if no top-level list lost any, 0 if only a
    preview is left."""
    if set(cut) == {"preview"}:
        return 0
    dropped = [key for key, value in cut.items() if isinstance(value, list) and key in kept]
    return len(cut[dropped[0]]) if dropped else None


def largest_divisor(start: int, most: int) -> int:
    """The largest page size no bigger than `most` (at least 1) that makes `start` the start of a page."""
    return next(m for m in range(max(most, 1), 0, -1) if start % m == 0)


def continuation(pages: Pages, tool: ToolSpec, args: dict[str, Any], kept: int) -> dict[str, Any]:
    """The arguments to change so that the next call begins at the first item the cut dropped.

    A page number cannot say "item 37" with any page size: the size is shrunk to the largest one that
    divides the offset, so nothing is skipped. A cursor only resumes at its own page's start: the same
    cursor with a page as big as what was kept (those items come again). A start index moves past what
    was kept, with a page as big as what was kept."""
    if pages.style == "page":
        page = int(args.get(pages.at) or pages.first)
        size = int(args.get(pages.size) or _default(tool, pages.size) or kept or 1)
        start = (page - pages.first) * size + kept
        per = largest_divisor(start, kept)
        return {pages.at: start // per + pages.first, pages.size: per}
    if pages.style == "cursor":
        cursor = args.get(pages.at)
        return ({pages.at: cursor} if cursor else {}) | {pages.size: max(kept, 1)}
    start = max(int(args.get(pages.at) or pages.first), pages.first) + kept
    return {pages.at: start, pages.size: max(kept, 1)}  # some upstreams ignore a start without a size


def _resumed(cut: dict[str, Any], pages: Pages, resume: dict[str, Any], note: str, tool: ToolSpec) -> dict[str, Any]:
    """`cut` saying how to resume: the upstream's own next cursor removed (it would skip the items cut),
    a page number put where an agent looks for the next page, and the arguments to change in the note."""
    _drop_upstream_next(cut, pages)
    if pages.style == "page":
        cut.update({f"next_{name}": value for name, value in resume.items()})
    cut["truncated"] = {
        "note": note + f"To resume at the first item cut, call again with {_resume_words(pages, resume)} "
        f"(next_call: the arguments to change); to get less, {narrowing_hint(tool)}.",
        "next_call": resume,
    }
    return cut


def _resume_words(pages: Pages, resume: dict[str, Any]) -> str:
    """The continuation in the note; a cursor (long, opaque) is named, not repeated."""
    if pages.style != "cursor":
        return "the same arguments but " + ", ".join(f"{name}={value}" for name, value in resume.items())
    cursor = f"the same {pages.at}" if pages.at in resume else f"no {pages.at}"
    return f"the same arguments, {cursor} and {pages.size}={resume[pages.size]} (so nothing is skipped)"


def _resume_room(pages: Pages, args: dict[str, Any]) -> int:
    """Characters the continuation adds to the result: its words, fields and any cursor repeated once."""
    return RESUME_ROOM + len(dumps(args.get(pages.at, "")))


def _default(tool: ToolSpec, name: str) -> int | None:
    return next((p.json_schema.get("default") for p in tool.params if p.name == name), None)


def _drop_upstream_next(cut: dict[str, Any], pages: Pages) -> None:
    """Remove the upstream's own way to the next page: following it would skip the items cut. A cursor's
    field is the declared path, else `next_<cursor>` or `<cursor>` at the top or one level down."""
    if pages.style != "cursor":
        return
    if pages.next:
        *parents, last = pages.next.split(".")
        owner: Any = cut
        for name in parents:
            owner = owner.get(name) if isinstance(owner, dict) else None
        if isinstance(owner, dict):
            owner.pop(last, None)
        return
    for owner in [cut, *(value for value in cut.values() if isinstance(value, dict))]:
        for name in (f"next_{pages.at}", pages.at):
            owner.pop(name, None)
