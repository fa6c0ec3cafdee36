"""The audit journal (audit.py): a `sent` record on disk before a write leaves, an `outcome` record after,
refusals too; one whole JSON line per record however many calls run at once; no credential in it; and
a server killed mid-call leaves the `sent` record of the write it was making."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fakes import hang_up, raw_server, stall
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from support import HttpServer, server_env

from mcp_cloudops.sandbox import credentials, exoscale, scaleway
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

INSTANCE = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"
CREATE = {"instance-type": {"id": INSTANCE}, "template": {"id": INSTANCE}, "disk-size": 10, "name": "vm"}
EXOSCALE = {
    "EXOSCALE_API_KEY": credentials.EXOSCALE_API_KEY,
    "EXOSCALE_API_SECRET": credentials.EXOSCALE_API_SECRET,
}


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of the journal, each of which must be one whole JSON object."""
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the journal must end with a newline"
    return [json.loads(line) for line in lines[:-1]]


@asynccontextmanager
async def journaled(path: Path, **env: str) -> AsyncIterator[tuple[Sandbox, Client]]:
    async with run_sandbox() as sandbox:
        settings = Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_AUDIT_LOG": str(path), **env})
        async with Client(build_server(settings)) as client:
            yield sandbox, client


async def test_a_write_is_journaled_before_and_after(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with journaled(path) as (_, client):
        result = await client.call_tool("update-image-2", {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed"})
        assert not result.is_error
        assert not (await client.call_tool("list-instance-images", {})).is_error  # a read: not journaled
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sent, done = records(path)
    assert sent["event"] == "sent" and done["event"] == "outcome" and sent["call"] == done["call"]
    assert (sent["tool"], sent["provider"], sent["method"]) == ("update-image-2", "scaleway", "PATCH")
    assert sent["path"] == "/instance/v1/zones/{zone}/images/{image_id}"  # the template; ids are arguments
    assert sent["arguments"] == {"image_id": scaleway.IMAGE_PRIVATE, "name": "renamed"}
    assert (sent["session"], sent["principal"]) == (None, None)  # in memory: no HTTP session, no token
    assert (done["outcome"], done["status"], done["error"]) == ("ok", 200, None)
    assert done["duration_ms"] >= 0 and sent["time"].endswith("Z")


async def test_reads_are_journaled_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with journaled(path, MCP_CLOUDOPS_AUDIT_READS="true") as (_, client):
        await client.call_tool("list-instance-images", {"per_page": 5})
    assert [(r["event"], r["tool"]) for r in records(path)] == [
        ("sent", "list-instance-images"),
        ("outcome", "list-instance-images"),
    ]


async def test_no_credential_reaches_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with journaled(path) as (_, client):
        pasted = {"image_id": scaleway.IMAGE_PRIVATE, "name": credentials.SCW_SECRET_KEY}  # an agent pasted a key
        await client.call_tool("update-image-2", pasted)
        await client.call_tool("reveal-password-used-during-instance", {"id": INSTANCE})  # a credential tool
    text = path.read_text()
    for secret in (credentials.SCW_SECRET_KEY, credentials.EXOSCALE_API_SECRET, credentials.EXOSCALE_API_KEY):
        assert secret not in text
    assert any(r["tool"] == "reveal-password-used-during-instance" for r in records(path))


async def test_errors_operations_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with journaled(path, MCP_CLOUDOPS_CONFIRM_FALLBACK="refuse") as (_, client):
        missing = await client.call_tool("update-image-2", {"image_id": INSTANCE, "name": "x"})
        assert missing.is_error
        made = {
            **CREATE,
            "instance-type": {"id": exoscale.STANDARD_SMALL},
            "template": {"id": exoscale.TEMPLATE_UBUNTU},
        }
        waited = await client.call_tool("create-compute-instance", {**made, "wait": True})
        refused = await client.call_tool("delete-instance-image", {"image_id": scaleway.IMAGE_PRIVATE})
        assert refused.is_error  # destructive, and this client cannot confirm
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for record in records(path):
        by_tool.setdefault(record["tool"], []).append(record)
    error = by_tool["update-image-2"][1]
    assert (error["outcome"], error["status"]) == ("error", 404) and "HTTP 404" in error["error"]
    created = by_tool["create-compute-instance"][1]
    assert not waited.is_error, waited.content[0].text
    assert created["outcome"] == "ok" and created["operation"] == waited.structured_content["operation"]["id"]
    [refusal] = by_tool["delete-instance-image"]  # refused before anything was sent: one record
    assert refusal["event"] == "refused" and "needs the user's confirmation" in refusal["reason"]


async def test_a_write_whose_answer_never_comes_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with raw_server(hang_up) as (address, seen):
        env = {**EXOSCALE, "EXOSCALE_API_URL": address, "MCP_CLOUDOPS_AUDIT_LOG": str(path)}
        async with Client(build_server(Settings.from_env(env))) as client:
            result = await client.call_tool("create-compute-instance", CREATE)
    assert result.is_error and len(seen) == 1
    sent, done = records(path)
    assert (sent["event"], done["outcome"], done["status"]) == ("sent", "unknown", None)
    assert "outcome is unknown" in done["error"]


async def test_200_concurrent_writes_give_400_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with journaled(path) as (_, client):
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(200):
                    arguments = {"image_id": scaleway.IMAGE_PRIVATE, "name": f"name-{n}"}
                    tg.start_soon(client.call_tool, "update-image-2", arguments)
    journal = records(path)
    assert len(journal) == 400
    calls: dict[str, list[str]] = {}
    for record in journal:
        calls.setdefault(record["call"], []).append(record["event"])
    assert len(calls) == 200 and all(events == ["sent", "outcome"] for events in calls.values())
    assert sorted(r["arguments"]["name"] for r in journal if r["event"] == "sent") == sorted(
        f"name-{n}" for n in range(200)
    )


async def test_a_server_killed_mid_call_leaves_the_sent_record(tmp_path: Path) -> None:
    """SIGKILL while the upstream holds the request: no outcome was ever known, and the journal says
    which write was in flight."""
    path = tmp_path / "audit.jsonl"
    async with raw_server(stall) as (address, seen):
        env = server_env(**EXOSCALE, EXOSCALE_API_URL=address, MCP_CLOUDOPS_AUDIT_LOG=str(path))
        process = await anyio.open_process(
            [sys.executable, "-m", "mcp_cloudops", "serve"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            assert process.stdin is not None and process.stdout is not None
            messages = [
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": "create-compute-instance", "arguments": CREATE}},
            ]  # fmt: skip
            with anyio.fail_after(30):
                await process.stdin.send((json.dumps(messages[0]) + "\n").encode())
                await process.stdout.receive()  # the initialize answer
                for message in messages[1:]:
                    await process.stdin.send((json.dumps(message) + "\n").encode())
                while not seen:  # the upstream holds the request: the call is in flight
                    await anyio.sleep(0.05)
            os.kill(process.pid, 9)
        finally:
            with anyio.fail_after(10):
                if process.returncode is None:
                    process.kill()
                await process.wait()
    [sent] = records(path)
    assert (sent["event"], sent["tool"], sent["arguments"]["name"]) == ("sent", "create-compute-instance", "vm")


def test_an_unwritable_journal_stops_the_server_with_one_line(tmp_path: Path) -> None:
    env = server_env(MCP_CLOUDOPS_AUDIT_LOG=str(tmp_path / "no-such-dir" / "audit.jsonl"))
    done = subprocess.run(
        [sys.executable, "-m", "mcp_cloudops", "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MCP_CLOUDOPS_AUDIT_LOG" in lines[0] and "no-such-dir" in lines[0]


async def test_over_http_the_session_and_the_tokens_hash_are_recorded_never_the_token(tmp_path: Path) -> None:
    path, token = tmp_path / "audit.jsonl", "agent-" + secrets.token_hex(16)
    with HttpServer.running(MCP_CLOUDOPS_HTTP_TOKEN=token, MCP_CLOUDOPS_AUDIT_LOG=str(path)) as server:
        with anyio.fail_after(60):
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
                Client(streamable_http_client(server.url, http_client=http), mode="legacy") as client,
            ):
                arguments = {"image_id": scaleway.IMAGE_PRIVATE, "name": "over-http"}
                assert not (await client.call_tool("update-image-2", arguments)).is_error
    sent, done = records(path)
    assert sent["principal"] == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    assert sent["session"] and len(sent["session"]) >= 16 and done["outcome"] == "ok"
    assert token not in path.read_text()


async def test_a_brief_outcome_still_journals_its_operation(tmp_path: Path) -> None:
    """exec-instance answers with its outcome and operation_id alone, in a few hundred characters around the
    output (issue 22 item 4); the journal's `outcome` record names the same operation."""
    path = tmp_path / "audit.jsonl"
    async with journaled(path, MCP_CLOUDOPS_CONFIRM_FALLBACK="allow") as (_, client):
        ran = await client.call_tool("exec-instance", {"name": "c1", "command": ["echo", "hi"]})
    assert not ran.is_error, ran.content[0].text
    result = ran.structured_content
    assert result == {"exit_code": 0, "stdout": "hi\n", "stderr": "", "output_truncated": False,
                      "operation_id": result["operation_id"]}  # fmt: skip
    assert len(ran.content[0].text) - len("hi\n") <= 250
    _, done = records(path)
    assert done["outcome"] == "ok" and done["operation"] == result["operation_id"]
