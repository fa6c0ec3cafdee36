"""Bounded websocket sessions: connect with the provider's auth, optionally send stdin, and collect
output until the peer closes, an idle gap, a deadline or a byte cap, whichever comes first."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import anyio
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.frames import CloseCode

from mcp_cloudops.auth import incus_ssl_context
from mcp_cloudops.demux import DockerDemuxer
from mcp_cloudops.failures import no_answer, transport_failure
from mcp_cloudops.operations import dig
from mcp_cloudops.policy import read_only_refusal
from mcp_cloudops.redaction import Redactor
from mcp_cloudops.registry_models import Provider, Step, ToolSpec
from mcp_cloudops.results import UpstreamError, failed_with, parse_body
from mcp_cloudops.review import picked
from mcp_cloudops.upstream import UpstreamRequest, Upstreams

Stop = Literal["closed", "idle", "deadline", "max_bytes"]

STDERR_GRACE = 1.0  # seconds stderr may trail stdout

# What a session may hold beyond max_bytes. The websocket library holds each message whole, so one message
# may be only a little bigger than the cap, and few may wait unread; no compression, whose ratio is the peer's.
MESSAGE_FLOOR = 64 * 1024  # a normal upstream message (a read of the container's output) is smaller
MESSAGE_SLACK = 64 * 1024  # frame headers, the tail of a message that crosses the cap
QUEUE = 2  # messages the library may hold unread before it stops reading the socket (its default: 16)
# Raw bytes a peer may send per output byte (a Docker header and a websocket frame around every byte) before
# a stream of empty frames or bare headers counts as a flood and is cut as at the cap.
FLOOD_FACTOR = 16
FLOOD_ALLOWANCE = 64 * 1024
WS_FRAME = 2  # the smallest websocket frame header: an empty message still counts
# Close codes of a session that failed rather than ended: Portainer upgrades first, then asks Docker or
# Kubernetes, and drops the socket (1006) when they refuse (an unknown id, an exec that already ran).
ABNORMAL = frozenset({CloseCode.ABNORMAL_CLOSURE, CloseCode.INTERNAL_ERROR})
TAIL = 200  # characters of a session's output quoted in an error about it


@dataclass(frozen=True)
class Limits:
    max_seconds: float = 10.0
    idle_seconds: float = 2.0
    max_bytes: int = 65536


@dataclass(frozen=True)
class Transcript:
    output: str
    bytes: int
    stopped: Stop
    truncated: bool
    close_code: int | None
    seconds: float

    def as_payload(self) -> dict[str, Any]:
        return asdict(self)


def max_message(max_bytes: int) -> int:
    """The largest message accepted (bigger ends the session with 1009): near the cap, so one message
    cannot make the server allocate far more than the call asked for."""
    return max(max_bytes, MESSAGE_FLOOR) + MESSAGE_SLACK


def max_received(max_bytes: int) -> int:
    """Raw bytes read before a session yielding little output counts as a flood."""
    return FLOOD_FACTOR * max_bytes + FLOOD_ALLOWANCE


@dataclass
class Budget:
    """Output bytes a session may still keep: one per session, so an exec's stdout and stderr share it."""

    left: int


def ws_url(request: UpstreamRequest) -> str:
    url = request.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{url}?{urlencode(request.params)}" if request.params else url


class Collector:
    """Reads one stream until a limit or its end; keeps what it read even if cancelled midway."""

    def __init__(
        self,
        ws: ClientConnection,
        limits: Limits,
        demuxer: DockerDemuxer | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.ws = ws
        self.limits = limits
        self.demuxer = demuxer
        self.budget = budget if budget is not None else Budget(limits.max_bytes)
        self.output = bytearray()  # one buffer, not a list of chunks: tiny messages cost no more than their bytes
        self.received = 0  # raw bytes read, headers and empty messages included
        self.refused: int | None = None  # the close code we sent on refusing a message
        self.stopped: Stop = "closed"
        self.truncated = False
        self.started = time.monotonic()

    async def run(self) -> None:
        deadline = self.started + self.limits.max_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stopped = "deadline"
                return
            wait = min(self.limits.idle_seconds, remaining)
            frame: str | bytes | None = None
            with anyio.move_on_after(wait):
                try:
                    frame = await self.ws.recv()
                except ConnectionClosed as exc:
                    self.closed(exc)
                    return
            if frame is None:
                self.stopped = "deadline" if wait >= remaining else "idle"
                return
            if isinstance(frame, str) and not frame:
                self.flush()
                return  # Incus ends a stream with an empty text frame
            data = frame.encode() if isinstance(frame, str) else frame
            self.received += len(data) + WS_FRAME
            if self.add(self.demuxer.feed(data) if self.demuxer else data) or self.flooded():
                return

    def closed(self, exc: ConnectionClosed) -> None:
        """The stream ended: the peer closed, or the library refused a message over max_message (1009),
        which is output cut at the cap, not an error."""
        self.flush()
        if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
            self.refused = exc.sent.code
            self.cut()

    def flush(self) -> None:
        if self.demuxer is not None:
            self.add(self.demuxer.flush())

    def add(self, data: bytes) -> bool:
        """Keep data up to the byte cap; True once the cap is reached."""
        room = self.budget.left
        kept = data[:room]
        self.output += kept
        self.budget.left -= len(kept)
        return len(data) >= room and self.cut()

    def flooded(self) -> bool:
        """True once the peer sent far more than it yielded (empty frames, bare headers): cut as at the cap."""
        return self.received > max_received(self.limits.max_bytes) and self.cut()

    def cut(self) -> bool:
        self.truncated = True  # more output may follow: we stopped reading at the cap
        self.stopped = "max_bytes"
        return True

    def transcript(self) -> Transcript:
        return Transcript(
            output=self.output.decode("utf-8", errors="replace"),
            bytes=len(self.output),
            stopped=self.stopped,
            truncated=self.truncated,
            close_code=self.refused or self.ws.close_code,  # our 1009, not the 1006 of a connection we failed
            seconds=round(time.monotonic() - self.started, 3),
        )


async def collect(
    ws: ClientConnection, stdin: str | None, limits: Limits, demuxer: DockerDemuxer | None = None
) -> Transcript:
    """Send stdin (if any), then read until the peer closes, an idle gap, the deadline or the byte cap."""
    if stdin:
        with suppress(ConnectionClosed):  # the process may already have ended: read what it said
            await ws.send(stdin)
    collector = Collector(ws, limits, demuxer)
    await collector.run()
    return collector.transcript()


def _open(
    upstreams: Upstreams, tool: ToolSpec, request: UpstreamRequest, limits: Limits
) -> AbstractAsyncContextManager[Any]:
    provider = upstreams.registry.provider_of(tool)
    headers = upstreams.header_auth(provider)
    common: dict[str, Any] = {
        "additional_headers": headers,
        "open_timeout": upstreams.settings.timeouts(provider)[0],
        "close_timeout": 2,
        "proxy": None,
        "max_size": max_message(limits.max_bytes),
        "max_queue": QUEUE,
        "compression": None,
        "user_agent_header": "mcp-cloudops",
    }
    url = ws_url(request)
    if provider.auth.scheme == "incus":
        endpoint = upstreams.account(provider).incus(provider)
        if endpoint.socket is not None:
            return unix_connect(endpoint.socket, url, **common)
        return connect(url, ssl=incus_ssl_context(endpoint), **common)
    return connect(url, **common)


def limits_from(args: dict[str, Any]) -> Limits:
    return Limits(
        max_seconds=float(args.get("max_seconds", Limits.max_seconds)),
        idle_seconds=float(args.get("idle_seconds", Limits.idle_seconds)),
        max_bytes=int(args.get("max_bytes", Limits.max_bytes)),
    )


@contextmanager
def handshake_errors(tool: ToolSpec, provider: Provider, url: str, redactor: Redactor) -> Iterator[None]:
    """A refused or failed websocket handshake becomes the same kind of error as a failed HTTP call,
    its upstream words redacted before they are cut."""
    try:
        yield
    except InvalidStatus as exc:
        response = exc.response
        body = response.body or b""
        text = body.decode("utf-8", "replace")
        raise failed_with(
            tool, provider, response.status_code, parse_body(body), text, response.headers, redactor
        ) from None
    except InvalidMessage as exc:  # no (valid) HTTP answer to an upgrade request that went out
        raise no_answer(tool, provider, url, exc, redactor) from None
    except (InvalidHandshake, InvalidURI) as exc:
        raise UpstreamError(
            f"{provider.title} refused the websocket for {tool.name} ({type(exc).__name__}). "
            f"Check {provider.url_env} points at the API."
        ) from None
    except (TimeoutError, OSError) as exc:  # connect failures say nothing was sent; a handshake cut short may have
        raise transport_failure(tool, provider, url, exc, redactor) from None


async def stream(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Run one bounded websocket session for a tool and return its transcript as the payload.

    A session that never reached its target is an error, not an empty success: the upstream may accept
    the upgrade and only then find the id unknown (see `never_attached`)."""
    provider, request = upstreams.request_for(tool, args)
    runs_commands = tool.mutating or bool(args.get("stdin"))
    account = upstreams.account(provider)
    if refusal := read_only_refusal(upstreams.settings, tool, provider, runs_commands=runs_commands, account=account):
        raise UpstreamError(refusal)
    limits = limits_from(args)
    if tool.only_reads is not None:
        await refuse_streams_that_start(upstreams, tool, args)
    if tool.attach_all is not None and tool.attach_all.secret not in args:
        with handshake_errors(tool, provider, request.url, upstreams.redactor):
            return await attach_all(upstreams, tool, args, limits)
    before = await state_before(upstreams, tool, args) if tool.after is not None else None
    with handshake_errors(tool, provider, request.url, upstreams.redactor):
        async with _open(upstreams, tool, request, limits) as ws:
            demuxer = DockerDemuxer(limits.max_bytes) if tool.demux == "docker" else None
            transcript = await collect(ws, args.get("stdin"), limits, demuxer)
    if before is None:
        if never_attached(transcript):
            code = transcript.close_code
            head = f"{provider.title} dropped the {tool.name} session (close code {code}) before any output."
            raise UpstreamError(
                f"{head[:-1]}: what it names was not found, is not running or could not start, so nothing was read. "
                f"Check {targets(tool, args)}.",
                head=head,
                silent=True,
            )
        return transcript.as_payload()
    return transcript.as_payload() | await state_after(upstreams, tool, args, transcript, before)


async def refuse_streams_that_start(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> None:
    """A read-only tool connects only a stream it knows cannot start or steer an exec (tools.yaml
    `only_reads`): connecting the last stream an exec waits for starts its command. Which stream a
    secret opens is read from the operation; when that cannot be read, nothing is connected."""
    flow = tool.only_reads
    assert flow is not None
    where = f"operation {args.get('id')}"
    try:
        op = await run_step(upstreams, flow.read, args)
    except UpstreamError as exc:
        raise UpstreamError(
            f"{tool.name} only reads, and could not read {where} to tell which stream this secret opens, so "
            f"nothing was connected ({exc}). With credentials the daemon trusts, call again; to run the "
            f"command, use {flow.instead}, which asks the user first."
        ) from None
    fds = dig(op, flow.fds)
    streams = dict(fds) if isinstance(fds, dict) else {}
    given = str(args.get(flow.secret, "")).encode()
    opened = next(
        (n for n, s in streams.items() if isinstance(s, str) and hmac.compare_digest(s.encode(), given)), None
    )
    if opened is None or opened in flow.refuse:
        if opened is None:
            what = f"opens none of the streams of {where} ({flow.fds}: {', '.join(map(repr, streams)) or 'none'})"
        else:
            what = f"opens stream {opened!r} of {where}, whose connection could start or steer its command"
        raise UpstreamError(
            f"{tool.name} only reads: this secret {what}, so nothing was connected. Pass the secret of an output "
            f"stream, or run the command with {flow.instead}, which asks the user first."
        )


def never_attached(transcript: Transcript) -> bool:
    """The peer ended the session abnormally before one byte of output: it refused after the upgrade."""
    return transcript.stopped == "closed" and transcript.bytes == 0 and transcript.close_code in ABNORMAL


def targets(tool: ToolSpec, args: dict[str, Any]) -> str:
    """The arguments naming what a session reaches, with the values given and the tool listing good ones,
    so the agent knows which id to check and where to find a valid one."""
    named = []
    for param in tool.params:
        if param.location == "option" or param.name not in args or not (param.required or param.listed_by):
            continue
        source = f" (list them with {param.listed_by})" if param.listed_by else ""
        named.append(f"{param.name}={args[param.name]!r}{source}")
    return ", ".join(named) or "the arguments"


def shown(state: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in state.items())


async def read_after(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """The follow-up read (tool.after): what the stream cannot tell, e.g. Docker's exit code."""
    assert tool.after is not None
    return await picked(upstreams, tool, tool.after, args)


async def state_before(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """The follow-up read before the session. The upstream drops a session it refuses without saying why,
    so this is where an unknown id is named; and a state already complete (an exit code) means it already
    ran: a Docker exec runs once, and a second start is refused."""
    provider = upstreams.registry.provider_of(tool)
    try:
        state = await read_after(upstreams, tool, args)
    except UpstreamError as exc:
        raise UpstreamError(f"{exc} Nothing was run.") from None
    if all(value is not None for value in state.values()):
        raise UpstreamError(
            f"{provider.title} cannot start {targets(tool, args)} again: it already ran ({shown(state)}), and "
            "an exec instance runs only once. Create a new exec instance and run that. Nothing was run."
        )
    return state


async def state_after(
    upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any], transcript: Transcript, before: dict[str, Any]
) -> dict[str, Any]:
    """The follow-up read once the stream ends. If it fails, the call fails: output without its exit code
    must not pass for a success. If nothing was said and nothing changed, nothing ran."""
    provider = upstreams.registry.provider_of(tool)
    try:
        state = await read_after(upstreams, tool, args)
    except UpstreamError as exc:
        unknown = ", ".join(before)
        tail = f"output ends: {transcript.output[-TAIL:]!r}" if transcript.output else "no output"
        raise UpstreamError(
            f"The {tool.name} session ended ({transcript.stopped}, {transcript.bytes} bytes, {tail}) but "
            f"{unknown} {'is' if len(before) == 1 else 'are'} unknown: {exc}"
        ) from None
    if state == before and never_attached(transcript):
        raise UpstreamError(
            f"{provider.title} dropped the {tool.name} session (close code {transcript.close_code}) before any "
            f"output and it still reads {shown(state)}: nothing ran. Check {targets(tool, args)} "
            "(and that what it runs in is running)."
        )
    return state


async def attach_all(upstreams: Upstreams, tool: ToolSpec, args: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Attach to every stream of an exec that starts only once all are attached (tools.yaml `attach_all`),
    as the vendor's CLI does, and report how it ended.

    Reading stdout alone would wait forever. Stdin is closed at once (an empty text frame is EOF):
    nothing is ever written, so the tool stays read-only.
    """
    flow = tool.attach_all
    assert flow is not None
    provider = upstreams.registry.provider_of(tool)
    op = await run_step(upstreams, flow.read, args)
    fds = dig(op, flow.fds)
    names = flow.streams
    if not isinstance(fds, dict) or not set(names.values()) <= fds.keys():
        raise UpstreamError(
            f"{provider.title} operation {args.get('id')} is not a non-interactive exec waiting for its streams "
            f"(class {op.get('class')!r}). Pass {flow.secret}= (a value of {flow.fds}) to read one stream, "
            f"or follow the operation with {flow.finish.tool}."
        )
    async with AsyncExitStack() as stack:
        sockets = {}
        for stream, name in names.items():
            request = upstreams.request_for(tool, {**args, flow.secret: fds[name]})[1]
            sockets[stream] = await stack.enter_async_context(_open(upstreams, tool, request, limits))
        with suppress(ConnectionClosed):  # a quick command may have finished already
            await sockets["stdin"].send("")
        # An exec's streams end with the command: a quiet spell is not the end, so no idle cutoff.
        # Only the deadline or the byte cap stop early (and the upstream then ends the command).
        whole = Limits(limits.max_seconds, limits.max_seconds, limits.max_bytes)
        budget = Budget(limits.max_bytes)  # stdout and stderr together keep at most max_bytes
        stdout = Collector(sockets["stdout"], whole, budget=budget)
        stderr = Collector(sockets["stderr"], whole, budget=budget)  # read until stdout ends, plus a moment
        stderr_done = anyio.Event()

        async def read_stderr() -> None:
            try:
                await stderr.run()
            finally:
                stderr_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_stderr)
            await stdout.run()
            with anyio.move_on_after(STDERR_GRACE):
                await stderr_done.wait()
            tg.cancel_scope.cancel()
    final = await run_step(upstreams, flow.finish, args)
    out, err = stdout.transcript(), stderr.transcript()
    return {
        "stdout": out.output,
        "stderr": err.output,
        **{key: dig(final, field) for key, field in flow.finish.pick.items()},
        "stopped": out.stopped,
        "bytes": out.bytes + err.bytes,
        "truncated": out.truncated or err.truncated,
        "seconds": out.seconds,
    }


async def run_step(upstreams: Upstreams, step: Step, args: dict[str, Any]) -> dict[str, Any]:
    """One call of a flow: the step's tool with the caller's arguments it takes, plus its fixed ones."""
    tool = upstreams.registry.by_name[step.tool]  # the registry checked the name exists
    taken = {param.name for param in tool.params}
    return await upstreams.call(tool, {k: v for k, v in args.items() if k in taken} | step.fixed)
