"""Incus operation secrets never reach a caller that may not write (second red-team round, finding 3).

An exec's fd secrets let their holder drive the command, a join token's secret lets its holder join the
cluster: `--show-operation-secrets` shows them only to callers allowed to change things, never under
`--read-only` nor to an OAuth token with the read scope alone. And the read-only websocket tool never
connects a stream whose connection could start an exec (stdin, control): three of its calls used to
attach all of an exec's streams and start the pending command.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp import Client
from support import HttpServer, text_of
from test_hostile_credentials import secrets_of
from test_oauth import PUBLIC, READ, WRITE, connected, running_issuer

from mcp_cloudops.calls import HIDDEN
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio
SHOW = {"MCP_CLOUDOPS_SHOW_OPERATION_SECRETS": "1"}


def said(*results: Any) -> str:
    return "".join(text_of(r) + json.dumps(r.structured_content) for r in results)


async def test_read_only_mode_hides_them_whatever_the_flag_says(sandbox: Sandbox) -> None:
    env = {**sandbox.env, **SHOW, "MCP_CLOUDOPS_READ_ONLY": "1"}
    async with Client(build_server(Settings.from_env(env))) as client:
        listing = await client.call_tool("get-operations-2", {})
        token = await client.call_tool("get-operation-state", {"id": sandbox["incus"].seeded["token"]})
    assert not listing.is_error, text_of(listing)
    for secret in secrets_of(sandbox):
        assert secret not in said(listing, token)
    assert token.structured_content["metadata"]["secret"] == HIDDEN


async def test_a_writer_still_sees_them_with_the_flag(sandbox: Sandbox) -> None:
    async with Client(build_server(Settings.from_env({**sandbox.env, **SHOW}))) as client:
        listing = await client.call_tool("get-operations-2", {})
    assert any(secret in said(listing) for secret in secrets_of(sandbox))


async def test_an_oauth_reader_gets_them_hidden_and_a_writer_shown() -> None:
    with running_issuer() as issuer:
        env = {"MCP_CLOUDOPS_OAUTH_ISSUER": issuer.url, "MCP_CLOUDOPS_PUBLIC_URL": PUBLIC, **SHOW}
        with HttpServer.running(**env) as server:
            async with connected(server, issuer.token(scope=WRITE)) as writer:
                shown = (await writer.call_tool("get-operations-2", {})).structured_content
            async with connected(server, issuer.token(scope=READ)) as reader:
                hidden = (await reader.call_tool("get-operations-2", {})).structured_content
    fds = [op["metadata"]["fds"] for ops in shown.values() for op in ops if "fds" in (op.get("metadata") or {})]
    assert fds and all(value != HIDDEN for fd in fds for value in fd.values())  # the writer sees them
    text = json.dumps(hidden)
    assert HIDDEN in text
    for fd in fds:
        for value in fd.values():
            assert value not in text


async def test_the_read_only_stream_tool_never_starts_a_pending_exec(sandbox: Sandbox) -> None:
    """The red team's three concurrent reads with the fd secrets: stdin's is refused, so the exec waits."""
    incus = sandbox["incus"]
    op = incus.create_exec(["sh", "-c", "echo started > /tmp/marker"])
    session = incus.operations[op["id"]].exec
    results: dict[str, Any] = {}
    async with Client(build_server(Settings.from_env(sandbox.env))) as client:

        async def read(fd: str) -> None:
            arguments = {"id": op["id"], "secret": session.fds[fd], "max_seconds": 1}
            results[fd] = await client.call_tool("get-websocket-stream-2", arguments)

        async with anyio.create_task_group() as tg:
            for fd in ("0", "1", "2"):
                tg.start_soon(read, fd)
        control = await client.call_tool("get-websocket-stream-2", {"id": op["id"], "secret": session.fds["control"]})
    assert not session.started
    for refused in (results["0"], control):
        assert refused.is_error
        assert "get-websocket-stream" in text_of(refused) and "nothing was connected" in text_of(refused).lower()
    assert session.conns["0"] is None and session.conns["control"] is None
