"""Hostile websocket peers: a Docker frame header announcing 2 GiB, a TTY stream far past the cap, one
oversized message, floods of empty frames. Each session holds at most max_bytes plus a fixed overhead and
ends with a truncated transcript, never an error."""

from __future__ import annotations

import contextlib
import itertools
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import Close

from mcp_cloudops.demux import DockerDemuxer
from mcp_cloudops.registry import load_registry
from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.incus import IncusSimulator
from mcp_cloudops.sandbox.runner import run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings
from mcp_cloudops.websocket import Collector, Limits

pytestmark = pytest.mark.anyio
Handler = Callable[[ServerConnection], Awaitable[None]]

REGISTRY = load_registry()
MAX_BYTES = 65536
CHUNK = 64 * 1024  # one upstream message
FLOOD = 8 * 2**20  # what a hostile peer sends after its header: 128 times the cap
OVERHEAD = 64 * 1024  # what a session may hold above max_bytes: a header, part of a message
HUGE = bytes([1, 0, 0, 0]) + (2**31).to_bytes(4, "big")  # a stdout frame header announcing 2 GiB
EMPTY_FRAME = bytes([1, 0, 0, 0, 0, 0, 0, 0])
ATTACH = {"endpointId": 1, "id": "ffffffffffff", "max_bytes": MAX_BYTES, "max_seconds": 5, "idle_seconds": 2}


def messages(first: bytes, total: int = FLOOD, chunk: bytes = b"x" * CHUNK) -> Iterator[bytes]:
    """`first`, then `total` bytes in `chunk`-sized messages (one object, reused: the test holds no flood)."""
    yield first
    for _ in range(total // len(chunk)):
        yield chunk


class Scripted:
    """Stands in for a client connection: hands out `script`, then reports the peer closed. Records the
    raw bytes handed out and the most the demuxer held before each message."""

    def __init__(self, script: Iterator[bytes], demuxer: DockerDemuxer | None = None) -> None:
        self.script = script
        self.demuxer = demuxer
        self.held = 0
        self.received = 0
        self.count = 0
        self.close_code: int | None = None

    async def recv(self) -> bytes:
        if self.demuxer is not None:
            self.held = max(self.held, len(self.demuxer.buffer))
        try:
            message = next(self.script)
        except StopIteration:
            self.close_code = 1000
            raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True) from None
        self.received += len(message)
        self.count += 1
        return message


async def collect_from(script: Iterator[bytes], max_bytes: int = MAX_BYTES) -> tuple[Scripted, Any]:
    demuxer = DockerDemuxer()
    ws = Scripted(script, demuxer)
    collector = Collector(ws, Limits(max_seconds=5, idle_seconds=2, max_bytes=max_bytes), demuxer)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        await collector.run()
    return ws, collector.transcript()


async def test_a_header_announcing_2_gib_is_streamed_up_to_the_cap_not_buffered() -> None:
    ws, transcript = await collect_from(messages(HUGE))
    assert ws.held <= MAX_BYTES + OVERHEAD  # was the whole 8 MiB flood, waiting for 2 GiB
    assert transcript.output == "x" * MAX_BYTES and transcript.bytes == MAX_BYTES
    assert (transcript.stopped, transcript.truncated) == ("max_bytes", True)
    assert ws.received <= MAX_BYTES + CHUNK + len(HUGE)  # and it stopped reading at the cap


FLOODS = {
    "empty-docker-frames": lambda: messages(EMPTY_FRAME, chunk=EMPTY_FRAME * (CHUNK // len(EMPTY_FRAME))),
    "empty-messages": lambda: itertools.repeat(b"", 10**6),
}


@pytest.mark.parametrize("flood", FLOODS)
async def test_a_flood_of_empty_frames_is_counted_and_cut(flood: str) -> None:
    ws, transcript = await collect_from(FLOODS[flood](), max_bytes=1024)
    assert (transcript.output, transcript.stopped, transcript.truncated) == ("", "max_bytes", True)
    assert ws.count < 10**5 and ws.received < 2**20  # far from the whole flood


# --- end to end: the MCP server against a hostile websocket upstream -----------------------------------


def sending(first: bytes, total: int = FLOOD, chunk: bytes = b"x" * CHUNK) -> Handler:
    """A websocket upstream that sends messages(first, total, chunk), then closes (or stops when cut off)."""

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for message in messages(first, total, chunk):
                await ws.send(message)

    return handler


@asynccontextmanager
async def portainer(handler: Handler) -> AsyncIterator[Client]:
    """An in-memory MCP client whose Portainer is a websocket server on loopback running `handler`."""
    async with serve(handler, "127.0.0.1", 0, close_timeout=1) as upstream:
        port = upstream.sockets[0].getsockname()[1]
        env = {
            "PORTAINER_URL": f"http://127.0.0.1:{port}",
            "PORTAINER_API_KEY": credentials.PORTAINER_API_KEY,
            "MCP_CLOUDOPS_OUTPUT_CAP": str(4 * MAX_BYTES),  # the transcript itself, not the result cap
        }
        async with Client(build_server(Settings.from_env(env), REGISTRY)) as client:
            yield client


async def attach_measured(client: Client) -> tuple[dict[str, Any], int]:
    """Call attach-websocket; return its transcript and the peak memory traced during the call."""
    tracemalloc.start()
    try:
        with anyio.fail_after(15):
            result = await client.call_tool("attach-websocket", ATTACH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.is_error, result.content[0].text
    return result.structured_content, peak


async def test_attach_to_a_header_announcing_2_gib_keeps_max_bytes_in_bounded_memory() -> None:
    async with portainer(sending(HUGE)) as client:
        transcript, peak = await attach_measured(client)
    assert transcript["output"] == "x" * MAX_BYTES and transcript["bytes"] == MAX_BYTES
    assert (transcript["stopped"], transcript["truncated"]) == ("max_bytes", True)
    assert peak < 4 * 2**20  # the 8 MiB flood was never held


async def test_attach_to_a_tty_stream_past_the_cap_is_cut_at_max_bytes() -> None:
    async with portainer(sending(b"tick 1\r\n", chunk=b"tick 2\r\n" * (CHUNK // 8))) as client:
        transcript, peak = await attach_measured(client)
    assert len(transcript["output"]) == MAX_BYTES and transcript["output"].startswith("tick 1\r\ntick 2\r\n")
    assert (transcript["stopped"], transcript["truncated"]) == ("max_bytes", True)
    assert peak < 4 * 2**20


async def test_one_message_bigger_than_allowed_ends_the_session_truncated_not_in_error() -> None:
    async with portainer(sending(b"y" * (5 * 2**20), total=0)) as client:
        with anyio.fail_after(15):
            result = await client.call_tool("attach-websocket", ATTACH)
    assert not result.is_error, result.content[0].text
    transcript = result.structured_content
    assert (transcript["output"], transcript["stopped"], transcript["truncated"]) == ("", "max_bytes", True)
    assert transcript["close_code"] == 1009  # "message too big", as the websocket told the peer


async def test_incus_exec_stdout_and_stderr_share_one_max_bytes() -> None:
    sim = IncusSimulator(seed=False)
    async with run_sandbox([sim]) as sandbox:
        op = sim.create_exec(["spew"], output=b"o" * 40000, stderr=b"e" * 40000)
        env = {**sandbox.env, "MCP_CLOUDOPS_OUTPUT_CAP": str(4 * MAX_BYTES)}
        async with Client(build_server(Settings.from_env(env), REGISTRY)) as client:
            with anyio.fail_after(15):
                result = await client.call_tool("get-websocket-stream", {"id": op["id"], "max_bytes": MAX_BYTES})
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    stdout, stderr = data["stdout"], data["stderr"]  # 80000 bytes in all, read concurrently
    assert set(stdout) <= {"o"} and set(stderr) <= {"e"} and len(stdout) + len(stderr) == MAX_BYTES
    assert data["bytes"] == MAX_BYTES and data["truncated"]
