"""A hostile upstream answering with a huge number of tiny JSON values (red-team finding 6 of issue 20).

`{"items":[{},{},…]}` just under the 10 MiB body cap holds 3.5 million values: parsing, redacting and
cutting them on the event loop held it for seconds (every other client waiting) and took half a
gigabyte. An answer may hold at most one JSON value per 16 bytes of the body cap, and what a big
answer costs is paid on a worker thread, so other clients are answered meanwhile.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fakes import REGISTRY, Hostile, answering
from mcp import Client
from support import assert_nothing_leaked, text_of
from test_hostile_upstream import assert_one_line_error, assert_still_serving, timed_call

from mcp_cloudops.sandbox.runner import run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

MAX_RESPONSE_BYTES = 10 * 2**20  # the default cap: the hostile body stays just under it
TOOL = "list-nirvana-projects"


def tiny_items(count: int) -> bytes:
    """`{"items":[{},{},…]}` with `count` empty objects: three bytes a value."""
    return b'{"items":[' + b"{}," * (count - 1) + b"{}]}"


HUGE = tiny_items((MAX_RESPONSE_BYTES - 20) // 3)


@asynccontextmanager
async def two_clients(sim: Hostile, **settings: str) -> AsyncIterator[tuple[Client, Client]]:
    """The upstream on loopback, one in-memory server pointed at it, and two clients of that server."""
    async with run_sandbox([sim]) as sandbox:
        env = {**sandbox.env, **{f"MCP_CLOUDOPS_{name.upper()}": value for name, value in settings.items()}}
        server = build_server(Settings.from_env(env), REGISTRY)
        async with Client(server) as one, Client(server) as other:
            yield one, other


@asynccontextmanager
async def loop_watch(period: float = 0.01) -> AsyncIterator[list[float]]:
    """The longest gap between the wake-ups of a task sleeping `period` at a time, past `period`: how long
    the event loop was held by something else (a list of one, read after the block)."""
    worst = [0.0]

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(period)
            now = time.monotonic()
            worst[0] = max(worst[0], now - last - period)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        yield worst
        tg.cancel_scope.cancel()


async def test_tiny_items_do_not_stall_another_clients_tools_list(logs: pytest.LogCaptureFixture) -> None:
    assert len(HUGE) <= MAX_RESPONSE_BYTES
    sim = Hostile()
    async with two_clients(sim) as (hostile, other):
        await other.list_tools(cache_mode="bypass")  # warm: the first listing builds what later ones reuse
        await assert_still_serving(hostile, sim, TOOL, {})  # and the first call imports httpx, opens a client
        warm_up = len(sim.requests)
        sim.behave = answering(HUGE)
        results: list[Any] = []
        listings: list[float] = []

        async def read_huge() -> None:
            results.append((await timed_call(hostile, TOOL, {}, limit=30))[0])

        async with loop_watch() as held, anyio.create_task_group() as calls:
            calls.start_soon(read_huge)
            calls.start_soon(read_huge)
            while len(results) < 2:  # another client lists tools all along, never from its cache
                started = time.monotonic()
                with anyio.fail_after(30):
                    await other.list_tools(cache_mode="bypass")
                listings.append(time.monotonic() - started)
                await anyio.sleep(0.02)
        # Before: 3.5 s (one call) to 4.7 s (two) with the loop held; now a few tens of milliseconds.
        assert held[0] < 1.0, f"the event loop was held for {held[0]:.2f} s"
        assert max(listings) < 1.0, f"tools/list waited {max(listings):.2f} s"
        for result in results:
            assert assert_one_line_error(result) == (
                f"Nirvana Labs answered {TOOL} with more than 655360 JSON values (items and their fields); "
                "mcp-cloudops did not parse it. To get less, narrow the call with cursor, limit."
            )
            assert_nothing_leaked([sim], result, logs.text)
        assert len(sim.requests) == warm_up + 2  # not retried: the same call would get the same answer
        await assert_still_serving(hostile, sim, TOOL, {})


async def test_tiny_items_are_refused_in_bounded_memory() -> None:
    sim = Hostile()
    async with two_clients(sim) as (client, _):
        sim.behave = answering(HUGE)
        tracemalloc.start()  # every thread's allocations: the worker's too
        try:
            result, _ = await timed_call(client, TOOL, {}, limit=60)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # Before: 521 MiB (the parsed items, their redacted copy and the cut's copy); now the body and a
        # copy or two of it (the cap reads 10 MiB).
        assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"
        assert_one_line_error(result)


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (tiny_items(19_999), True),  # 20,001 values: the answer, its list and each item
        (tiny_items(19_998), False),  # 20,000: as many as allowed
        (json.dumps({"items": ["a,[b],{c}," * 25_000]}).encode(), False),  # commas in a string are not values
        (json.dumps({"items": ['\\",[' * 50_000]}).encode(), False),  # nor are those after an escaped quote
    ],
    ids=["over", "at-the-bound", "commas-in-a-string", "escaped-quotes"],
)
async def test_the_value_bound_follows_the_byte_cap(logs: pytest.LogCaptureFixture, body: bytes, refused: bool) -> None:
    """320,000 bytes allow 20,000 values (one per 16 bytes); strings count as one value, whatever they hold."""
    sim = Hostile()
    async with two_clients(sim, max_response_bytes="320000", output_cap="2000") as (client, _):
        sim.behave = answering(body)
        result, _ = await timed_call(client, TOOL, {})
        if refused:
            assert assert_one_line_error(result) == (
                f"Nirvana Labs answered {TOOL} with more than 20000 JSON values (items and their fields); "
                "mcp-cloudops did not parse it. To get less, narrow the call with cursor, limit."
            )
        else:
            assert not result.is_error, text_of(result)
            assert "truncated" in result.structured_content and len(text_of(result)) <= 2000
        assert len(sim.requests) == 1
        assert_nothing_leaked([sim], result, logs.text)
        await assert_still_serving(client, sim, TOOL, {})
