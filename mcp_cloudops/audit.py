"""The audit journal (--audit-log): what agents changed, as JSON lines any log shipper can read.

A `sent` record reaches the disk (written, then fsync'd) before a call's first request leaves, so
after a crash the writes that were in flight are known; an `outcome` record follows with how it
ended. Each record is one write(2) to a file opened O_APPEND, so concurrent calls never interleave
inside a line; after a write that stopped mid-line (disk full), the next record starts a new line.
A call whose `sent` record cannot be written is not made; one whose `outcome` record cannot be is
reported as unknown, never as safe to retry. The file must be a regular file of this user's (no
symlink, FIFO or device), and is kept 0600. Arguments are redacted like results; no credential is
ever written. Reads are journaled only with --audit-reads.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from mcp_cloudops.redaction import Redactor
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.results import UpstreamError

logger = logging.getLogger("mcp_cloudops.audit")
SETTING = "MCP_CLOUDOPS_AUDIT_LOG"
PRIVATE = 0o600
_CURRENT: ContextVar[Entry | None] = ContextVar("mcp_cloudops_audit_entry", default=None)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def saw_status(status: int) -> None:
    """The HTTP status of a call's first upstream answer, for its outcome record (called by upstream.py)."""
    entry = _CURRENT.get()
    if entry is not None and entry.status is None:
        entry.status = status


@contextmanager
def tracking(entry: Entry) -> Iterator[Entry]:
    """The upstream statuses seen inside this block are noted on `entry`."""
    token = _CURRENT.set(entry)
    try:
        yield entry
    finally:
        _CURRENT.reset(token)


def caller(ctx: Any) -> tuple[str | None, str | None]:
    """The MCP session id (see session_of: `ctx` is a tool's Context or a middleware's ServerRequestContext)
    and the authenticated principal of a call: an OAuth access token's subject (`sub`), or a static token's
    hash; never a token."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    token = get_access_token()
    return session_of(ctx), (token.subject or token.client_id) if token is not None else None


def session_of(ctx: Any) -> str | None:
    """The streamable HTTP session the SDK routed this request by (stateful, handshake era), else None.

    Never the request's Mcp-Session-Id header: under --stateless, and for 2026-07-28 requests, the SDK
    checks no session, so the header is whatever the client made up. `ctx` is a tool's Context or a
    middleware's ServerRequestContext (anything else, such as a bare HTTP request, has only the header).
    The SDK's per-client Connection holds the id its session manager assigned and matched the request
    to; it is private (toolsets.py reads it too): tests fail if that changes."""
    from mcp.server.context import ServerRequestContext
    from mcp.server.mcpserver import Context

    if isinstance(ctx, Context):
        try:
            ctx = ctx.request_context
        except ValueError:  # outside a request
            return None
    if not isinstance(ctx, ServerRequestContext):
        return None
    session_id = getattr(getattr(ctx.session, "_connection", None), "session_id", None)
    return session_id if isinstance(session_id, str) else None


def operation_id(provider: Provider, data: Any) -> Any:
    """The id of the operation a result holds, if any: the call's own, or the one its wait followed."""
    spec = provider.operation
    if spec is None or not isinstance(data, dict):
        return None
    for candidate in (data.get("operation"), data.get(spec.answer) if spec.answer else data):
        if isinstance(candidate, dict) and candidate.get("id"):
            return candidate["id"]
    return data.get("operation_id")  # a brief outcome (tools.yaml outcome.brief) keeps the id alone


@dataclass
class Entry:
    """One journaled call, from its `sent` record to its `outcome` record."""

    journal: Journal
    call: str
    tool: str
    account: str | None = None
    started: float = field(default_factory=time.monotonic)
    status: int | None = None
    lost: str | None = None  # why the outcome record could not be written, if it could not

    async def end(self, outcome: str, *, operation: Any = None, error: str | None = None) -> bool:
        """Record how the call ended; False if that record could not be written (logged, reason in `lost`):
        the caller must then not report the call as done."""
        record = {
            "time": now(),
            "event": "outcome",
            "call": self.call,
            "tool": self.tool,
            "account": self.account,
            "outcome": outcome,  # ok | error | unknown (may or may not have happened) | pending
            "status": self.status,
            "operation": operation,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
            "error": error,
        }
        self.lost = await self.journal.try_write(record)
        if self.lost is not None:
            logger.error(
                "The audit journal %s could not record the outcome (%s) of %s, call %s: %s. Free space for it "
                "or fix the file: its sent record has no outcome.",
                self.journal.path, outcome, self.tool, self.call, self.lost,
            )  # fmt: skip
        return self.lost is None

    def unrecorded(self, tool: ToolSpec, operation: Any = None) -> UpstreamError:
        """The agent's error for a call that went out but whose outcome record failed: its result is held
        back, and a retry could do the write twice."""
        check = f" with {tool.state_lookup}" if tool.state_lookup else ""
        started = f" It started or followed operation {operation}." if operation else ""
        return UpstreamError(
            f"{tool.name} was sent, but the audit journal ({SETTING}) could not record its outcome ({self.lost}), "
            f"so its result is not shown and the outcome is unknown: read the state{check} before retrying (a retry "
            f"may do it twice).{started} Tell the user the audit journal needs attention.",
            unknown=True,
        )


class UnsafeJournal(Exception):
    """A journal path that is not a regular file of this user's: what it is, and what to name instead."""


_REGULAR = "name a regular file, or a path where nothing exists yet"
_KINDS = {"a FIFO": stat.S_ISFIFO, "a character device": stat.S_ISCHR, "a block device": stat.S_ISBLK,
          "a socket": stat.S_ISSOCK, "a directory": stat.S_ISDIR}  # fmt: skip


def _kind(mode: int) -> str:
    return next((name for name, test in _KINDS.items() if test(mode)), "an unknown kind")


def open_private(path: Path) -> tuple[int, bool]:
    """The journal's descriptor, opened for appending, and whether the file ends mid-line.

    Refused (UnsafeJournal) at once: a symlink (whoever can write its directory could aim the journal
    at any file this user may write), anything but a regular file (a FIFO would block start-up until
    a reader came: O_NONBLOCK makes it fail instead) and a file of another user's (who could rewrite
    it). An existing file readable or writable by others is narrowed to 0600. Read access is needed
    to find a line an earlier run left unfinished."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise UnsafeJournal(
                f"is a symbolic link (to {os.readlink(path)!r}), which the journal never follows: remove the link, "
                "or name the journal's real path"
            ) from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, or a socket
            raise UnsafeJournal(f"is not a regular file ({_kind(os.stat(path).st_mode)}): {_REGULAR}") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeJournal(f"is not a regular file ({_kind(info.st_mode)}): {_REGULAR}")
        if info.st_uid != os.geteuid():
            raise UnsafeJournal(
                f"belongs to another user (uid {info.st_uid}), who could rewrite it: chown it to uid "
                f"{os.geteuid()}, or name a new path"
            )
        if stat.S_IMODE(info.st_mode) != PRIVATE:
            os.fchmod(fd, PRIVATE)
        os.set_blocking(fd, True)
        torn = info.st_size > 0 and os.pread(fd, 1, info.st_size - 1) != b"\n"
    except BaseException:
        os.close(fd)
        raise
    return fd, torn


class Journal:
    """An append-only JSONL file: a regular file of this user's, kept 0600 (see open_private)."""

    def __init__(self, path: Path, redactor: Redactor, *, reads: bool = False) -> None:
        self.path = path
        self.redactor = redactor
        self.reads = reads
        self._fd, self._torn = open_private(path)  # _torn: the file ends mid-line
        self._lock = threading.Lock()

    def covers(self, tool: ToolSpec) -> bool:
        return tool.mutating or tool.credential or self.reads

    def _write_now(self, line: bytes, sync: bool) -> None:
        with self._lock:
            if self._torn:  # an earlier write stopped mid-line: never glue this record onto its half
                line = b"\n" + line
            view, written = memoryview(line), 0
            try:
                while written < len(line):  # one write(2) for a regular file; the loop only guards a short write
                    written += os.write(self._fd, view[written:])
            finally:
                if written:
                    self._torn = line[written - 1] != ord("\n")
            if sync:
                os.fsync(self._fd)

    async def write(self, record: dict[str, Any], *, sync: bool) -> None:
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str) + "\n").encode()
        await anyio.to_thread.run_sync(self._write_now, line, sync)

    async def try_write(self, record: dict[str, Any], *, sync: bool = False) -> str | None:
        """Write `record`; why it could not be written (a disk full, an I/O error), or None."""
        try:
            await self.write(record, sync=sync)
        except OSError as exc:
            return exc.strerror or type(exc).__name__
        return None

    async def begin(
        self,
        tool: ToolSpec,
        provider: Provider,
        args: dict[str, Any],
        session: str | None,
        principal: str | None,
        *,
        account: str | None = None,
    ) -> Entry:
        """Journal a call before its first request; later upstream statuses are noted on the entry."""
        entry = Entry(self, secrets.token_hex(8), tool.name, account)
        record = {
            "time": now(),
            "event": "sent",
            "call": entry.call,
            "tool": tool.name,
            "provider": provider.key,
            "method": tool.method,
            "path": tool.path,  # the template: ids are in the arguments
            "arguments": self.redactor.data(args),
            "session": session,
            "principal": principal,
            "account": account,  # the provider's account the call acts in
        }
        lost = await self.try_write(record, sync=True)
        if lost is None:
            return entry
        logger.error(
            "The audit journal %s could not record the call of %s (call %s): %s. It was refused; nothing was sent.",
            self.path, tool.name, entry.call, lost,
        )  # fmt: skip
        # Its sent record may be on disk all the same (a failed fsync): say how it ended, if the file lets us.
        await entry.end("error", error=f"not sent: the audit journal could not record the call ({lost})")
        raise UpstreamError(
            f"The audit journal ({SETTING}) cannot be written ({lost}), so {tool.name} was not called: nothing was "
            "sent and nothing was changed. Tell the user the audit journal needs attention (is its disk full?), "
            "then retry."
        )

    async def refused(
        self, tool: ToolSpec, reason: str, session: str | None, principal: str | None, *, account: str | None = None
    ) -> None:
        """A call the user did not confirm (or could not be asked about): nothing was sent."""
        record = {
            "time": now(),
            "event": "refused",
            "call": secrets.token_hex(8),
            "tool": tool.name,
            "reason": self.redactor.cut(reason, 500),
            "session": session,
            "principal": principal,
            "account": account,
        }
        lost = await self.try_write(record)
        if lost is not None:  # the call is refused all the same: nothing was sent
            logger.error("The audit journal %s could not record a refusal of %s: %s", self.path, tool.name, lost)

    async def remembered(
        self, tool: ToolSpec, session: str | None, principal: str | None, *, account: str | None = None
    ) -> None:
        """A call that ran unasked because the person's earlier yes covers it (--confirm-remember); the call's
        own `sent` and `outcome` records follow."""
        record = {"time": now(), "event": "remembered", "call": secrets.token_hex(8), "tool": tool.name,
                  "session": session, "principal": principal, "account": account}  # fmt: skip
        lost = await self.try_write(record)
        if lost is not None:
            logger.error("The audit journal %s could not record a remembered yes for %s: %s", self.path, tool.name,
                         lost)  # fmt: skip

    def close(self) -> None:
        os.close(self._fd)
