"""Probes (health.py) and the metrics listener's address: /healthz and /readyz answer without a token and
whatever the Host, /readyz only while the MCP app runs, every other path still needs the token; metrics
listen on loopback unless --metrics-host names another address, never on --host's.

The tests in the last section start `mcp-cloudops serve`: they need the wiring in cli.py and settings.py
(health.probes around http_app, --metrics-port/--metrics-host); the others need only health.py and
metrics.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send
from support import INITIALIZE, MCP_HEADERS, HttpServer, free_port, server_env

from mcp_cloudops import metrics
from mcp_cloudops.health import Probes, probes
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings
from mcp_cloudops.web import http_app

pytestmark = pytest.mark.anyio
TOKEN = "health-test-token-0123456789abcdef"


def token_mode_app() -> Probes:
    """The HTTP app as `serve --http-token` composes it: probes around the token check around the SDK's app."""
    return probes(http_app(build_server(Settings.from_env({})), "127.0.0.1", SecretStr(TOKEN), False))


async def get(app: ASGIApp, path: str, method: str = "GET", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        body = json.dumps(INITIALIZE) if method == "POST" else None
        return await client.request(method, path, headers=headers, content=body)


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[None]:
    """The app's lifespan started (as uvicorn does before it serves) for the block, then shut down."""
    to_app, app_receives = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_sends, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with anyio.create_task_group() as group:
        group.start_soon(app, scope, app_receives.receive, app_sends.send)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        yield
        await to_app.send({"type": "lifespan.shutdown"})
        assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


async def test_probes_answer_without_a_token_while_mcp_needs_one() -> None:
    app = token_mode_app()
    live, ready = await get(app, "/healthz"), await get(app, "/readyz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (503, {"status": "not ready", "reason": "starting"})  # not started
    assert ready.headers["retry-after"] == "1" and ready.headers["cache-control"] == "no-store"
    async with running(app):
        ready = await get(app, "/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert (await get(app, "/healthz")).status_code == 200
        assert (await get(app, "/mcp", "POST", **MCP_HEADERS)).status_code == 401  # no token: refused as before
        assert (await get(app, "/healthz/")).status_code == 401  # only the two exact paths skip the token
        assert (await get(app, "/metrics")).status_code == 401  # metrics are never on the MCP port
    stopped = await get(app, "/readyz")
    assert (stopped.status_code, stopped.json()["reason"]) == (503, "stopping")
    assert (await get(app, "/healthz")).status_code == 200  # alive, though not ready


async def test_probes_answer_whatever_the_host_and_nothing_else_does() -> None:
    """A load balancer probes with its own Host (often an IP no allowed-host list names); the MCP endpoint
    keeps refusing a foreign Host (DNS-rebinding protection), token or not."""
    app = token_mode_app()
    async with running(app):
        for host in ("10.1.2.3:8000", "evil.example", "[fd00::1]:8000"):
            assert (await get(app, "/healthz", Host=host)).status_code == 200
            assert (await get(app, "/readyz", Host=host)).status_code == 200
            mcp = await get(app, "/mcp", "POST", Host=host, Authorization=f"Bearer {TOKEN}", **MCP_HEADERS)
            assert mcp.status_code in (400, 403, 421), mcp.status_code


async def test_probes_take_get_and_head_only_and_say_nothing_more() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope.get("path", scope["type"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = Probes(app)
    wrapped.readiness.started()
    head = await get(wrapped, "/readyz", "HEAD")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "18")
    assert (await get(wrapped, "/readyz?verbose=1")).json() == {"status": "ready"}  # the query changes nothing
    for method in ("POST", "PUT", "DELETE"):
        refused = await get(wrapped, "/healthz", method)
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    assert (await get(wrapped, "/other")).status_code == 204 and seen == ["/other"]
    for path in ("/healthz", "/readyz"):
        assert len((await get(wrapped, path)).content) < 40  # no version, tool or setting in a probe


def test_metrics_listen_on_loopback_unless_told() -> None:
    """--host 0.0.0.0 does not carry the metrics along: only --metrics-host moves them off loopback."""
    settings = SimpleNamespace(metrics_port=0, metrics_host=None)
    assert metrics.metrics_host(settings) == "127.0.0.1"  # type: ignore[arg-type]
    with metrics.metrics_socket(settings) as sock:  # type: ignore[arg-type,union-attr]
        assert sock.getsockname()[0] == "127.0.0.1"
    explicit = SimpleNamespace(metrics_port=0, metrics_host="127.0.0.3")
    with metrics.metrics_socket(explicit) as sock:  # type: ignore[arg-type,union-attr]
        assert sock.getsockname()[0] == "127.0.0.3"
    assert metrics.exposed_warning("127.0.0.1") is None and metrics.exposed_warning("::1") is None
    assert "without authentication" in (metrics.exposed_warning("0.0.0.0") or "")


# --- through `mcp-cloudops serve`: needs the cli.py and settings.py wiring ------------------------------------


def can_connect(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) == 0


async def test_serve_with_probes_token_and_metrics() -> None:
    metrics_port = free_port()
    with HttpServer.running("--metrics-port", str(metrics_port), MCP_CLOUDOPS_HTTP_TOKEN=TOKEN) as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            assert (await http.get("/readyz")).json() == {"status": "ready"}
            assert (await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)).status_code == 401
            assert (await http.get("/metrics")).status_code == 401
        with anyio.fail_after(60):
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
                Client(streamable_http_client(server.url, http_client=http)) as client,
            ):
                assert not (await client.call_tool("list-compute-instances", {})).is_error
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        calls = 'mcp_cloudops_tool_calls_total{account="default",outcome="ok",tool="list-compute-instances"} 1.0'
        answers = 'mcp_cloudops_upstream_responses_total{account="default",provider="exoscale",status_class="2xx"}'
        assert calls in scraped and f"{answers} 1.0" in scraped
        assert TOKEN not in scraped and TOKEN not in server.logs
        assert f"Prometheus metrics on http://127.0.0.1:{metrics_port}/metrics" in server.logs


def test_metrics_do_not_follow_the_mcp_host() -> None:
    """The MCP server on another address (a loopback alias here, as tests listen on loopback only): the
    metrics stay on 127.0.0.1 and are not served on the MCP address."""
    metrics_port = free_port()
    with HttpServer.running("--metrics-port", str(metrics_port), host="127.0.0.2") as server:
        assert can_connect("127.0.0.1", metrics_port)
        assert not can_connect("127.0.0.2", metrics_port)
        assert httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--metrics-port", "nine"], "MCP_CLOUDOPS_METRICS_PORT='nine' (from --metrics-port) is not a port"),
        (["--metrics-port", "70000"], "is not a port: use 1-65535, or 0 for any free one"),
        (["--transport", "stdio", "--metrics-port", "9100"], "--metrics-port) needs --transport http"),
    ],
)
def test_bad_metrics_settings_stop_the_start(flags: list[str], says: str) -> None:
    command = [sys.executable, "-m", "mcp_cloudops", "serve", "--transport", "http", "--port", str(free_port())]
    done = subprocess.run([*command, *flags], env=server_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_metrics_port_in_use_stops_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "mcp_cloudops", "serve", "--transport", "http", "--port", str(free_port())]
        done = subprocess.run(
            [*command, "--metrics-port", str(port)], env=server_env(), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"metrics: cannot listen on 127.0.0.1:{port}: the port is in use (another server?): choose another "
        "--metrics-port, or stop it"
    )
