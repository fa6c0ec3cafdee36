"""The TypeScript SDK client against `serve --sandbox --dynamic-toolsets`: interop/ts-dynamic-toolsets.mjs.

The server starts with two discovery tools; enabling a toolset sends notifications/tools/list_changed, on which
the SDK refetches the list (its `listChanged` client option). Over HTTP the client also checks that sessions
are separate, and that a session opened with `X-MCP-Toolsets` starts with those toolsets. What it expects
(every toolset and its tools) is tools.yaml's, passed to it here: the client names no provider itself. Skips
(fails under CI=true) like test_interop.py when interop/node_modules is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from registries import REAL
from support import HttpServer
from test_interop import INTEROP, SERVER, clean_env, is_error, known_error, log_records, node, run

from mcp_cloudops.sandbox import nirvana

CLIENT = INTEROP / "ts-dynamic-toolsets.mjs"
DYNAMIC = "--dynamic-toolsets"
__all__ = ["node"]  # the fixture, shared with test_interop.py

# The sandbox's Nirvana Labs is the toolset enabled: its calls follow a project to one of its operations.
ENABLE, HEADER = "nirvana", "scaleway"
CALLS = [
    ["list-nirvana-projects", {}],
    ["list-nirvana-operations", {"project_id": nirvana.PROJECT_MAIN}],
    ["get-nirvana-operation", {"operation_id": nirvana.OPERATION_RUNNING}],
]
EXPECT = json.dumps(
    {
        "toolsets": {key: [tool.name for tool in REAL.tools if tool.provider == key] for key in REAL.providers},
        "enable": ENABLE,
        "calls": CALLS,
        "header": HEADER,
    }
)


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
    done = run([node, CLIENT, EXPECT, *target], timeout=90, env=clean_env())
    assert done.code == 0, done.describe()
    summary = json.loads(done.out.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["server"]["name"] == "mcp-cloudops", summary
    assert summary["initial"] == [REAL.discovery.enable.name, REAL.discovery.list.name], summary
    own = sorted(tool.name for tool in REAL.tools if tool.provider == ENABLE)
    assert summary["added"] == own and summary["refetches"] >= 1, summary
    projects, operations, operation = summary["calls"]
    assert projects["items"] == len(nirvana.SEED_PROJECTS) and operations["items"] > 0, summary
    assert operation["id"] == nirvana.OPERATION_RUNNING, summary
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
    assert summary["third"] == {"toolset": HEADER, "tools": sum(t.provider == HEADER for t in REAL.tools)}, summary
