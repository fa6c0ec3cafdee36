"""The audit journal's file, attacked and starved (issue 20, finding 5).

A journal that fails mid-call must not tell the agent to retry a write that was sent, nor send one it
could not record; a short write must not glue the next record onto half a line; the path must be a
private regular file of this user's (no symlink, no FIFO, no world-writable mode); and the `session`
field holds only a session the SDK itself tracks, never a header a client made up.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from support import INITIALIZE, MCP_HEADERS, HttpServer, server_env, text_of

from mcp_cloudops.sandbox import scaleway
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

RENAME = ("update-image-2", {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed"})
LOOKUP = "list-instance-images"  # update-image-2's state lookup (registry: the lister of image_id)
TIMEOUT = 15  # seconds a start-up that must fail at once may take
Write = Callable[[int, bytes], int]


def lines(path: Path) -> list[bytes]:
    """The journal's lines; it must end with a newline."""
    parts = path.read_bytes().split(b"\n")
    assert parts[-1] == b"", "the journal must end with a newline"
    return parts[:-1]


def sabotage(monkeypatch: pytest.MonkeyPatch, path: Path, write: Callable[[int, bytes, Write], int]) -> None:
    """Every os.write to the journal at `path` goes through `write(fd, data, real_write)`; others are untouched."""
    real = os.write

    def patched(fd: int, data: Any) -> int:
        try:
            ours = os.path.samestat(os.fstat(fd), path.stat())
        except OSError:
            ours = False
        return write(fd, bytes(data), real) if ours else real(fd, data)

    monkeypatch.setattr(os, "write", patched)


def no_space_for(event: str) -> Callable[[int, bytes, Write], int]:
    """A disk that fills up just for the records of `event`."""

    def write(fd: int, data: bytes, real: Write) -> int:
        if f'"event":"{event}"'.encode() in data:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    return write


@asynccontextmanager
async def journaled(path: Path) -> AsyncIterator[tuple[Sandbox, Client]]:
    async with run_sandbox() as sandbox:
        settings = Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_AUDIT_LOG": str(path)})
        async with Client(build_server(settings)) as client:
            yield sandbox, client


def image_name(sandbox: Sandbox) -> str:
    simulator = sandbox["scaleway"]
    assert isinstance(simulator, scaleway.ScalewaySimulator)
    return simulator.images[scaleway.IMAGE_PRIVATE]["name"]


# --- a. a journal that fails mid-call -------------------------------------------------------------------------


async def test_a_lost_outcome_record_says_the_outcome_is_unknown_not_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    """The write went out and succeeded; only its outcome record failed. "Retry once" would do it twice."""
    path = tmp_path / "audit.jsonl"
    sabotage(monkeypatch, path, no_space_for("outcome"))
    async with journaled(path) as (sandbox, client):
        result = await client.call_tool(*RENAME)
        sent = [r for r in sandbox["scaleway"].requests if r.method == "PATCH"]
    text = text_of(result)
    assert result.is_error and len(sent) == 1, text
    assert "internal error" not in text and "retry once" not in text
    assert "outcome is unknown" in text and LOOKUP in text and "before retrying" in text, text
    assert "audit journal" in text and "No space left on device" in text, text
    [record] = [json.loads(line) for line in lines(path)]
    assert record["event"] == "sent"
    failures = [r for r in logs.records if r.levelno >= logging.ERROR and "audit journal" in r.getMessage()]
    assert failures and "update-image-2" in failures[0].getMessage(), [r.getMessage() for r in logs.records]


async def test_a_sent_record_that_cannot_be_written_stops_the_call_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    sabotage(monkeypatch, path, no_space_for("sent"))
    async with journaled(path) as (sandbox, client):
        result = await client.call_tool(*RENAME)
        sent = [r for r in sandbox["scaleway"].requests if r.method == "PATCH"]
        name = image_name(sandbox)
    text = text_of(result)
    assert result.is_error and sent == [] and name != "renamed", text
    assert "internal error" not in text
    assert "audit journal" in text and "cannot be written" in text and "nothing was sent" in text, text
    assert "MCP_CLOUDOPS_AUDIT_LOG" in text and "No space left on device" in text, text
    assert any(r.levelno >= logging.ERROR and "audit journal" in r.getMessage() for r in logs.records)


async def test_a_refusal_record_that_cannot_be_written_still_refuses_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    """Nothing was sent either way: the agent reads why its call was refused, not an internal error."""
    path = tmp_path / "audit.jsonl"
    sabotage(monkeypatch, path, no_space_for("refused"))
    async with run_sandbox() as sandbox:
        env = {**sandbox.env, "MCP_CLOUDOPS_AUDIT_LOG": str(path), "MCP_CLOUDOPS_CONFIRM_FALLBACK": "refuse"}
        async with Client(build_server(Settings.from_env(env))) as client:
            result = await client.call_tool("delete-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert not [r for r in sandbox["scaleway"].requests if r.method == "DELETE"]
    assert result.is_error and "needs the user's confirmation" in text_of(result), text_of(result)
    assert any(r.levelno >= logging.ERROR and "audit journal" in r.getMessage() for r in logs.records)


# --- b. torn lines --------------------------------------------------------------------------------------------


async def test_a_torn_record_never_has_the_next_glued_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half of a `sent` record reaches the disk, then it is full: the next call's records start a new line."""
    path = tmp_path / "audit.jsonl"
    calls: list[int] = []

    def half_then_full(fd: int, data: bytes, real: Write) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, data[: len(data) // 2])
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    sabotage(monkeypatch, path, half_then_full)
    async with journaled(path) as (_, client):
        first = await client.call_tool(*RENAME)
        assert first.is_error
        second = await client.call_tool(*RENAME)
        assert not second.is_error, text_of(second)
    torn, *whole = lines(path)
    with pytest.raises(ValueError):
        json.loads(torn)
    records = [json.loads(line) for line in whole]  # every line after the torn one is a whole record
    assert [r["event"] for r in records][-2:] == ["sent", "outcome"] and records[-1]["outcome"] == "ok"


async def test_a_journal_left_mid_line_by_an_earlier_run_gets_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"time":"2026-01-01T00:00:00.000Z","event":"sent","call":"0123')  # disk full last run
    path.chmod(0o600)
    async with journaled(path) as (_, client):
        assert not (await client.call_tool(*RENAME)).is_error
    torn, sent, done = lines(path)
    assert torn.endswith(b'"0123')
    assert (json.loads(sent)["event"], json.loads(done)["outcome"]) == ("sent", "ok")


# --- c. the path ----------------------------------------------------------------------------------------------


def serve(path: Path) -> subprocess.CompletedProcess[str]:
    """`serve` over stdio with the journal at `path`; a start-up that hangs fails the test."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "mcp_cloudops", "serve"],
            env=server_env(strip=("MCP_CLOUDOPS_",), MCP_CLOUDOPS_AUDIT_LOG=str(path)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve with the journal at {path} hung for {TIMEOUT} s instead of refusing it")


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, one stderr line naming the setting, its flag and `words`: that line."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    for word in ("MCP_CLOUDOPS_AUDIT_LOG", "--audit-log", *words):
        assert word in line, line
    return line


@pytest.mark.parametrize("target_exists", [True, False], ids=["to-a-file", "dangling"])
def test_a_symlinked_journal_is_refused_at_start(tmp_path: Path, target_exists: bool) -> None:
    """Whoever can write the journal's directory could point it at any file this user may write."""
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    if target_exists:
        target.write_text("precious\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    refused(serve(link), "symbolic link")
    assert target.read_text() == "precious\n" if target_exists else not target.exists()  # untouched, not created


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo, 0o600)
    refused(serve(fifo), "not a regular file")


def test_a_device_is_refused(tmp_path: Path) -> None:
    refused(serve(Path(os.devnull)), "not a regular file")


async def test_a_world_writable_journal_is_made_private(tmp_path: Path) -> None:
    """Anyone could have forged or erased records in a 0666 journal: it is narrowed to 0600 at start."""
    path = tmp_path / "audit.jsonl"
    path.touch()
    path.chmod(0o666)
    async with journaled(path) as (_, client):
        assert not (await client.call_tool(*RENAME)).is_error
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- d. the session field -------------------------------------------------------------------------------------

FORGED = "forged-session-0123456789abcdef"
MODERN = "2026-07-28"


def call_over_http(url: str, modern: bool) -> None:
    """update-image-2 in one POST carrying a made-up Mcp-Session-Id, as a handshake-era or 2026-07-28 request."""
    name, arguments = RENAME
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    headers = MCP_HEADERS | {"Mcp-Session-Id": FORGED, "MCP-Protocol-Version": "2025-06-18"}
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers |= {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name}
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}
    answer = httpx.post(url, headers=headers, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert '"isError":true' not in answer.text.replace(" ", ""), answer.text


@pytest.mark.parametrize(
    ("flags", "modern"), [(("--stateless",), False), (("--stateless",), True), ((), True)],
    ids=["stateless", "stateless-2026", "stateful-2026"],
)  # fmt: skip
def test_a_client_made_up_session_id_is_not_recorded(tmp_path: Path, flags: tuple[str, ...], modern: bool) -> None:
    path = tmp_path / "audit.jsonl"
    with HttpServer.running(*flags, MCP_CLOUDOPS_AUDIT_LOG=str(path)) as server:
        call_over_http(server.url, modern)
    sent, done = (json.loads(line) for line in lines(path))
    assert (sent["event"], done["outcome"]) == ("sent", "ok")
    assert sent["session"] is None and FORGED not in path.read_text()


def test_a_real_session_is_recorded_as_the_sdk_assigned_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with HttpServer.running(MCP_CLOUDOPS_AUDIT_LOG=str(path)) as server, httpx.Client(timeout=30) as http:
        opened = http.post(server.url, headers=MCP_HEADERS, json=INITIALIZE)
        session = opened.headers["mcp-session-id"]
        headers = MCP_HEADERS | {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18"}
        http.post(server.url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        name, arguments = RENAME
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
        assert http.post(server.url, headers=headers, json=call).status_code == 200
    sent, _ = (json.loads(line) for line in lines(path))
    assert sent["session"] == session
