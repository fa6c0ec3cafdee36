"""shaping.cap: results that fit pass untouched; bigger ones are cut (lists halved, then long strings)
into valid JSON of the same shape, with a note naming the tool's narrowing arguments, within the cap."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_cloudops import shaping
from mcp_cloudops.registry import load_registry
from mcp_cloudops.registry_models import Pages
from mcp_cloudops.shaping import MIN_CAP, MIN_STRING, cap, dumps, narrowing_hint

REGISTRY = load_registry()
IMAGES = REGISTRY.by_name["list-instance-images"]
OPERATION = REGISTRY.by_name["get-operation-state"]


def image(n: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": f"image-{n}",
        "arch": "x86_64",
        "tags": ["a", "b"],
        "root_volume": {"id": f"10000000-0000-4000-8000-{n:012d}", "size": 10_000_000_000},
        "description": "an ordinary image " * 5,
    }


def listing(count: int) -> dict[str, Any]:
    return {"images": [image(n) for n in range(count)], "total_count": count, "next_page": 2}


def assert_fits(result: dict[str, Any], limit: int) -> str:
    text = dumps(result)
    assert len(text) <= limit, (len(text), limit)
    assert json.loads(text) == result  # valid JSON, plain data
    return text


@pytest.mark.parametrize(
    "data",
    [{}, {"ok": True, "status": 204}, listing(3), {"output": "x" * 1000}, {"nested": {"a": [1, 2, 3]}}],
    ids=["empty", "status", "small-list", "string", "nested"],
)
def test_a_result_that_fits_is_returned_untouched(data: dict[str, Any]) -> None:
    limit = len(dumps(data))
    assert cap(data, limit, IMAGES) is data  # exactly at the cap still fits
    assert cap(data, 25_000, IMAGES) is data


def test_lists_are_halved_keeping_shape_and_whole_items() -> None:
    data = listing(100)
    result = cap(data, 5000, IMAGES)
    assert_fits(result, 5000)
    kept = result["images"]
    assert 1 <= len(kept) < 100
    assert kept == data["images"][: len(kept)]  # a prefix of whole items, none altered
    assert len(kept) in (50, 25, 12, 6, 3, 1)  # 100, halved until it fits
    assert result["total_count"] == 100 and result["next_page"] == 2  # the rest of the shape survives
    assert set(result) == {"images", "total_count", "next_page", "truncated"}
    note = result["truncated"]["note"]
    assert note.startswith(f"Result cut to fit 5000 characters (it had {len(dumps(data))}): ")
    assert f"images: {len(kept)} of 100 kept." in note
    assert data == listing(100)  # the input was not modified


def test_lists_one_level_down_are_halved_too() -> None:
    operations = {
        "running": [{"id": f"op-{n}", "description": "Executing command", "metadata": {"n": n}} for n in range(200)],
        "success": [{"id": f"done-{n}", "description": "Creating instance"} for n in range(50)],
    }
    result = cap(operations, 3000, OPERATION)
    assert_fits(result, 3000)
    assert set(result) == {"running", "success", "truncated"}
    assert result["running"] == operations["running"][: len(result["running"])]
    assert result["success"] == operations["success"][: len(result["success"])]
    assert "running: " in result["truncated"]["note"]


def test_a_single_huge_item_keeps_its_place_with_its_strings_cut() -> None:
    huge = {**image(0), "description": "d" * 6000}
    data = {"images": [huge, {**image(1), "description": "e" * 6000}], "total_count": 2}
    result = cap(data, 3000, IMAGES)
    assert_fits(result, 3000)
    assert [item["id"] for item in result["images"]] == [huge["id"]]  # one item kept, not an empty list
    assert result["images"][0]["description"].endswith("…[cut]")
    assert "images: 1 of 2 kept" in result["truncated"]["note"]


def test_long_strings_are_cut_with_a_marker() -> None:
    data = {"output": "y" * 100_000, "bytes": 100_000, "stopped": "max_bytes"}
    result = cap(data, 3000, REGISTRY.by_name["attach-websocket"])
    assert_fits(result, 3000)
    assert result["output"].endswith("…[cut]") and result["output"].startswith("y" * MIN_STRING)
    assert result["bytes"] == 100_000 and result["stopped"] == "max_bytes"
    assert result["truncated"]["note"] == (
        f"Result cut to fit 3000 characters (it had {len(dumps(data))}): output cut from 100000 characters. "
        "To see the rest, narrow the call with max_seconds, max_bytes."
    )


def test_long_strings_in_nested_objects_are_cut() -> None:
    data = {"metadata": {"output": {"log": "z" * 50_000, "code": 0}}, "status": "Success"}
    result = cap(data, 2000, OPERATION)
    assert_fits(result, 2000)
    log = result["metadata"]["output"]["log"]
    assert log.endswith("…[cut]") and set(log.removesuffix("…[cut]")) == {"z"}
    assert result["metadata"]["output"]["code"] == 0 and result["status"] == "Success"
    assert "log cut from 50000 characters" in result["truncated"]["note"]


@pytest.mark.parametrize(
    ("tool", "hint"),
    [
        ("list-instance-images", "narrow the call with project, name, arch, tags, page, per_page"),
        ("list-nirvana-operations", "narrow the call with project_id, cursor, limit, kind, status, type"),
        ("list-compute-instances", "narrow the call with ip-address, labels"),
        ("get-operations-2", "narrow the call with project"),
        ("execute-websocket", "narrow the call with max_seconds, max_bytes"),
        ("get-instance-image", "ask for one item at a time (by id) instead of a whole listing"),
        ("get-nirvana-operation", "ask for one item at a time (by id) instead of a whole listing"),
    ],
)
def test_the_note_names_the_tools_own_narrowing_arguments(tool: str, hint: str) -> None:
    spec = REGISTRY.by_name[tool]
    assert narrowing_hint(spec) == hint
    result = cap(listing(100), 4000, spec)
    assert result["truncated"]["note"].endswith(f"To see the rest, {hint}.")
    for name in hint.removeprefix("narrow the call with ").split(", "):  # only arguments the tool has
        assert name in {p.name for p in spec.params} or hint.startswith("ask")


def test_the_hint_names_exactly_the_parameters_flagged_narrows() -> None:
    one_at_a_time = "ask for one item at a time (by id) instead of a whole listing"
    for tool in REGISTRY.tools:
        flagged = [p.name for p in tool.params if p.narrows]
        assert narrowing_hint(tool) == (f"narrow the call with {', '.join(flagged)}" if flagged else one_at_a_time)
    # The flag, not the name: `public` narrows once flagged; name, arch, tags stop when unflagged.
    only_public = tuple(p.model_copy(update={"narrows": p.name == "public"}) for p in IMAGES.params)
    assert narrowing_hint(IMAGES.model_copy(update={"params": only_public})) == "narrow the call with public"
    # A write's body parameters share listing filters' names (name, project, tags) but narrow nothing.
    assert narrowing_hint(REGISTRY.by_name["create-instance-image"]) == one_at_a_time


def test_the_narrows_flag_stays_out_of_the_input_schema() -> None:
    flagged = [p for tool in REGISTRY.tools for p in tool.params if p.narrows]
    assert len(flagged) >= 16
    for param in flagged:
        assert "narrows" not in param.json_schema and param.json_schema == param.shape.model_dump(exclude_unset=True)


SHAPES = {
    "list": listing(500),
    "lists-and-strings": {"images": [image(n) for n in range(300)], "log": "w" * 80_000},
    "nested-lists": {"a": {"x": list(range(20_000))}, "b": {"y": ["s" * 40] * 2000}},
    "a-few-strings": {f"field{n}": "v" * 5000 for n in range(8)},
    "unicode": {"items": ["日本語のテキスト😀" * 30 for _ in range(500)]},
    "escapes": {"items": ['say "hi"\\n\t' * 30 for _ in range(500)]},
}


@pytest.mark.parametrize("limit", [1000, 2000, 5000, 25_000])
@pytest.mark.parametrize("data", list(SHAPES.values()), ids=list(SHAPES))
def test_a_cut_result_never_exceeds_the_cap(data: dict[str, Any], limit: int) -> None:
    result = cap(data, limit, IMAGES)
    assert_fits(result, limit)
    assert "truncated" in result and result["truncated"]["note"].startswith(f"Result cut to fit {limit} characters")


@pytest.mark.parametrize("limit", [5000, 10_000, 25_000])
def test_the_preview_fallback_never_exceeds_the_cap(limit: int) -> None:
    data = {"config": {f"limits.key{n}": 'a "quoted" value' for n in range(3000)}}
    assert_fits(cap(data, limit, OPERATION), limit)


@pytest.mark.parametrize(
    ("data", "limit"),
    [
        ({f"list_{n:02d}_with_a_rather_long_key_name": [{"x": "y" * 50}] * 10 for n in range(30)}, 5000),
        ({f"field{n}": "v" * 5000 for n in range(40)}, 25_000),
    ],
    ids=["many-lists", "many-strings"],
)
def test_a_note_about_many_cuts_never_exceeds_the_cap(data: dict[str, Any], limit: int) -> None:
    assert_fits(cap(data, limit, IMAGES), limit)


@pytest.mark.parametrize("limit", [100, 500])
def test_a_cap_below_the_minimum_is_raised_to_it(limit: int) -> None:
    """Content and note need room: a smaller cap is raised to MIN_CAP, which is then kept."""
    assert_fits(cap(listing(100), limit, IMAGES), MIN_CAP)


def test_many_long_strings_outside_any_list_are_cut_keeping_every_key() -> None:
    data = {f"field{n:03d}": "s" * 500 for n in range(100)}
    result = cap(data, 25_000, IMAGES)
    text = assert_fits(result, 25_000)
    assert set(result) == {*data, "truncated"}
    cut = [key for key in data if result[key] != data[key]]
    assert cut and all(result[key] == "s" * MIN_STRING + "…[cut]" for key in cut[:-1])  # the last, by what was left
    assert len(text) > 25_000 - 1000  # cut to the budget, not far below it


@pytest.mark.parametrize("data", list(SHAPES.values()), ids=list(SHAPES))
def test_the_cap_serializes_a_bounded_multiple_of_the_result(data: dict[str, Any], monkeypatch) -> None:
    """Linear, whatever the shape: the characters serialized are a few times the result's size,
    where measuring the whole after each cut serialized it once per cut string."""
    serialized = []

    def counting(value: Any) -> str:
        text = dumps(value)
        serialized.append(len(text))
        return text

    monkeypatch.setattr(shaping, "dumps", counting)
    cap(data, 5000, IMAGES)
    assert sum(serialized) <= 4 * len(dumps(data)) + 20_000, (sum(serialized), len(dumps(data)))


# --- issue 11, item 4: a cut listing says where the next call resumes ---------------------------------------

PROJECTS = REGISTRY.by_name["list-nirvana-projects"]
ENVIRONMENTS = REGISTRY.by_name["list-portainer-environments"]


@pytest.mark.parametrize(
    ("page", "per_page", "kept", "resume"),
    [
        (1, 50, 12, (2, 12)),
        (2, 50, 12, (32, 2)),
        (1, 50, 7, (2, 7)),
        (3, 10, 3, (24, 1)),
        (3, 10, 4, (7, 4)),
        (1, 50, 0, (1, 1)),
    ],
)
def test_a_page_resumes_exactly_at_the_first_item_cut(page: int, per_page: int, kept: int, resume: tuple) -> None:
    pages = IMAGES.pages
    assert pages is not None and pages.style == "page"
    answer = shaping.continuation(pages, IMAGES, {"page": page, "per_page": per_page}, kept)
    next_page, size = answer["page"], answer["per_page"]
    assert (next_page, size) == resume and 1 <= size <= max(kept, 1)
    assert (next_page - 1) * size == (page - 1) * per_page + kept  # the first item cut, not one later


def test_a_cut_page_replaces_next_page_and_says_the_page_size() -> None:
    result = cap(listing(100), 5000, IMAGES, {"page": 1, "per_page": 100})
    assert_fits(result, 5000)
    kept = len(result["images"])
    assert result["truncated"]["next_call"] == {"page": 2, "per_page": kept}
    assert (result["next_page"], result["next_per_page"]) == (2, kept)  # no longer the upstream's page 2 of 100
    assert f"page=2, per_page={kept}" in result["truncated"]["note"]


def test_a_cut_cursor_page_is_asked_again_smaller_and_the_next_cursor_is_dropped() -> None:
    data = {"items": [image(n) for n in range(60)], "pagination": {"next_cursor": "c2", "total_count": 99}}
    first = cap(data, 5000, PROJECTS, {"limit": 60})
    kept = len(first["items"])
    assert kept < 60 and first["truncated"]["next_call"] == {"limit": kept}
    assert "next_cursor" not in first["pagination"]  # following it would skip the items cut
    assert "no cursor and limit=" in first["truncated"]["note"]
    later = cap(data, 5000, PROJECTS, {"cursor": "c1", "limit": 60})
    assert later["truncated"]["next_call"] == {"cursor": "c1", "limit": kept}
    assert_fits(later, 5000)


def test_a_cut_start_page_moves_start_past_what_was_kept() -> None:
    data = {"result": [image(n) for n in range(60)], "total_count": 60}
    result = cap(data, 5000, ENVIRONMENTS, {"start": 5})
    kept = len(result["result"])
    assert result["truncated"]["next_call"] == {"start": 5 + kept, "limit": kept}  # counted from 1
    assert cap(data, 5000, ENVIRONMENTS, {})["truncated"]["next_call"] == {"start": 1 + kept, "limit": kept}


def test_without_the_call_arguments_or_paging_the_note_only_says_how_to_narrow() -> None:
    assert "next_call" not in cap(listing(100), 5000, IMAGES)["truncated"]
    assert OPERATION.pages is None
    assert "next_call" not in cap({"items": [image(n) for n in range(60)]}, 5000, OPERATION, {})["truncated"]


def test_paging_is_what_tools_yaml_declares() -> None:
    """Tools are data: a listing pages as its `pages` says, whatever its parameters are called."""
    assert IMAGES.pages == Pages(style="page", at="page", size="per_page")
    undeclared = IMAGES.model_copy(update={"pages": None})  # same page/per_page params, no declaration
    assert "next_call" not in cap(listing(100), 5000, undeclared, {"page": 1, "per_page": 100})["truncated"]


# --- issue 20, finding 6: a big result is redacted and cut off the event loop -----------------------------


@pytest.mark.parametrize("data", list(SHAPES.values()), ids=list(SHAPES))
def test_cutting_a_result_handed_over_gives_the_same_as_cutting_a_copy(data: dict[str, Any]) -> None:
    """`own=True` cuts in place (no deep copy: a third less time and memory), with the same result."""
    copied = cap(json.loads(dumps(data)), 5000, IMAGES)
    assert cap(json.loads(dumps(data)), 5000, IMAGES, own=True) == copied
    assert dumps(cap(json.loads(dumps(data)), 5000, PROJECTS, {"limit": 50}, own=True)) == dumps(
        cap(data, 5000, PROJECTS, {"limit": 50})
    )


def test_light_counts_values_and_long_strings_and_reads_no_further_than_its_budget() -> None:
    assert shaping.light({"id": "x", "tags": ["a", "b"], "size": 3}, 6)  # the object, its three values, two tags
    assert not shaping.light({"id": "x", "tags": ["a", "b"], "size": 3}, 5)
    assert shaping.light({"log": "x" * 64 * 10}, 12) and not shaping.light({"log": "x" * 64 * 10}, 11)
    assert not shaping.light({"k" * 64 * 10: 0}, 11)  # a long key weighs like a long string
    assert shaping.light(listing(10)) and not shaping.light(listing(500))

    class Unread(list):  # a container whose items must not be read: its length alone is over the budget
        def __iter__(self):  # type: ignore[no-untyped-def]
            raise AssertionError("walked")

    assert not shaping.light({"items": Unread([0] * 2000)})


@pytest.mark.anyio
async def test_off_loop_runs_a_light_result_at_once_and_a_heavy_one_on_a_worker_thread() -> None:
    import threading

    def where(data: Any) -> str:
        return threading.current_thread().name

    loop_thread = threading.current_thread().name
    assert await shaping.off_loop(where, listing(10)) == loop_thread
    assert await shaping.off_loop(where, listing(500)) != loop_thread
    # The bytes the upstream sent for it tell without a walk; none counted (a websocket's output): walked.
    assert await shaping.off_loop(where, listing(500), received=shaping.LIGHT_BYTES - 1) == loop_thread
    assert await shaping.off_loop(where, listing(10), received=shaping.LIGHT_BYTES) != loop_thread
    assert await shaping.off_loop(where, listing(500), received=0) != loop_thread
