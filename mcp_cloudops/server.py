"""One MCPServer built from the registry: each tools.yaml entry becomes a tool with its schema and hints.

`mcp` at module level is what `mcp dev mcp_cloudops/server.py` and `mcp run` look for.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict

from mcp_cloudops import __version__, confirmation, operations, websocket
from mcp_cloudops.policy import select_tools
from mcp_cloudops.redaction import Redactor, configured_secrets, install_log_redaction
from mcp_cloudops.registry import Registry, ToolSpec, load_registry
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.schema import ArgumentError, ArgumentValidator, input_schema
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.shaping import cap, dumps
from mcp_cloudops.upstream import Upstreams

logger = logging.getLogger("mcp_cloudops")

INSTRUCTIONS = (
    "Operate Incus, Exoscale, Scaleway, Portainer and Nirvana Labs. Tool names and hints come from "
    "tools.yaml; read-only tools are safe to call freely, destructive ones change or delete resources. "
    "Mutating Exoscale calls return an operation: pass wait=true for its final state, or follow it "
    "with get-exoscale-operation."
)


class _PassThrough(ArgModelBase):
    """Hands the raw arguments to the tool: validation is ours, against the registry's schema."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def ok(data: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=dumps(data))], structured_content=data)


def failed(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def annotations(tool: ToolSpec) -> ToolAnnotations:
    return ToolAnnotations(
        title=tool.title,
        read_only_hint=tool.hints.readOnly,
        destructive_hint=tool.hints.destructive,
        idempotent_hint=tool.hints.idempotent,
        open_world_hint=tool.hints.openWorld,
    )


async def dispatch(upstreams: Upstreams, spec: ToolSpec, args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """One tool call: a websocket session, a chunked upstream wait, or a request (then, if asked, a wait)."""

    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(round(done, 1), total, message)

    if spec.websocket:
        return await websocket.stream(upstreams, spec, args)
    if spec.long_poll:
        return await operations.long_poll(upstreams, spec, args, progress)
    data = await upstreams.call(spec, args)
    if spec.returns_operation and args.get("wait"):
        timeout = min(float(args["timeout_seconds"]), upstreams.settings.max_wait)
        return await operations.wait_for(upstreams, spec, args, data, timeout, progress)
    return data


def make_tool(spec: ToolSpec, registry: Registry, upstreams: Upstreams, redactor: Redactor) -> Tool:
    schema = input_schema(spec, registry.provider_of(spec))
    validator = ArgumentValidator(schema, frozenset(p.name for p in spec.params_in("path", "query")))
    limit = upstreams.settings.output_cap

    async def run(ctx: Context, **arguments: Any) -> CallToolResult:
        try:
            args = validator.validate(arguments)
        except ArgumentError as exc:
            return failed(redactor.text(f"Invalid arguments for {spec.name}: {exc}. Fix them and call again."))
        try:
            # Redact before shaping: a cut must never leave half a secret behind.
            return ok(cap(redactor.data(await dispatch(upstreams, spec, args, ctx)), limit, spec))
        except (UpstreamError, ConfigError) as exc:
            logger.info("%s failed: %s", spec.name, type(exc).__name__)
            return failed(redactor.text(str(exc)))
        except Exception as exc:  # a bug of ours: say so, keep serving, keep details out of the answer
            logger.error("%s crashed: %s", spec.name, type(exc).__name__)
            logger.debug("%s crash details", spec.name, exc_info=True)
            return failed(
                f"mcp-cloudops hit an internal error in {spec.name} ({type(exc).__name__}). "
                "The server keeps running; retry once, then report it."
            )

    fn, resolvers = run, {}
    if spec.hints.destructive:
        settings = upstreams.settings
        fn, resolvers = confirmation.guard(
            run, spec, settings.confirm_fallback, redactor, schema["properties"].keys(), failed
        )
    return Tool(
        fn=fn,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        parameters=schema,
        fn_metadata=FuncMetadata(arg_model=_PassThrough),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations(spec),
        **resolvers,
    )


def build_server(settings: Settings | None = None, registry: Registry | None = None) -> MCPServer:
    """The MCP server for a registry (default: tools.yaml) and settings (default: the environment)."""
    registry = registry or load_registry()
    settings = settings or Settings.from_env()
    upstreams = Upstreams(registry, settings)
    redactor = Redactor(configured_secrets(registry, settings))

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        await upstreams.acquire()
        try:
            yield
        finally:
            await upstreams.release()

    server = MCPServer(
        name="mcp-cloudops",
        title="mcp-cloudops",
        instructions=INSTRUCTIONS,
        version=__version__,
        tools=[make_tool(spec, registry, upstreams, redactor) for spec in select_tools(registry, settings)],
        log_level="WARNING",
        lifespan=lifespan,
    )
    install_log_redaction(redactor)  # after MCPServer, which may have installed its own log handler
    return server


def __getattr__(name: str) -> MCPServer:
    """`mcp`, the module-level server `mcp dev` / `mcp run` look for, built on first use only:
    the CLI builds its own, and importing this module should not cost a registry load."""
    if name == "mcp":
        server = build_server()
        globals()["mcp"] = server
        return server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
