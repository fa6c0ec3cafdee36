"""A websocket session always ends: on close, an empty text frame, idle, deadline or the byte cap."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from mcp_cloudops.websocket import Limits, collect, max_message, never_attached

pytestmark = pytest.mark.anyio
Handler = Callable[[ServerConnection], Awaitable[None]]


async def run(handler: Handler, limits: Limits, stdin: str | None = None):
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", proxy=None, close_timeout=1) as ws:
            with anyio.fail_after(10):
                return await collect(ws, stdin, limits)


async def test_reads_until_peer_closes() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"hello ")
        await ws.send("world")

    transcript = await run(handler, Limits())
    assert transcript.output == "hello world" and transcript.stopped == "closed" and not transcript.truncated


async def test_empty_text_frame_ends_an_incus_stream() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"out")
        await ws.send("")
        await ws.wait_closed()

    transcript = await run(handler, Limits(idle_seconds=3))
    assert transcript.output == "out" and transcript.stopped == "closed" and transcript.seconds < 2


async def test_idle_gap_stops_reading() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("prompt$ ")
        await ws.wait_closed()

    transcript = await run(handler, Limits(idle_seconds=0.3, max_seconds=5))
    assert transcript.output == "prompt$ " and transcript.stopped == "idle"


async def test_deadline_stops_a_chatty_stream() -> None:
    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send("y\n")
                await anyio.sleep(0.05)

    transcript = await run(handler, Limits(idle_seconds=1, max_seconds=0.5))
    assert transcript.stopped == "deadline" and transcript.output.startswith("y\n") and transcript.seconds < 1.5


async def test_byte_cap_truncates() -> None:
    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for _ in range(100):
                await ws.send(b"x" * 1000)

    transcript = await run(handler, Limits(max_bytes=2500))
    assert transcript.bytes == 2500 and len(transcript.output) == 2500
    assert transcript.truncated and transcript.stopped == "max_bytes"


async def test_stdin_is_sent_first() -> None:
    async def handler(ws: ServerConnection) -> None:
        line = await ws.recv()
        await ws.send(f"ran: {line}")

    transcript = await run(handler, Limits(), stdin="ls\n")
    assert transcript.output == "ran: ls\n"


async def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"\xff\xfeok")

    transcript = await run(handler, Limits())
    assert transcript.output.endswith("ok") and transcript.bytes == 4


async def test_a_message_over_max_size_ends_the_session_as_cut_at_the_cap() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"ok")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(b"x" * 4096)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", proxy=None, close_timeout=1, max_size=1024) as ws:
            with anyio.fail_after(10):
                transcript = await collect(ws, None, Limits(max_bytes=1000))
    assert (transcript.output, transcript.stopped, transcript.truncated) == ("ok", "max_bytes", True)
    assert transcript.close_code == 1009  # "message too big", not an error


async def test_a_flood_of_empty_messages_is_cut_as_at_the_cap() -> None:
    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for sent in range(10**6):
                await ws.send(b"")
                if sent % 100 == 0:
                    await anyio.sleep(0)  # the client shares this event loop: let it read

    transcript = await run(handler, Limits(max_bytes=10, max_seconds=5))
    assert (transcript.output, transcript.stopped, transcript.truncated) == ("", "max_bytes", True)
    assert transcript.seconds < 3


def test_one_message_may_be_only_a_little_bigger_than_the_cap() -> None:
    assert max_message(1) == 128 * 1024
    assert max_message(2**20) == 2**20 + 64 * 1024


async def test_attaching_to_what_is_not_an_exec_names_the_declared_way_out(client, sandbox) -> None:
    """The attach_all flow's refusal names the parameter and the tool tools.yaml declares for it."""
    result = await client.call_tool("get-websocket-stream", {"id": sandbox["incus"].seeded["token"]})
    text = result.content[0].text
    assert result.is_error and "is not a non-interactive exec" in text and "'token'" in text
    assert "Pass secret=" in text and "follow the operation with wait-operation" in text


async def test_a_session_dropped_before_any_output_never_attached() -> None:
    """A drop (1006) with no byte is a refusal after the upgrade; a clean close or any output is an end."""

    async def dropped(ws: ServerConnection) -> None:
        ws.transport.abort()

    async def closed(ws: ServerConnection) -> None:
        await ws.close()

    async def said_then_dropped(ws: ServerConnection) -> None:
        await ws.send("done\n")
        await anyio.sleep(0.1)  # abort() discards what is still buffered
        ws.transport.abort()

    transcript = await run(dropped, Limits())
    assert transcript.close_code == 1006 and never_attached(transcript)
    assert not never_attached(await run(closed, Limits()))
    assert not never_attached(await run(said_then_dropped, Limits()))
