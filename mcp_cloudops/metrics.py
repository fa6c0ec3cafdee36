"""Prometheus metrics (`--metrics-port`): tool calls by outcome and latency, upstream answers, confirmations.

Off unless asked for, and then free: nothing here imports prometheus_client until a `Metrics` is made
(it costs ~50 ms of start-up, which is benchmarked), and every hook is one ContextVar read that finds
no call to count.

How the counts get in without tangling the code. A server middleware (`Metrics.middleware`, put in
front by `instrument`) wraps every tools/call: it times it, keeps the in-flight gauge, reads its
outcome from the result, and puts a `Call` in a ContextVar for the length of the call. The hooks
in the call's path (`upstream`, `confirmation`, `call_failed`) are module functions that find that
`Call`, so nothing has to be passed down, and outside a measured call (metrics off, a test building
Upstreams by hand) they do nothing.

Labels come from fixed sets only, so that no client can create series and no value an agent sent can
be read back from a scrape: a tool name is one the server offers, or `unknown`; providers are
tools.yaml's keys (our own words, never a client's); outcomes and status classes are the constants
below. No token, secret or argument value is ever a label.

The metrics are served on a listener of their own (`metrics_socket`, `exporting`), bound to loopback
unless `--metrics-host` names another address: they can never appear on the MCP port by accident,
and `--host 0.0.0.0` does not carry them along. On loopback they answer only to a loopback Host, as the
MCP endpoint does, so DNS rebinding cannot read them (`scrape_hosts`).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_cloudops.settings import ConfigError

if TYPE_CHECKING:
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from prometheus_client import CollectorRegistry
    from starlette.types import ASGIApp, Receive, Scope, Send

    from mcp_cloudops.settings import Settings

logger = logging.getLogger("mcp_cloudops")

OUTCOMES = ("ok", "error", "refused", "unknown")  # unknown: a write that may or may not have happened
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "transport", "other")  # transport: no HTTP answer at all
CONFIRMATIONS = ("accepted", "declined", "refused", "fallback", "remembered")  # fallback: --confirm-fallback let
# it through; remembered: an earlier yes covered it (--confirm-remember)
UNKNOWN = "unknown"  # the tool label of a name the server does not offer: clients cannot mint labels
# Seconds. A read answers in milliseconds; a call that waits for an operation may take up to
# MCP_CLOUDOPS_MAX_WAIT (50 s) plus a read timeout; a websocket session its own max_seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
LOOPBACK = "127.0.0.1"  # where metrics listen unless --metrics-host says otherwise
PATH = "/metrics"
MAX_CONNECTIONS = 16  # a scraper or two, and a person with curl: connections beyond are refused (web.limited_h11)


@dataclass
class Call:
    """One tools/call being measured: what the hooks along its path note about it."""

    metrics: Metrics
    tool: str
    started: float
    outcome: str | None = None  # refused | unknown, noted by a hook; else read from the result
    account: str = ""  # the account the call acts in, once resolved (a configured name, never a client's)

    def ended(self, result: Any) -> str | None:
        """The outcome of a finished call from its result, or None for a 2026-07-28 round that only asked
        the user something (the call goes on in the next request, and is counted there)."""
        if isinstance(result, Mapping):
            kind, is_error = result.get("resultType"), result.get("isError")
        else:
            kind, is_error = getattr(result, "result_type", None), getattr(result, "is_error", None)
        if kind == "input_required":
            return None
        return (self.outcome or "error") if is_error else "ok"


_CALL: ContextVar[Call | None] = ContextVar("mcp_cloudops_metrics_call", default=None)


# --- the hooks: one line each at the place they observe, nothing when no call is measured ----------------------


def upstream(provider: str, status: int | None, account: str = "") -> None:
    """An upstream HTTP answer with `status`, or None when none came (connect failure, timeout, dropped
    connection), from `account` of `provider`. Called by upstream.py once per exchange, retries included."""
    call = _CALL.get()
    if call is not None:
        call.metrics.observe_upstream(provider, status, account)


def account(name: str) -> None:
    """The account the call acts in, once resolved (a name from configuration: never what a client sent)."""
    call = _CALL.get()
    if call is not None:
        call.account = name


def confirmation(tool: str, outcome: str) -> None:
    """How a confirmation ended (CONFIRMATIONS). A declined or refused one makes the call `refused`; an
    accepted one restarts the call's clock, so the latency histogram measures the server and the
    upstream, not how long a person took to answer."""
    call = _CALL.get()
    if call is None:
        return
    call.metrics.observe_confirmation(tool, outcome)
    if outcome in ("declined", "refused"):
        call.outcome = "refused"
    else:
        call.started = time.perf_counter()


def call_failed(exc: BaseException) -> None:
    """A call's error: when it says a write may or may not have happened (UpstreamError.unknown), the call's
    outcome is `unknown` rather than `error`, as in the audit journal."""
    call = _CALL.get()
    if call is not None and getattr(exc, "unknown", False):
        call.outcome = "unknown"


def status_class(status: int | None) -> str:
    if status is None:
        return "transport"
    return f"{status // 100}xx" if 200 <= status < 600 else "other"


# --- the metrics ---------------------------------------------------------------------------------------------


class Metrics:
    """One server's metrics, in a registry of their own (never prometheus_client's global one): several
    servers in one process (tests, the sandbox) count apart."""

    def __init__(self, tools: Iterable[str]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

        from mcp_cloudops import __version__

        self.tools = frozenset(tools)
        self.registry: CollectorRegistry = CollectorRegistry()
        self.calls = Counter(
            "mcp_cloudops_tool_calls", "Tool calls, by tool, account and outcome (ok, error, refused, unknown).",
            ["tool", "account", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "mcp_cloudops_tool_call_seconds", "Time to answer a tool call, from the request (or the user's yes).",
            ["tool", "account"], buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge("mcp_cloudops_tool_calls_in_flight", "Tool calls under way.", registry=self.registry)
        self.upstreams = Counter(
            "mcp_cloudops_upstream_responses",
            "Upstream HTTP answers, by provider, account and status class (or transport).",
            ["provider", "account", "status_class"], registry=self.registry,
        )  # fmt: skip
        self.confirmations = Counter(
            "mcp_cloudops_confirmations", "Confirmations of destructive or credential tools, by how they ended.",
            ["tool", "outcome"], registry=self.registry,
        )  # fmt: skip
        Info("mcp_cloudops_build", "The running version.", registry=self.registry).info({"version": __version__})
        ProcessCollector(registry=self.registry)  # open fds against the limit, memory, CPU: what a team watches

    def tool_label(self, name: object) -> str:
        """`name` if the server offers such a tool, else `unknown`: the name a client sends is never a label."""
        return name if isinstance(name, str) and name in self.tools else UNKNOWN

    def observe_call(self, tool: str, account: str, outcome: str, seconds: float) -> None:
        label = self.tool_label(tool)
        self.calls.labels(label, account, outcome if outcome in OUTCOMES else "error").inc()
        self.latency.labels(label, account).observe(seconds)

    def observe_upstream(self, provider: str, status: int | None, account: str = "") -> None:
        self.upstreams.labels(provider, account, status_class(status)).inc()

    def observe_confirmation(self, tool: str, outcome: str) -> None:
        self.confirmations.labels(self.tool_label(tool), outcome if outcome in CONFIRMATIONS else "refused").inc()

    async def middleware(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """A server middleware (mcp's ServerMiddleware): measures every tools/call, passes the rest on."""
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        call = Call(self, self.tool_label(params.get("name")), time.perf_counter())
        token = _CALL.set(call)
        self.in_flight.inc()
        outcome: str | None = None
        try:
            result = await call_next(ctx)
            outcome = call.ended(result)
            return result
        except Exception:  # a protocol error (bad params): the SDK answers it as an error
            outcome = "error"
            raise
        except BaseException:  # cancelled by the client, or the server stopping: how it ended is not known
            outcome = "unknown"
            raise
        finally:
            self.in_flight.dec()
            _CALL.reset(token)
            if outcome is not None:
                self.observe_call(call.tool, call.account, outcome, time.perf_counter() - call.started)

    def scrape(self) -> bytes:
        """The Prometheus text exposition of these metrics."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def asgi_app(self, hosts: Collection[str] | None) -> ASGIApp:
        """GET /metrics, and 404 for every other path: the metrics listener serves nothing else. Only to a Host
        header naming one of `hosts` (any, if None; see scrape_hosts), else 421, whatever the path."""
        from prometheus_client import make_asgi_app

        exposition = make_asgi_app(self.registry)
        refused = misdirected(hosts or ())

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return  # no websocket, no lifespan (the listener runs with lifespan off)
            if hosts is not None and host_name(scope) not in hosts:
                await answer(send, 421, refused)
            elif scope["path"] != PATH:
                await answer(send, 404, b'{"error":"not_found","message":"metrics are at /metrics"}')
            elif scope["method"] not in ("GET", "HEAD"):
                await answer(send, 405, b'{"error":"method_not_allowed","message":"use GET"}', (b"allow", b"GET"))
            else:
                query = scope.get("query_string", b"")
                await exposition({**scope, "query_string": query if query.isascii() else b""}, receive, send)

        return app


def scrape_hosts(bound: str) -> list[str] | None:
    """The Host names a metrics listener bound to `bound` answers to, or None for any.

    On loopback (the default), the MCP endpoint's: the loopback names and its own address. A page that DNS
    rebinding pointed at 127.0.0.1 sends its own name as the Host, so it reads nothing. Beyond loopback, any:
    Prometheus names a target by IP address or by a name only it knows (a container's service name), which
    no list could foresee; the operator who moved the listener there (--metrics-host) chose to expose it,
    and is warned at start that it asks for no token and answers any Host."""
    from mcp_cloudops.setting_values import is_loopback
    from mcp_cloudops.web import allowed_hosts

    return allowed_hosts(bound) if is_loopback(bound) else None


def host_name(scope: Scope) -> str:
    """The name a request's Host header gives, without its port, in lower case ('' if it has none)."""
    host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1").strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


def misdirected(hosts: Collection[str]) -> bytes:
    """The 421 body for a foreign Host: which names to use instead."""
    message = f"this listener answers only to the Host names {', '.join(hosts)}: scrape it by one of them"
    return json.dumps({"error": "misdirected_request", "message": message}).encode()


async def answer(send: Send, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    """A whole small JSON response."""
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def instrument(server: MCPServer) -> Metrics:
    """New metrics for `server`, counting its tool calls from now on. The middleware goes first in the
    chain, so it also sees calls the SDK or the toolsets middleware answer themselves (an unknown or
    hidden tool) and times everything the client waits for."""
    metrics = Metrics(tool.name for tool in await server.list_tools())
    server.middleware.insert(0, metrics.middleware)
    return metrics


# --- the listener --------------------------------------------------------------------------------------------


def metrics_host(settings: Settings) -> str:
    """Where metrics listen: --metrics-host (MCP_CLOUDOPS_METRICS_HOST) if given, else loopback. Never the
    MCP --host: serving the MCP port to a network must not also serve the metrics there."""
    return settings.metrics_host or LOOPBACK


def metrics_socket(settings: Settings, backlog: int = MAX_CONNECTIONS) -> socket.socket | None:
    """The metrics listener's socket, bound before anything says it serves (a port in use is one line at
    start, naming --metrics-port), or None without --metrics-port. A socket of its own: nothing on it is
    MCP, and nothing on the MCP socket is metrics."""
    port = settings.metrics_port
    if port is None:
        return None
    from mcp_cloudops.web import listening_socket

    host = metrics_host(settings)
    try:
        return listening_socket(host, port, backlog, flags=("--metrics-host", "--metrics-port"))
    except ConfigError as exc:
        raise ConfigError(f"metrics: {exc}") from None


def stdio_problem(settings: Settings, transport: str) -> str | None:
    """Why --metrics-port cannot be served with this transport, or None."""
    if settings.metrics_port is None or transport == "http":
        return None
    return (
        "MCP_CLOUDOPS_METRICS_PORT (--metrics-port) needs --transport http: a stdio server serves one local "
        "client and has no listener to put metrics beside; unset it, or serve over HTTP"
    )


def exposed_warning(host: str) -> str | None:
    """What to say when metrics listen beyond loopback (only --metrics-host does that): they carry no
    secret, but call volumes and tool names are for the operators, and the listener asks for no token."""
    from mcp_cloudops.setting_values import is_loopback

    if is_loopback(host):
        return None
    return (
        f"metrics listen on {host} without authentication, for any Host name (--metrics-host): keep that port "
        "behind a firewall"
    )


@asynccontextmanager
async def exporting(server: MCPServer, sock: socket.socket | None, settings: Settings) -> AsyncIterator[Metrics | None]:
    """While the block runs, `server` is measured and its metrics are served on `sock`; with no socket
    (no --metrics-port) nothing happens and prometheus_client is not imported.

    The listener is a second uvicorn server in the same event loop, with web.limited_h11's deadlines and
    its own small connection cap (a flood of the MCP port does not stop scrapes); the MCP server
    keeps the signal handling, and this one stops when the block ends."""
    if sock is None:
        yield None
        return
    import anyio

    from mcp_cloudops.web import host_header_name

    metrics = await instrument(server)
    host, port = sock.getsockname()[:2]
    where = f"http://{host_header_name(host)}:{port}{PATH}"
    app = metrics.asgi_app(scrape_hosts(host))
    listener = quiet_server(app, settings, lambda: logger.info("Prometheus metrics on %s", where))
    warning = exposed_warning(host)
    if warning:
        logger.warning("%s", warning)
    with sock:
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, [sock])
            try:
                yield metrics
            finally:
                listener.should_exit = True


def quiet_server(app: ASGIApp, settings: Settings, announce: Callable[[], None]) -> uvicorn.Server:
    """A uvicorn server for the metrics app, calling `announce` once it listens: no lifespan, no logging
    setup of its own, and no signal handlers (two servers would fight over SIGINT; the MCP server's
    shutdown ends this one's block)."""
    import uvicorn

    from mcp_cloudops.web import limited_h11

    class Quiet(uvicorn.Server):
        def capture_signals(self) -> AbstractContextManager[None]:
            return nullcontext()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce()

    config = uvicorn.Config(
        app,
        http=limited_h11(settings.http_header_timeout, MAX_CONNECTIONS, settings.http_body_timeout),
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=settings.http_idle_timeout,  # typed int, but a float works (call_later)
        backlog=MAX_CONNECTIONS,
    )
    return Quiet(config)
