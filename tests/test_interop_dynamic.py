"""The TypeScript SDK client against `serve --sandbox --dynamic-toolsets`: interop/ts-dynamic-toolsets.mjs.

The server starts with two discovery tools; enabling a toolset sends notifications/tools/list_changed, on which
the SDK refetches the list (its `listChanged` client option). Over HTTP the client also checks that sessions
are separate, and that a session opened with `X-MCP-Toolsets` starts with those toolsets. Skips (fails under
CI=true) like test_interop.py when interop/node_modules is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import HttpServer
from test_interop import INTEROP, SERVER, clean_env, is_error, known_error, log_records, node, run

CLIENT = INTEROP / "ts-dynamic-toolsets.mjs"
DYNAMIC = "--dynamic-toolsets"
__all__ = ["node"]  # the fixture, shared with test_interop.py


@pytest.fixture(scope="module")
def dynamic_server(node: Path) -> Iterator[HttpServer]:
    """`mcp-cloudops serve --sandbox --transport http --dynamic-toolsets` on a free loopback port; stopped, and
    its log checked for errors, after the module's tests."""
    server = HttpServer.start(DYNAMIC)
    try:
        server.wait_ready(timeout=60)
        yield server
    finally:
        server.stop()
    unexpected = [record for record in log_records(server.logs) if is_error(record) and not known_error(record)]
    assert not unexpected, "the HTTP server logged errors while serving the clients:\n" + "\n".join(unexpected)


def summary_of(node: Path, target: list[str]) -> dict[str, object]:
    done = run([node, CLIENT, *target], timeout=90, env=clean_env())
    assert done.code == 0, done.describe()
    summary = json.loads(done.out.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["server"]["name"] == "mcp-cloudops", summary
    assert summary["initial"] == ["enable-toolset", "list-toolsets"], summary
    assert "list-nirvana-operations" in summary["added"] and summary["refetches"] >= 1, summary
    return summary


def test_stdio(node: Path) -> None:
    """The SDK spawns the server as Claude Desktop does (its default environment: the flag, not the variable)."""
    summary = summary_of(node, ["stdio", *SERVER, DYNAMIC])
    assert summary["mode"] == "stdio"


@pytest.mark.timeout(170)
def test_http(node: Path, dynamic_server: HttpServer) -> None:
    summary = summary_of(node, ["http", dynamic_server.url])
    assert summary["mode"] == "http"
    assert summary["second"] == {"tools": 2, "refetches": 0}, summary  # no list_changed for the other session
    assert summary["third"]["scaleway"] > 0, summary
