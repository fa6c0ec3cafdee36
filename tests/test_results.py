"""Responses become objects an agent can use; failures become one actionable line."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from mcp_cloudops import results
from mcp_cloudops.redaction import MASK, Redactor
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.registry_models import Envelope, ErrorWords, Paging
from mcp_cloudops.results import (
    MESSAGE_MAX,
    count_values,
    failed_with,
    one_line,
    payload,
    retry_after,
    too_many_values,
    upstream_message,
    values_allowed,
)

REGISTRY = load_registry()
INCUS = REGISTRY.providers["incus"]
SCALEWAY = REGISTRY.providers["scaleway"]
EXOSCALE = REGISTRY.providers["exoscale"]
NIRVANA = REGISTRY.providers["nirvana"]
PAGING_HEADERS = {"x-total-count": "120", "link": '</v1/things?page=3>; rel="next"'}


def test_incus_envelope_is_unwrapped() -> None:
    body = {
        "type": "sync",
        "status": "Success",
        "status_code": 200,
        "operation": "",
        "error_code": 0,
        "error": "",
        "metadata": {"id": "x", "status": "Running"},
    }
    assert payload(INCUS, 200, {}, body) == {"id": "x", "status": "Running"}


def test_incus_list_metadata_and_null_metadata() -> None:
    assert payload(INCUS, 200, {}, {"type": "sync", "metadata": ["/1.0/operations/a"]}) == {
        "result": ["/1.0/operations/a"]
    }
    assert payload(INCUS, 200, {}, {"type": "sync", "metadata": None}) == {"ok": True, "status": 200}


def test_scaleway_paging_headers_are_surfaced() -> None:
    headers = {
        "x-total-count": "120",
        "link": '</instance/v1/zones/fr-par-1/images?page=1>; rel="first", '
        '</instance/v1/zones/fr-par-1/images?page=3>; rel="next"',
    }
    assert payload(SCALEWAY, 200, headers, {"images": []}) == {
        "images": [],
        "total_count": 120,
        "next_page": 3,
    }


def test_empty_body_is_ok() -> None:
    assert payload(SCALEWAY, 204, {}, None) == {"ok": True, "status": 204}


def test_upstream_messages_from_each_envelope() -> None:
    incus_error = {"type": "error", "error": "Operation not found", "error_code": 404}
    assert upstream_message(INCUS.errors, incus_error, "") == "Operation not found"
    assert "unknown_resource: image not found" in upstream_message(
        SCALEWAY.errors, {"type": "unknown_resource", "message": "image not found"}, ""
    )
    assert "fields:" in upstream_message(
        SCALEWAY.errors,
        {"type": "invalid_request_error", "message": "Validation Error", "fields": {"name": ["required"]}},
        "",
    )
    html = "<html><body>502 Bad Gateway</body></html>"
    assert upstream_message(INCUS.errors, None, html) == "no error message (non-JSON body)"


def test_error_text_names_provider_status_and_next_step() -> None:
    tool = REGISTRY.by_name["retrieve-compute-instance-details"]
    text = str(failed_with(tool, EXOSCALE, 404, {"message": "Instance not found"}, ""))
    assert text.startswith("Exoscale returned HTTP 404 for retrieve-compute-instance-details: Instance not found.")
    assert "list-compute-instances" in text
    assert "EXOSCALE_API_KEY" in str(failed_with(tool, EXOSCALE, 401, {"message": "no"}, ""))
    stop = REGISTRY.by_name["stop-compute-instance"]
    assert "outcome is unknown" in str(failed_with(stop, EXOSCALE, 503, None, ""))
    assert "wait 3 seconds" in str(failed_with(stop, EXOSCALE, 429, {"message": "slow", "retry_after": 3}, ""))


def test_rate_limit_quotes_the_wait_from_header_or_body() -> None:
    stop = REGISTRY.by_name["stop-compute-instance"]
    assert "wait 7 seconds" in str(failed_with(stop, EXOSCALE, 429, None, "", {"retry-after": "7"}))
    assert "wait 3 seconds" in str(failed_with(stop, EXOSCALE, 429, {"retry_after": 3}, "", {}))
    assert "wait a few seconds" in str(failed_with(stop, EXOSCALE, 429, None, "", {"retry-after": "soon"}))
    assert "wait 1 second," in str(failed_with(stop, EXOSCALE, 429, None, "", {"retry-after": "0.2"}))
    assert "wait 60 minutes" in str(failed_with(stop, EXOSCALE, 429, None, "", {"retry-after": "3600"}))


def test_retry_after_reads_seconds_dates_and_exoscale_bodies() -> None:
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert retry_after({"retry-after": "2.5"}, None) == 2.5
    assert retry_after({"retry-after": "Tue, 14 Nov 2023 22:13:50 GMT"}, None, now=now) == 30.0
    assert retry_after({"retry-after": "Tue, 14 Nov 2023 22:00:00 GMT"}, None, now=now) == 0.0  # already past
    field = EXOSCALE.retry_after_field
    assert retry_after({}, {"retry_after": 4}, field) == 4.0
    assert retry_after({"retry-after": "garbage"}, {"retry_after": -1}, field) is None
    assert retry_after({}, {"retry_after": True}, field) is None  # a bool is an int to Python, not a wait


SECRET = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def test_one_line_redacts_before_it_cuts() -> None:
    """A secret across the cut is masked whole: cut first, its first half would be left."""
    text = "x" * (MESSAGE_MAX - 10) + SECRET + "\nsecond line"
    line = one_line(text, MESSAGE_MAX, Redactor([SECRET]))
    assert line == "x" * (MESSAGE_MAX - 10) + MASK[:9] + "…" and "0a1b2c3d" not in line
    token = "Bearer " + "t" * 40  # a shape needs no configured value: masked before the cut too
    masked = "x" * (MESSAGE_MAX - 15) + f" Bearer {MASK}"
    assert one_line("x" * (MESSAGE_MAX - 15) + " " + token, MESSAGE_MAX) == masked[: MESSAGE_MAX - 1] + "…"
    assert one_line("a\r\nb\x00c" + " " * 1000 + "d") == "a b c d"
    assert one_line("a" + " " * 1_000_000 + "d") == "a…"  # only what the cut could show is read


def test_upstream_words_are_redacted_before_any_cut() -> None:
    redactor = Redactor([SECRET])
    fields = {"name": ["y" * 280 + SECRET]}  # the fields are cut to 300 characters: across the secret
    said = upstream_message(SCALEWAY.errors, {"message": "invalid", "fields": fields}, "", redactor)
    assert said.startswith("invalid: fields: ") and "0a1b2c3d" not in said
    text = str(failed_with(REGISTRY.tools[0], SCALEWAY, 400, None, "z" * 190 + SECRET + "\nmore", {}, redactor))
    assert "0a1b2c3d" not in text and text.endswith("Fix the arguments the message names and call again.")


# --- what each provider declares in tools.yaml, and only that, is read -----------------------------------


def test_paging_headers_mean_nothing_where_no_paging_is_declared(registry: Registry) -> None:
    unpaged = [provider for provider in registry.providers.values() if provider.paging is None]
    assert unpaged
    for provider in unpaged:
        assert payload(provider, 200, PAGING_HEADERS, {"items": []}) == {"items": []}, provider.key


def test_paging_headers_are_read_where_declared() -> None:
    assert NIRVANA.paging is None and payload(NIRVANA, 200, PAGING_HEADERS, {"items": []}) == {"items": []}
    assert payload(SCALEWAY, 200, PAGING_HEADERS, {"items": []}) == {"items": [], "total_count": 120, "next_page": 3}
    counted = NIRVANA.model_copy(update={"paging": Paging(total_count="X-Result-Count")})
    headers = {**PAGING_HEADERS, "x-result-count": "7"}
    assert payload(counted, 200, headers, {"items": []}) == {"items": [], "total_count": 7}  # its header, no Link


def test_the_envelope_is_unwrapped_as_declared() -> None:
    started = {"operation": "/1.0/operations/u", "metadata": {"id": "u"}}
    created = {"type": "async", "status": "Operation created", **started}
    assert payload(INCUS, 202, {}, created) == started
    assert payload(SCALEWAY, 200, {}, created) == created  # plain JSON: taken as it is
    envelope = Envelope.model_validate({"data": "result", "async": {"when": {"state": "queued"}, "keep": ["job"]}})
    wrapped = NIRVANA.model_copy(update={"response": envelope})
    assert payload(wrapped, 200, {}, {"result": {"id": "x"}, "state": "done", "metadata": {}}) == {"id": "x"}
    assert payload(wrapped, 202, {}, {"result": None, "state": "queued", "job": "/jobs/1"}) == {"job": "/jobs/1"}
    assert payload(wrapped, 200, {}, {"metadata": {"id": "y"}}) == {"metadata": {"id": "y"}}  # no data field
    assert payload(wrapped, 200, {}, {"result": None, "state": "done"}) == {"ok": True, "status": 200}


def test_error_words_come_from_the_declared_fields() -> None:
    body = {
        "type": "too_many_requests",
        "error": "slow down",
        "message": "Too many requests",
        "reason": "quota",
        "fields": {"name": ["required"]},
    }
    scaleway = 'too_many_requests: Too many requests: fields: {"name":["required"]}'
    assert upstream_message(SCALEWAY.errors, body, "") == scaleway
    assert upstream_message(EXOSCALE.errors, body, "") == "slow down: Too many requests"  # the default words
    assert upstream_message(ErrorWords(words=("reason",)), body, "") == "quota"
    problems = ErrorWords(words=("reason",), per_field="problems")
    said = upstream_message(problems, {**body, "problems": {"size": "too big"}}, "")
    assert said == 'quota: problems: {"size":"too big"}'
    # Incus says type "error" on every failure: not one of its words, so never quoted.
    assert upstream_message(INCUS.errors, {"type": "error", "error": "not found", "error_code": 404}, "") == "not found"


def test_retry_after_is_read_from_a_body_field_only_where_declared() -> None:
    assert EXOSCALE.retry_after_field == "retry_after" and SCALEWAY.retry_after_field is None
    assert retry_after({}, {"retry_after": 4}) is None
    assert retry_after({}, {"wait": 4, "retry_after": 9}, "wait") == 4.0
    assert retry_after({"retry-after": "2"}, {"retry_after": 9}, "retry_after") == 2.0  # the header is HTTP's own
    tool = REGISTRY.by_name["get-instance-image"]
    assert "wait a few seconds" in str(failed_with(tool, SCALEWAY, 429, {"retry_after": 3}, "", {}))
    assert "wait 3 seconds" in str(failed_with(tool, SCALEWAY, 429, None, "", {"retry-after": "3"}))


def test_not_found_names_each_id_with_its_lister_and_only_the_scope_the_tool_has() -> None:
    from mcp_cloudops.registry import load_registry
    from mcp_cloudops.results import not_found

    registry = load_registry()
    assert not_found(registry.by_name["revert-snapshot-instance"]) == (
        "Check instance-id (list them with list-compute-instances), id (list them with list-exoscale-snapshots), zone."
    )
    portainer = not_found(registry.by_name["attach-websocket"])
    assert "list-docker-containers" in portainer and "zone" not in portainer and "project" not in portainer
    assert "from an earlier result" in not_found(registry.by_name["get-exoscale-operation"])


# --- the bound on an answer's JSON values ---------------------------------------------------------------


def values_in(data: Any) -> int:
    """What count_values counts, from the parsed value: itself, and everything inside it."""
    if isinstance(data, dict):
        return 1 + sum(map(values_in, data.values()))
    if isinstance(data, list):
        return 1 + sum(map(values_in, data))
    return 1


AWKWARD = [
    {},
    [],
    "",
    0,
    {"a": []},
    [[], {}, [[]], [{}], ""],
    {"k,[{": "v,]}", "": [1, 2.5e3, True, False, None]},
    ["\\", '"', '\\"', '\\\\"x', '",[{', "\u2028 é 😀", "a\nb\tc"],  # escapes around quotes
    {"nested": [{"deep": [[[{"x": ["y", {"z": [0]}]}]]]}]},
]


@pytest.mark.parametrize("data", AWKWARD, ids=range(len(AWKWARD)))
@pytest.mark.parametrize("indent", [None, 2])
def test_count_values_is_exact_for_awkward_json(data: Any, indent: int | None) -> None:
    text = json.dumps(data, indent=indent, ensure_ascii=False).encode()
    assert count_values(text) == values_in(data)
    assert count_values(b" \r\n\t" + text + b"\n") == values_in(data)  # blanks around it too


def random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(7 if depth < 4 else 3)
    if pick == 0:
        return rng.choice([0, -1.5, True, None, 10**20])
    if pick in (1, 2):
        return "".join(rng.choice('ab,[]{}:"\\ \n') for _ in range(rng.randrange(8)))
    if pick in (3, 4):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {
        random_json(rng, 4) if rng.random() < 0.5 else "k": random_json(rng, depth + 1) for _ in range(rng.randrange(5))
    }


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 256 * 1024])
def test_count_values_is_exact_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Counted in steps that may end anywhere: inside a string, an escape, between `[` and `]`."""
    monkeypatch.setattr(results, "SCAN_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(200):
        data = random_json(rng)
        text = json.dumps(data, indent=rng.choice([None, 1]), ensure_ascii=rng.random() < 0.5).encode()
        assert count_values(text) == values_in(data), text


def test_the_value_bound_follows_the_byte_cap() -> None:
    assert values_allowed(10 * 2**20) == 655_360  # the default cap: one value per 16 bytes
    assert values_allowed(320_000) == 20_000
    assert values_allowed(1000) == 10_000  # a small cap allows what costs milliseconds anyway


def test_too_many_values_counts_only_what_it_must(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[bytes] = []
    real = results._count
    monkeypatch.setattr(results, "_count", lambda text: counted.append(text) or real(text))
    items = b'{"items":[' + b"{}," * 99 + b"{}]}"  # 102 values: the answer, its list, 100 items
    assert too_many_values(items, 101) and not too_many_values(items, 102)
    assert len(counted) == 2  # 201 commas and brackets: more than either bound, so counted
    assert not too_many_values(items, len(items))  # a value takes a byte at least
    assert not too_many_values(json.dumps({"log": "a" * 500}).encode(), 100)  # no comma, no bracket inside
    strings = json.dumps(["x"] * 101).encode()  # 102 values, at least one per two strings
    assert too_many_values(strings, 50) and too_many_values(strings, 101) and not too_many_values(strings, 102)
    assert len(counted) == 3  # only 101: 50 is refused by the strings alone, 102 allowed by the commas
    assert not too_many_values(json.dumps(["a,b,c,[d],{e}"] * 10).encode(), 20)  # 11 values: commas in strings
