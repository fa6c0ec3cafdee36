"""Hostile upstreams: hangs, endless bodies, garbage, HTML error pages, redirects elsewhere, echoed
credentials, rate limits and flaky 5xx. Each ends in the exact documented outcome, bounded in time and
memory, with nothing leaked and the server still serving."""

from __future__ import annotations

import json
import re
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from fakes import (
    UUID,
    Behaviour,
    Hostile,
    HostileExoscale,
    HostilePortainer,
    HostileScaleway,
    OtherHost,
    answer_ok,
    answering,
    serving,
)
from mcp import Client
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket
from support import assert_nothing_leaked, text_of

from mcp_cloudops.sandbox import credentials, exoscale, scaleway
from mcp_cloudops.sandbox.scaleway import ScalewaySimulator

pytestmark = pytest.mark.anyio

HEX_ID = "ffffffffffff"
IMAGE_PATH = f"/instance/v1/zones/fr-par-1/images/{scaleway.IMAGE_PRIVATE}"


def assert_one_line_error(result: Any) -> str:
    text = text_of(result)
    assert result.is_error, text
    assert result.structured_content is None
    assert "\n" not in text and "Traceback" not in text and "<html" not in text.lower()
    return text


async def timed_call(client: Client, tool: str, arguments: dict[str, Any], limit: float = 10) -> tuple[Any, float]:
    started = time.monotonic()
    with anyio.fail_after(limit):
        result = await client.call_tool(tool, arguments)
    return result, time.monotonic() - started


async def assert_still_serving(client: Client, sim: Hostile, tool: str, arguments: dict[str, Any]) -> None:
    sim.behave = answer_ok
    result, _ = await timed_call(client, tool, arguments)
    assert not result.is_error, text_of(result)


# --- behaviours --------------------------------------------------------------------------------------


async def hang(sim: Hostile, request: Request) -> Response:
    """Never answer (until the client gives up, or 10 s)."""
    with anyio.move_on_after(10):
        while not await request.is_disconnected():
            await anyio.sleep(0.05)
    return Response(status_code=204)


async def endless(sim: Hostile, request: Request) -> Response:
    """A 200 whose JSON-looking body streams on for up to 1 GiB."""
    chunk = b'{"padding": "' + b"x" * 65_500 + b'",'

    async def body() -> AsyncIterator[bytes]:
        for _ in range(2**30 // len(chunk)):
            if await request.is_disconnected():
                return
            sim.sent += len(chunk)
            yield chunk

    return StreamingResponse(body(), media_type="application/json")


def redirect(status: int, location: str) -> Behaviour:
    async def behave(sim: Hostile, request: Request) -> Response:
        return Response(b"", status_code=status, headers={"Location": location})

    return behave


# --- timeouts ----------------------------------------------------------------------------------------


async def test_hanging_read_times_out_quickly_and_is_retried(logs: pytest.LogCaptureFixture) -> None:
    sim = Hostile()
    async with serving(sim, read_timeout="0.3") as (_, client):
        sim.behave = hang
        result, took = await timed_call(client, "get-nirvana-operation", {"operation_id": UUID})
        assert assert_one_line_error(result) == (
            "Nirvana Labs did not answer in time (127.0.0.1, ReadTimeout) for get-nirvana-operation after 3 tries. "
            "Retry, or narrow the request."
        )
        assert len(sim.requests) == 3  # an idempotent read: tried once and retried twice
        assert 0.9 <= took < 5  # three 0.3 s timeouts and two backoffs
        assert "get-nirvana-operation failed: UpstreamError" in logs.text  # the logs are captured, and checked
        assert_nothing_leaked([sim], result, logs.text)
        await assert_still_serving(client, sim, "get-nirvana-operation", {"operation_id": UUID})


@pytest.mark.parametrize(
    ("sim_class", "tool", "arguments", "provider", "lookup"),
    [
        (
            HostileScaleway,
            "update-image-2",
            {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed"},
            "Scaleway",
            "list-instance-images",
        ),
        (
            HostileScaleway,
            "delete-instance-image",
            {"image_id": scaleway.IMAGE_PRIVATE},
            "Scaleway",
            "list-instance-images",
        ),
        (
            HostileExoscale,
            "stop-compute-instance",
            {"id": exoscale.INSTANCE_RUNNING},
            "Exoscale",
            "list-compute-instances",
        ),
    ],
    ids=["patch", "delete", "exoscale-action"],
)
async def test_hanging_write_is_sent_once_and_its_outcome_is_unknown(
    logs: pytest.LogCaptureFixture,
    sim_class: type[Hostile],
    tool: str,
    arguments: dict[str, Any],
    provider: str,
    lookup: str,
) -> None:
    sim = sim_class()
    async with serving(sim, read_timeout="0.3") as (_, client):
        sim.behave = hang
        result, took = await timed_call(client, tool, arguments)
        assert assert_one_line_error(result) == (
            f"{provider} did not answer in time (127.0.0.1, ReadTimeout) for {tool}. The request was sent, so the "
            f"outcome is unknown: read the state with {lookup} before retrying (a retry may do it twice)."
        )
        assert len(sim.requests) == 1  # a write is never resent
        assert took < 3
        assert_nothing_leaked([sim], result, logs.text)
        await assert_still_serving(client, sim, tool, arguments)


# --- bodies: too big, not JSON, an HTML error page ---------------------------------------------------


async def test_endless_body_is_cut_at_the_cap_in_bounded_time_and_memory(logs: pytest.LogCaptureFixture) -> None:
    sim = Hostile()
    async with serving(sim, max_response_bytes="100000") as (_, client):
        sim.behave = endless
        tracemalloc.start()
        try:
            result, took = await timed_call(client, "get-nirvana-operation", {"operation_id": UUID})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert assert_one_line_error(result) == (
            "Nirvana Labs answered get-nirvana-operation with more than 100000 bytes; mcp-cloudops stopped reading. "
            "Narrow the request (filters, a smaller page) and call again."
        )
        assert len(sim.requests) == 1  # not retried: a bigger answer would not get smaller
        assert took < 3
        assert peak < 32 * 2**20  # the 1 GiB was never held
        assert sim.sent < 2**30  # and the upstream was cut off long before its end
        assert_nothing_leaked([sim], result, logs.text)
        await assert_still_serving(client, sim, "get-nirvana-operation", {"operation_id": UUID})


NOT_JSON = {
    "garbage": b"{not json at all",
    "truncated": b'{"id": "' + UUID.encode() + b'", "status": "do',
    "binary": b"\xff\xfe\x00\x01\x80garbage",
    "html-200": b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>",
    "trailing-garbage": b'{"id": "x"} {"id": "y"}',
}


@pytest.mark.parametrize("content", list(NOT_JSON.values()), ids=list(NOT_JSON))
async def test_a_body_that_is_not_json_is_a_clear_error(logs: pytest.LogCaptureFixture, content: bytes) -> None:
    sim = Hostile()
    async with serving(sim) as (_, client):
        sim.behave = answering(content)
        result, _ = await timed_call(client, "get-nirvana-operation", {"operation_id": UUID})
        assert assert_one_line_error(result) == (
            f"Nirvana Labs answered get-nirvana-operation with HTTP 200 but a body that is not JSON ({len(content)} "
            "bytes). Check NIRVANA_LABS_BASE_URL points at the API."
        )
        assert len(sim.requests) == 1
        assert_nothing_leaked([sim], result, logs.text)
        await assert_still_serving(client, sim, "get-nirvana-operation", {"operation_id": UUID})


async def test_deeply_nested_json_is_a_clear_error(logs: pytest.LogCaptureFixture) -> None:
    sim = Hostile()
    async with serving(sim) as (_, client):
        sim.behave = answering(b"[" * 100_000 + b"]" * 100_000)
        result, _ = await timed_call(client, "get-nirvana-operation", {"operation_id": UUID})
        text = assert_one_line_error(result)
        assert len(sim.requests) == 1
        await assert_still_serving(client, sim, "get-nirvana-operation", {"operation_id": UUID})
        assert "internal error" not in text and text.startswith("Nirvana Labs answered get-nirvana-operation")


HTML_500 = (
    b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
    b"<body><h1>Internal Server Error</h1><pre>Traceback (most recent call last):\n  File app.py</pre></body></html>"
)


@pytest.mark.parametrize(
    ("sim_class", "tool", "arguments", "expected", "attempts"),
    [
        (
            Hostile,
            "get-nirvana-operation",
            {"operation_id": UUID},
            "Nirvana Labs returned HTTP 500 for get-nirvana-operation: no error message (non-JSON body). "
            "Upstream failure: if the message names a cause (wrong secret, finished operation), fix it; else retry.",
            1,
        ),
        (
            HostileScaleway,
            "update-image-2",
            {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed"},
            "Scaleway returned HTTP 500 for update-image-2: no error message (non-JSON body). Upstream failure: "
            "the outcome is unknown; read the resource's state with list-instance-images before retrying.",
            1,
        ),
    ],
    ids=["read", "write"],
)
async def test_an_html_500_page_is_one_line_without_the_page(
    logs: pytest.LogCaptureFixture,
    sim_class: type[Hostile],
    tool: str,
    arguments: dict[str, Any],
    expected: str,
    attempts: int,
) -> None:
    sim = sim_class()
    async with serving(sim) as (_, client):
        sim.behave = answering(HTML_500, status=500, media_type="text/html")
        result, _ = await timed_call(client, tool, arguments)
        assert assert_one_line_error(result) == expected
        assert len(sim.requests) == attempts
        assert_nothing_leaked([sim], result, logs.text)
        await assert_still_serving(client, sim, tool, arguments)


async def test_newlines_in_an_upstream_error_message_stay_one_line(logs: pytest.LogCaptureFixture) -> None:
    sim = Hostile()
    async with serving(sim) as (_, client):
        sim.behave = answering(json.dumps({"message": "bad\r\nX-Injected: yes\n\nsecond line"}), status=400)
        result, _ = await timed_call(client, "get-nirvana-operation", {"operation_id": UUID})
        assert result.is_error and "HTTP 400" in text_of(result)
        assert_nothing_leaked([sim], result, logs.text)
        assert_one_line_error(result)


async def test_a_huge_upstream_error_message_is_bounded(logs: pytest.LogCaptureFixture) -> None:
    sim = Hostile()
    async with serving(sim, output_cap="2000") as (_, client):
        sim.behave = answering(json.dumps({"message": "x" * 200_000}), status=400)
        result, _ = await timed_call(client, "get-nirvana-operation", {"operation_id": UUID})
        text = assert_one_line_error(result)
        assert text.startswith("Nirvana Labs returned HTTP 400 for get-nirvana-operation: x")
        assert len(text) <= 2000


# --- redirects -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["evil", "other-server"])
@pytest.mark.parametrize(
    ("sim_class", "tool", "arguments", "provider", "url_env"),
    [
        (Hostile, "get-nirvana-operation", {"operation_id": UUID}, "Nirvana Labs", "NIRVANA_LABS_BASE_URL"),
        (
            HostileScaleway,
            "update-image-2",
            {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed"},
            "Scaleway",
            "SCW_API_URL",
        ),
    ],
    ids=["read", "write"],
)
async def test_a_redirect_is_refused_and_nothing_reaches_another_host(
    logs: pytest.LogCaptureFixture,
    sim_class: type[Hostile],
    tool: str,
    arguments: dict[str, Any],
    provider: str,
    url_env: str,
    target: str,
) -> None:
    sim, other = sim_class(), OtherHost()
    async with serving(sim, other) as (sandbox, client):
        base = "http://evil.example" if target == "evil" else sandbox.addresses["elsewhere"]
        location = base + "/steal?token=leaked-token-value&next=/v1"
        for status in (301, 302, 303, 307, 308):
            before = len(sim.requests)
            sim.behave = redirect(status, location)
            result, _ = await timed_call(client, tool, arguments)
            assert assert_one_line_error(result) == (
                f"{provider} answered {tool} with a redirect (HTTP {status}), which is not followed. "
                f"Check {url_env}: it should be the API's own address."
            )
            assert len(sim.requests) == before + 1  # not retried, not followed
            assert "evil" not in text_of(result) and "leaked-token-value" not in logs.text
        assert other.requests == []
        assert_nothing_leaked([sim, other], result, logs.text)
        await assert_still_serving(client, sim, tool, arguments)
        assert other.requests == []


# --- echoed credentials --------------------------------------------------------------------------------


def echo_back(header: str, status: int) -> Behaviour:
    """Answer with the request's own credential header, in every place a careless upstream might put it."""

    async def behave(sim: Hostile, request: Request) -> Response:
        value = request.headers[header]
        if status >= 400:
            return JSONResponse({"message": f"{header}: {value} was refused", "details": value}, status_code=status)
        return JSONResponse(
            {
                "id": UUID,
                "echo": {header: value, "all": dict(request.headers)},
                "text": f"you sent {header}: {value}",
                "list": [value, {"nested": [value]}],
                value: "as a key",
            }
        )

    return behave


ECHOES = [
    (Hostile, "get-nirvana-operation", {"operation_id": UUID}, "authorization"),
    (HostileScaleway, "get-instance-image", {"image_id": scaleway.IMAGE_PRIVATE}, "x-auth-token"),
    (HostileExoscale, "retrieve-compute-instance-details", {"id": exoscale.INSTANCE_RUNNING}, "authorization"),
]


@pytest.mark.parametrize("status", [200, 401, 500])
@pytest.mark.parametrize(
    ("sim_class", "tool", "arguments", "header"), ECHOES, ids=["bearer", "x-auth-token", "exo2-signature"]
)
async def test_echoed_credentials_are_redacted(
    logs: pytest.LogCaptureFixture,
    sim_class: type[Hostile],
    tool: str,
    arguments: dict[str, Any],
    header: str,
    status: int,
) -> None:
    sim = sim_class()
    async with serving(sim) as (_, client):
        sim.behave = echo_back(header, status)
        result, _ = await timed_call(client, tool, arguments)
        echoed = sim.requests[-1].headers[header]
        assert len(echoed) > 20
        text = text_of(result)
        assert "[REDACTED]" in text
        if status >= 400:
            assert_one_line_error(result)
            assert f"HTTP {status}" in text
        else:
            assert not result.is_error, text
            data = result.structured_content
            assert json.loads(text) == data
            assert "[REDACTED]" in data["echo"][header] and "[REDACTED]" in data["text"]
            assert "[REDACTED]" in data["list"][0] and "[REDACTED]" in data["list"][1]["nested"][0]
        assert_nothing_leaked([sim], result, logs.text)
        await assert_still_serving(client, sim, tool, arguments)


async def echo_api_key_over_websocket(sim: Hostile, ws: WebSocket) -> None:
    await ws.accept()
    key = ws.headers["x-api-key"]
    await ws.send_text(f"X-API-Key: {key}\r\nx-api-key={key}\r\n{key}\r\n")
    await ws.close()


async def refuse_with_api_key(sim: Hostile, ws: WebSocket) -> None:
    key = ws.headers["x-api-key"]
    await ws.send_denial_response(JSONResponse({"message": f"X-API-Key {key} is not allowed"}, status_code=403))


async def test_api_key_echoed_over_a_websocket_is_redacted(logs: pytest.LogCaptureFixture) -> None:
    sim = HostilePortainer()
    arguments = {"endpointId": 1, "id": HEX_ID, "max_seconds": 2, "idle_seconds": 0.5}
    async with serving(sim) as (_, client):
        sim.behave_ws = echo_api_key_over_websocket
        result, _ = await timed_call(client, "attach-websocket", arguments)
        assert not result.is_error, text_of(result)
        assert sim.requests[-1].headers["x-api-key"] == credentials.PORTAINER_API_KEY
        output = result.structured_content["output"]
        assert output.count("[REDACTED]") == 3 and result.structured_content["stopped"] == "closed"
        assert_nothing_leaked([sim], result, logs.text)

        sim.behave_ws = refuse_with_api_key
        result, _ = await timed_call(client, "attach-websocket", arguments)
        assert assert_one_line_error(result) == (
            "Portainer CE returned HTTP 403 for attach-websocket: X-API-Key [REDACTED] is not allowed. "
            "The credentials lack permission for this action, or the resource is protected."
        )
        assert_nothing_leaked([sim], result, logs.text)


# --- rate limits and flaky 5xx against the real simulator ---------------------------------------------

TOO_MANY = {"message": "Too many requests", "type": "too_many_requests"}


async def test_429_on_a_read_is_retried_after_retry_after(logs: pytest.LogCaptureFixture) -> None:
    sim = ScalewaySimulator()
    async with serving(sim) as (_, client):
        sim.fail_next(429, TOO_MANY, retry_after=1)
        result, took = await timed_call(client, "get-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert not result.is_error, text_of(result)
        assert result.structured_content["image"]["id"] == scaleway.IMAGE_PRIVATE
        assert [(r.method, r.path) for r in sim.requests] == [("GET", IMAGE_PATH)] * 2
        assert 1 <= took < 5  # Retry-After: 1 was honoured
        assert_nothing_leaked([sim], result, logs.text)


async def test_429_on_a_write_is_not_retried(logs: pytest.LogCaptureFixture) -> None:
    sim = ScalewaySimulator()
    async with serving(sim) as (_, client):
        name = sim.images[scaleway.IMAGE_PRIVATE]["name"]
        sim.fail_next(429, TOO_MANY, retry_after=1)
        result, took = await timed_call(client, "update-image-2", {"image_id": scaleway.IMAGE_PRIVATE, "name": "new"})
        assert assert_one_line_error(result) == (
            "Scaleway returned HTTP 429 for update-image-2: too_many_requests: Too many requests. "
            "Rate limited: wait 1 second, then retry."
        )
        assert [(r.method, r.path) for r in sim.requests] == [("PATCH", IMAGE_PATH)]
        assert sim.images[scaleway.IMAGE_PRIVATE]["name"] == name
        assert took < 1
        assert_nothing_leaked([sim], result, logs.text)
        result, _ = await timed_call(client, "update-image-2", {"image_id": scaleway.IMAGE_PRIVATE, "name": "new"})
        assert not result.is_error and result.structured_content["image"]["name"] == "new"


async def test_429_asking_for_an_hour_is_not_waited_for(logs: pytest.LogCaptureFixture) -> None:
    sim = ScalewaySimulator()
    async with serving(sim) as (_, client):
        sim.fail_next(429, TOO_MANY, retry_after=3600)
        result, took = await timed_call(client, "get-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert assert_one_line_error(result) == (
            "Scaleway returned HTTP 429 for get-instance-image: too_many_requests: Too many requests. "
            "Rate limited: wait 60 minutes, then retry."
        )
        assert len(sim.requests) == 1 and took < 2
        assert_nothing_leaked([sim], result, logs.text)


async def test_503_twice_then_200_on_a_read_succeeds(logs: pytest.LogCaptureFixture) -> None:
    sim = ScalewaySimulator()
    async with serving(sim) as (_, client):
        sim.fail_next(503)
        sim.fail_next(503)
        result, took = await timed_call(client, "get-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert not result.is_error, text_of(result)
        assert result.structured_content["image"]["id"] == scaleway.IMAGE_PRIVATE
        assert [(r.method, r.path) for r in sim.requests] == [("GET", IMAGE_PATH)] * 3
        assert took < 3
        assert_nothing_leaked([sim], result, logs.text)


async def test_503_three_times_on_a_read_gives_up(logs: pytest.LogCaptureFixture) -> None:
    sim = ScalewaySimulator()
    async with serving(sim) as (_, client):
        for _ in range(3):
            sim.fail_next(503)
        result, _ = await timed_call(client, "get-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert assert_one_line_error(result) == (
            "Scaleway returned HTTP 503 for get-instance-image: Injected upstream error 503. "
            "Upstream failure: if the message names a cause (wrong secret, finished operation), fix it; else retry."
        )
        assert len(sim.requests) == 3
        result, _ = await timed_call(client, "get-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert not result.is_error


async def test_503_on_a_write_is_not_retried(logs: pytest.LogCaptureFixture) -> None:
    sim = ScalewaySimulator()
    async with serving(sim) as (_, client):
        sim.fail_next(503)
        result, _ = await timed_call(client, "delete-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert assert_one_line_error(result) == (
            "Scaleway returned HTTP 503 for delete-instance-image: Injected upstream error 503. Upstream failure: "
            "the outcome is unknown; read the resource's state with list-instance-images before retrying."
        )
        assert [(r.method, r.path) for r in sim.requests] == [("DELETE", IMAGE_PATH)]
        assert scaleway.IMAGE_PRIVATE in sim.images
        assert_nothing_leaked([sim], result, logs.text)


# --- an oversized but allowed result -----------------------------------------------------------------


async def test_an_oversized_result_is_cut_to_the_output_cap(logs: pytest.LogCaptureFixture) -> None:
    sim = ScalewaySimulator()
    async with serving(sim, output_cap="2000") as (_, client):
        result, _ = await timed_call(client, "list-instance-images", {"per_page": 100})
        assert not result.is_error, text_of(result)
        assert sim.requests[-1].query["per_page"] == ["100"]
        text, data = text_of(result), result.structured_content
        assert len(text) <= 2000
        assert json.loads(text) == data  # still valid JSON, the same as structuredContent
        assert data["total_count"] == 63 and 1 <= len(data["images"]) < 63
        for image in data["images"]:  # whole items, not fragments
            assert image == sim.images[image["id"]]
        assert re.fullmatch(
            r"Result cut to fit 2000 characters \(it had \d+\): images: \d+ of 63 kept\. "
            r"To resume at the first item cut, call again with the same arguments but page=\d+, per_page=\d+ "
            r"\(next_call: the arguments to change\); to get less, narrow the call with project, name, arch, tags, "
            r"page, per_page\.",
            data["truncated"]["note"],
        ), data["truncated"]
        assert f"images: {len(data['images'])} of 63 kept" in data["truncated"]["note"]
        assert_nothing_leaked([sim], result, logs.text)
