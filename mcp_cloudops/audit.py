"""The audit journal (--audit-log): what agents changed, as JSON lines any log shipper can read.

A `sent` record reaches the disk (written, then fsync'd) before a call's first request leaves, so
after a crash the writes that were in flight are known; an `outcome` record follows with how it
ended. Each record is one write(2) to a file opened O_APPEND, so concurrent calls never interleave
inside a line. Arguments are redacted like results; no credential is ever written. Reads are
journaled only with --audit-reads.
"""

from __future__ import annotations

import json
import os
import secrets
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
from mcp_cloudops.registry import Provider, ToolSpec

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
    """The MCP session id and the authenticated principal of a call: an OAuth access token's subject (`sub`),
    or a static token's hash; never a token."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    headers = getattr(ctx, "headers", None) if ctx is not None else None
    session = headers.get("mcp-session-id") if headers else None
    token = get_access_token()
    return session, (token.subject or token.client_id) if token is not None else None


def operation_id(provider: Provider, data: Any) -> Any:
    """The id of the operation a result holds, if any: the call's own, or the one its wait followed."""
    spec = provider.operation
    if spec is None or not isinstance(data, dict):
        return None
    for candidate in (data.get("operation"), data.get(spec.answer) if spec.answer else data):
        if isinstance(candidate, dict) and candidate.get("id"):
            return candidate["id"]
    return None


@dataclass
class Entry:
    """One journaled call, from its `sent` record to its `outcome` record."""

    journal: Journal
    call: str
    tool: str
    started: float = field(default_factory=time.monotonic)
    status: int | None = None

    async def end(self, outcome: str, *, operation: Any = None, error: str | None = None) -> None:
        record = {
            "time": now(),
            "event": "outcome",
            "call": self.call,
            "tool": self.tool,
            "outcome": outcome,  # ok | error | unknown (may or may not have happened) | pending
            "status": self.status,
            "operation": operation,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
            "error": error,
        }
        await self.journal.write(record, sync=False)


class Journal:
    """An append-only JSONL file, created 0600."""

    def __init__(self, path: Path, redactor: Redactor, *, reads: bool = False) -> None:
        self.path = path
        self.redactor = redactor
        self.reads = reads
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()

    def covers(self, tool: ToolSpec) -> bool:
        return tool.mutating or tool.credential or self.reads

    def _write_now(self, line: bytes, sync: bool) -> None:
        with self._lock:
            view = memoryview(line)
            while view:  # one write(2) for a regular file; the loop only guards a short write
                view = view[os.write(self._fd, view) :]
            if sync:
                os.fsync(self._fd)

    async def write(self, record: dict[str, Any], *, sync: bool) -> None:
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str) + "\n").encode()
        await anyio.to_thread.run_sync(self._write_now, line, sync)

    async def begin(
        self, tool: ToolSpec, provider: Provider, args: dict[str, Any], session: str | None, principal: str | None
    ) -> Entry:
        """Journal a call before its first request; later upstream statuses are noted on the entry."""
        entry = Entry(self, secrets.token_hex(8), tool.name)
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
        }
        await self.write(record, sync=True)
        return entry

    async def refused(self, tool: ToolSpec, reason: str, session: str | None, principal: str | None) -> None:
        """A call the user did not confirm (or could not be asked about): nothing was sent."""
        record = {
            "time": now(),
            "event": "refused",
            "call": secrets.token_hex(8),
            "tool": tool.name,
            "reason": self.redactor.cut(reason, 500),
            "session": session,
            "principal": principal,
        }
        await self.write(record, sync=False)

    def close(self) -> None:
        os.close(self._fd)
