"""Prometheus metrics (metrics.py): calls counted by tool and outcome and timed, upstream answers by status
class, confirmations by how they ended, scraped over HTTP from a listener of their own on loopback; no label
carries an argument, a client's made-up tool name or a secret; nothing imported when metrics are off.

The tests in the last section need the one-line hooks in upstream.py, confirmation.py and server.py
(metrics.upstream, metrics.confirmation, metrics.call_failed); the others need only metrics.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from fakes import hang_up, raw_server
from mcp import Client
from mcp_types import ElicitResult
from prometheus_client.parser import text_string_to_metric_families
from support import SECRETS, free_port

from mcp_cloudops import metrics
from mcp_cloudops.metrics import BUCKETS, Metrics, exporting, metrics_socket, status_class
from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.exoscale import INSTANCE_RUNNING, INSTANCE_STOPPED
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import ConfigError, Settings

pytestmark = pytest.mark.anyio

MISSING = "0b0b0b0b-0000-4000-8000-00000000dead"  # no such Exoscale instance: the simulator answers 404
DELETE = ("delete-compute-instance", {"id": INSTANCE_STOPPED})
CREATE = {"instance-type": {"id": MISSING}, "template": {"id": MISSING}, "disk-size": 10, "name": "vm"}
EXOSCALE = {"EXOSCALE_API_KEY": credentials.EXOSCALE_API_KEY, "EXOSCALE_API_SECRET": credentials.EXOSCALE_API_SECRET}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def listener(**overrides: Any) -> Any:
    """The settings the metrics listener reads (stands in for Settings' metrics_* fields)."""
    values = {"metrics_port": 0, "metrics_host": None, "http_idle_timeout": 15.0}
    values |= {"http_header_timeout": 10.0, "http_body_timeout": 30.0}
    return SimpleNamespace(**(values | overrides))


@asynccontextmanager
async def measured(settings: Settings, **client: Any) -> AsyncIterator[tuple[Client, str]]:
    """An in-memory client of a server built from `settings`, and the URL of its metrics on 127.0.0.1."""
    server = build_server(settings)
    sock = metrics_socket(listener())
    assert sock is not None
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
    async with exporting(server, sock, listener()), Client(server, **client) as connected:
        yield connected, url


async def scrape(url: str) -> tuple[str, Samples]:
    """The exposition text, and every sample in it keyed by name and labels."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` that carry `labels` (any account, unless one is named)."""
    wanted = set(labels.items())
    return sum(count for (sample, carried), count in samples.items() if sample == name and wanted <= carried)


def label_values(samples: Samples, label: str) -> set[str]:
    return {v for (name, labels) in samples for k, v in labels if k == label and name.startswith("mcp_cloudops")}


# --- without any wiring: the middleware and the listener ------------------------------------------------------


async def test_calls_are_counted_timed_and_scraped_without_secrets(sandbox: Sandbox) -> None:
    secret = credentials.EXOSCALE_API_SECRET
    async with measured(Settings.from_env(sandbox.env)) as (client, url):
        ok = await client.call_tool("list-compute-instances", {"labels": f"team={secret}", "ip-address": "203.0.113.7"})
        missing = await client.call_tool("retrieve-compute-instance-details", {"id": MISSING})
        invalid = await client.call_tool("retrieve-compute-instance-details", {"id": secret})
        made_up = await client.call_tool(credentials.PORTAINER_API_KEY, {"x": secret})
        text, samples = await scrape(url)
    assert not ok.is_error and missing.is_error and invalid.is_error and made_up.is_error
    calls = "mcp_cloudops_tool_calls_total"
    assert value(samples, calls, tool="list-compute-instances", outcome="ok") == 1
    assert value(samples, calls, tool="retrieve-compute-instance-details", outcome="error") == 2
    assert value(samples, calls, tool="unknown", outcome="error") == 1  # a client's made-up name is no label
    assert value(samples, "mcp_cloudops_tool_calls_in_flight") == 0
    histogram = "mcp_cloudops_tool_call_seconds"
    for tool, count in (("list-compute-instances", 1), ("retrieve-compute-instance-details", 2), ("unknown", 1)):
        buckets = [value(samples, f"{histogram}_bucket", tool=tool, le=str(le)) for le in BUCKETS]
        assert buckets == sorted(buckets), "buckets are cumulative"
        assert value(samples, f"{histogram}_bucket", tool=tool, le="+Inf") == count
        assert value(samples, f"{histogram}_count", tool=tool) == count
        assert 0 < value(samples, f"{histogram}_sum", tool=tool) < 30
    assert value(samples, "mcp_cloudops_build_info", version=metrics_version()) == 1
    for leaked in (*SECRETS, "203.0.113.7", "team=", MISSING):
        assert leaked not in text  # no argument value, no credential, anywhere in the scrape
    assert label_values(samples, "tool") <= {"list-compute-instances", "retrieve-compute-instance-details", "unknown"}
    assert label_values(samples, "outcome") <= set(metrics.OUTCOMES)


def metrics_version() -> str:
    from mcp_cloudops import __version__

    return __version__


async def test_a_round_that_only_asks_is_not_a_call(sandbox: Sandbox) -> None:
    """2026-07-28: the first round of a destructive call returns input_required; the retry is the call."""

    async def accept(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"confirm": True})

    async with measured(Settings.from_env(sandbox.env), mode="auto", elicitation_callback=accept) as (client, url):
        assert not (await client.call_tool(*DELETE)).is_error
        _, samples = await scrape(url)
    assert value(samples, "mcp_cloudops_tool_calls_total", tool=DELETE[0], outcome="ok") == 1
    assert value(samples, "mcp_cloudops_tool_call_seconds_count", tool=DELETE[0]) == 1


async def test_the_listener_serves_metrics_only() -> None:
    server = build_server(Settings.from_env({}))
    sock = metrics_socket(listener())
    assert sock is not None and sock.getsockname()[0] == "127.0.0.1"
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with exporting(server, sock, listener()), httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.head("/metrics")).status_code == 200
        assert (await http.get("/mcp")).status_code == 404
        assert (await http.get("/metrics/")).status_code == 404
        assert (await http.post("/metrics")).status_code == 405
        filtered = await http.get("/metrics", params={"name[]": "mcp_cloudops_tool_calls_in_flight"})
        assert "mcp_cloudops_tool_calls_in_flight 0.0" in filtered.text and "process_" not in filtered.text


async def test_the_listener_stops_with_its_block() -> None:
    sock = metrics_socket(listener())
    assert sock is not None
    port = sock.getsockname()[1]
    async with exporting(build_server(Settings.from_env({})), sock, listener()):
        pass
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_port_in_use_is_one_line_naming_the_metrics_flag() -> None:
    port = free_port()
    with metrics_socket(listener(metrics_port=port)) as taken:  # type: ignore[union-attr]
        assert taken is not None
        with pytest.raises(ConfigError) as refused:
            metrics_socket(listener(metrics_port=port))
    assert "--metrics-port" in str(refused.value) and "\n" not in str(refused.value)
    assert metrics_socket(listener(metrics_port=None)) is None


def test_stdio_with_a_metrics_port_is_refused() -> None:
    assert metrics.stdio_problem(listener(metrics_port=9100), "stdio") is not None
    assert metrics.stdio_problem(listener(metrics_port=9100), "http") is None
    assert metrics.stdio_problem(listener(metrics_port=None), "stdio") is None


async def test_two_servers_count_apart(sandbox: Sandbox) -> None:
    first, second = build_server(Settings.from_env(sandbox.env)), build_server(Settings.from_env(sandbox.env))
    one, two = await metrics.instrument(first), await metrics.instrument(second)
    async with Client(first) as client:
        await client.call_tool("list-compute-instances", {})
    calls = b'mcp_cloudops_tool_calls_total{account="default",outcome="ok",tool="list-compute-instances"} 1.0'
    assert calls in one.scrape()
    assert b"mcp_cloudops_tool_calls_total{" not in two.scrape()


def test_labels_come_from_fixed_sets() -> None:
    meters = Metrics(["list-compute-instances"])
    assert meters.tool_label("list-compute-instances") == "list-compute-instances"
    for made_up in ("nope", "", credentials.SCW_SECRET_KEY, None, 7, ["list-compute-instances"]):
        assert meters.tool_label(made_up) == "unknown"
    meters.observe_call("x" * 10_000, "", "weird", 0.1)
    meters.observe_confirmation("list-compute-instances", "maybe")
    text = meters.scrape().decode()
    assert 'mcp_cloudops_tool_calls_total{account="",outcome="error",tool="unknown"} 1.0' in text
    assert 'mcp_cloudops_confirmations_total{outcome="refused",tool="list-compute-instances"} 1.0' in text
    assert "x" * 100 not in text and "weird" not in text and "maybe" not in text


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (204, "2xx"), (301, "3xx"), (404, "4xx"), (429, "4xx"), (503, "5xx"), (None, "transport"),
     (101, "other"), (600, "other"), (999, "other")],
)  # fmt: skip
def test_status_classes(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def test_hooks_outside_a_measured_call_do_nothing() -> None:
    metrics.upstream("exoscale", 200)
    metrics.confirmation("delete-compute-instance", "accepted")
    metrics.call_failed(RuntimeError("x"))


def test_prometheus_client_is_not_imported_when_metrics_are_off() -> None:
    """Start-up time is benchmarked: without --metrics-port, building and wiring the server imports no
    prometheus_client (~50 ms)."""
    code = (
        "import sys\n"
        "from mcp_cloudops import cli, health, metrics, confirmation, upstream\n"
        "from mcp_cloudops.server import build_server\n"
        "from mcp_cloudops.settings import Settings\n"
        "from mcp_cloudops.web import http_app\n"
        "server = build_server(Settings.from_env({}))\n"
        "health.probes(http_app(server, '127.0.0.1', None, False))\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- with the hook lines in upstream.py, confirmation.py and server.py ----------------------------------------


async def test_upstream_answers_by_provider_and_status_class(sandbox: Sandbox) -> None:
    async with measured(Settings.from_env(sandbox.env)) as (client, url):
        await client.call_tool("list-compute-instances", {})
        await client.call_tool("retrieve-compute-instance-details", {"id": MISSING})
        _, samples = await scrape(url)
    answers = "mcp_cloudops_upstream_responses_total"
    assert value(samples, answers, provider="exoscale", status_class="2xx") == 1
    assert value(samples, answers, provider="exoscale", status_class="4xx") == 1
    assert label_values(samples, "status_class") <= set(metrics.STATUS_CLASSES)


async def test_no_answer_is_transport_and_a_write_left_unknown_is_unknown() -> None:
    async with raw_server(hang_up) as (address, seen):
        env = {**EXOSCALE, "EXOSCALE_API_URL": address, "MCP_CLOUDOPS_RETRIES": "1"}
        async with measured(Settings.from_env(env)) as (client, url):
            read = await client.call_tool("list-compute-instances", {})
            write = await client.call_tool("create-compute-instance", CREATE)
            _, samples = await scrape(url)
    assert read.is_error and write.is_error and len(seen) == 3  # the read was retried once; the write never
    calls, answers = "mcp_cloudops_tool_calls_total", "mcp_cloudops_upstream_responses_total"
    assert value(samples, answers, provider="exoscale", status_class="transport") == 3
    assert value(samples, calls, tool="list-compute-instances", outcome="error") == 1
    assert value(samples, calls, tool="create-compute-instance", outcome="unknown") == 1


def answering(action: str, delay: float = 0.0) -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        await anyio.sleep(delay)
        return ElicitResult(action=action, content={"confirm": True} if action == "accept" else None)

    return callback


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_confirmations_by_how_they_ended(sandbox: Sandbox, mode: str) -> None:
    confirmations, calls = "mcp_cloudops_confirmations_total", "mcp_cloudops_tool_calls_total"
    tool = DELETE[0]
    async with measured(Settings.from_env(sandbox.env), mode=mode, elicitation_callback=answering("accept", 1.0)) as (
        client,
        url,
    ):
        # Another instance than the later calls': the question reads its target, and this one is then gone.
        assert not (await client.call_tool(tool, {"id": INSTANCE_RUNNING})).is_error
        _, samples = await scrape(url)
    assert value(samples, confirmations, tool=tool, outcome="accepted") == 1
    assert value(samples, calls, tool=tool, outcome="ok") == 1
    # The clock restarts at the user's yes: the second the person took is not the server's latency.
    assert value(samples, "mcp_cloudops_tool_call_seconds_sum", tool=tool) < 1.0

    async with measured(Settings.from_env(sandbox.env), mode=mode, elicitation_callback=answering("decline")) as (
        client,
        url,
    ):
        assert (await client.call_tool(*DELETE)).is_error
        _, samples = await scrape(url)
    assert value(samples, confirmations, tool=tool, outcome="declined") == 1
    assert value(samples, calls, tool=tool, outcome="refused") == 1

    refusing = Settings.from_env({**sandbox.env, "MCP_CLOUDOPS_CONFIRM_FALLBACK": "refuse"})
    async with measured(refusing, mode=mode) as (client, url):
        assert (await client.call_tool(*DELETE)).is_error
        _, samples = await scrape(url)
    assert value(samples, confirmations, tool=tool, outcome="refused") == 1
    assert value(samples, calls, tool=tool, outcome="refused") == 1

    async with measured(Settings.from_env(sandbox.env), mode=mode) as (client, url):
        await client.call_tool(*DELETE)  # --confirm-fallback allow (the default) lets it through: already gone, 404
        _, samples = await scrape(url)
    assert value(samples, confirmations, tool=tool, outcome="fallback") == 1
    assert value(samples, calls, tool=tool, outcome="refused") == 0
