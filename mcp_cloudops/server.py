"""One MCPServer built from the registry: each tools.yaml entry becomes a tool with its schema and hints.

`mcp` at module level is what `mcp dev mcp_cloudops/server.py` and `mcp run` look for.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.request_state import RequestStateSecurity
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict

from mcp_cloudops import __version__, confirmation, metrics
from mcp_cloudops.accounts import ACCOUNT, Account, AccountRefused, Accounts, sandboxed
from mcp_cloudops.audit import Journal, UnsafeJournal
from mcp_cloudops.audit import caller as audit_caller
from mcp_cloudops.instructions import instructions
from mcp_cloudops.logs import sdk_logging_skipped
from mcp_cloudops.policy import select_tools, who_calls
from mcp_cloudops.redaction import Redactor, configured_secrets, install_log_redaction
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.registry_models import MetaTool, Param, Provider, ToolSpec
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.schema import ArgumentError, ArgumentValidator, account_param, input_schema, listed_schema
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.shaping import cap, dumps, fits, off_loop
from mcp_cloudops.toolsets import SessionToolsets

if TYPE_CHECKING:
    from mcp_cloudops.upstream import Upstreams

logger = logging.getLogger("mcp_cloudops")


class _PassThrough(ArgModelBase):
    """Hands the raw arguments to the tool: validation is ours, against the registry's schema."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def answer(redactor: Redactor, result: Any, limit: int, spec: ToolSpec, args: dict[str, Any]) -> CallToolResult:
    """The result as the agent reads it: redacted, then cut to the output cap (in place when redaction made a
    copy nobody else reads). Most results need neither, which their JSON, made once, tells."""
    text = dumps(result)
    if fits(text, limit) and redactor.clean_json(text, result):
        return ok(result, text)
    redacted = redactor.data(result)
    return ok(cap(redacted, limit, spec, args, own=redacted is not result))


def ok(data: dict[str, Any], text: str | None = None) -> CallToolResult:
    """`data` as a result: its JSON (`text`, when the caller has already made it) and itself, structured."""
    shown = dumps(data) if text is None else text
    return CallToolResult(content=[TextContent(type="text", text=shown)], structured_content=data)


def failed(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


MCP_HINT_DEFAULTS = {"readOnly": False, "destructive": True, "idempotent": False, "openWorld": True}


def annotations(tool: ToolSpec, lean: bool = False) -> ToolAnnotations:
    """The tool's hints, all stated. `lean` (a tool carrying an `account` choice) pays for that argument
    with the cuts bench/context.py measures: no title repeating the tool's own, no hint equal to its MCP
    default but readOnlyHint (the one every client reads), and no destructive or idempotent hint on a
    read-only tool (meaningless there, says the spec)."""
    hints = tool.hints.model_dump()
    if lean:
        hints = {name: value for name, value in hints.items() if name == "readOnly" or MCP_HINT_DEFAULTS[name] != value}
        if tool.hints.readOnly:
            hints = {name: value for name, value in hints.items() if name not in ("destructive", "idempotent")}
    return ToolAnnotations(
        title=None if lean else tool.title,
        read_only_hint=hints.get("readOnly"),
        destructive_hint=hints.get("destructive"),
        idempotent_hint=hints.get("idempotent"),
        open_world_hint=hints.get("openWorld"),
    )


class Connections:
    """The server's upstream clients, created with the call machinery on the first tool call.

    That machinery imports httpx, websockets and jsonschema (~150 ms together). Listing tools needs
    none of it, and start-up is the time every client waits for.
    """

    def __init__(
        self, registry: Registry, settings: Settings, redactor: Redactor, journal: Journal | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.redactor = redactor
        self.journal = journal
        self.accounts = settings.accounts_for(registry)
        # Each provider's `account` option, built once: every tool of the provider shares it.
        self.choices = {key: account_choice(self.accounts, provider) for key, provider in registry.providers.items()}
        self._upstreams: Upstreams | None = None
        self._sessions = 0
        self.remembered = confirmation.Remembered(settings.confirm_remember) if settings.confirm_remember else None

    def upstreams(self) -> Upstreams:
        if self._upstreams is None:
            from mcp_cloudops.upstream import Upstreams

            self._upstreams = Upstreams(self.registry, self.settings, self.redactor, self.accounts)
        return self._upstreams

    def account_for(self, spec: ToolSpec, args: dict[str, Any]) -> Account:
        """The account a call acts in, for this caller: the one it names, else the default it gets;
        AccountRefused when it may not act in the one it names."""
        return self.accounts.resolve(self.registry.provider_of(spec), args.get(ACCOUNT), who_calls(self.settings))

    def for_call(self, spec: ToolSpec, args: dict[str, Any]) -> Upstreams:
        """The upstreams of one call, in its account: resolved once, kept for everything the call does
        (polls, waits, steps, read-backs)."""
        account = self.account_for(spec, args)
        metrics.account(account.name)
        return self.upstreams().using(account)

    def account_of(self, spec: ToolSpec, args: dict[str, Any]) -> str | None:
        """The account a call would act in, named for the question when its provider has several (else None)."""
        return self.account_for(spec, args).name if self.choices[spec.provider] else None

    async def call(self, spec: ToolSpec, args: dict[str, Any], ctx: Context) -> tuple[dict[str, Any], int]:
        """The call's result, and the bytes of the upstream bodies it was made from (shaping.off_loop)."""
        from mcp_cloudops.calls import dispatch

        try:
            upstreams = self.for_call(spec, args)
        except AccountRefused as exc:  # an account unknown, or not this caller's: the journal shows who tried
            if self.journal is not None:
                await self.journal.refused(spec, str(exc), *audit_caller(ctx), account=exc.name)
            raise
        return await dispatch(upstreams, spec, args, ctx, self.journal), upstreams.received

    async def what_runs(self, spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any] | str:
        """What a call naming it only by id runs, for the confirmation question; or why that cannot be
        read, redacted (tools.yaml `review`)."""
        from mcp_cloudops import review

        try:
            return await review.what_runs(self.for_call(spec, args), spec, args)
        except (UpstreamError, ConfigError) as exc:
            return self.redactor.cut(str(exc))

    async def target_of(self, spec: ToolSpec, args: dict[str, Any]) -> tuple[str | None, str | None]:
        """What a call acts on as people know it, for the question (tools.yaml `ask.target`); or why it cannot
        be read, redacted: then nobody is asked and nothing is changed."""
        from mcp_cloudops import review

        try:
            return await review.target(self.for_call(spec, args), spec, args), None
        except (UpstreamError, ConfigError) as exc:
            return None, self.redactor.cut(str(exc))

    @asynccontextmanager
    async def session(self, _: MCPServer) -> AsyncIterator[None]:
        """The server's lifespan: pooled clients close when the last session using them ends."""
        self._sessions += 1
        try:
            yield
        finally:
            self._sessions -= 1
            if self._sessions <= 0 and self._upstreams is not None:
                upstreams, self._upstreams = self._upstreams, None
                await upstreams.aclose()


def make_tool(spec: ToolSpec, connections: Connections, redactor: Redactor) -> Tool:
    settings = connections.settings
    provider = connections.registry.provider_of(spec)
    choice = connections.choices[provider.key]
    schema = input_schema(spec, provider, settings.max_wait, choice)
    url_params = frozenset(p.name for p in spec.params_in("path", "query"))
    listers = {p.name: p.listed_by for p in spec.params if p.listed_by}
    validator = ArgumentValidator(unnamed_accounts(schema), url_params, listers)
    limit = settings.output_cap

    async def run(ctx: Context, **arguments: Any) -> CallToolResult:
        try:  # as the client sent them: an argument named `ctx` is the SDK's, dropped unless named here
            args = validator.validate({**confirmation.call_arguments(ctx), **arguments})
        except ArgumentError as exc:
            return failed(redactor.cut(f"Invalid arguments for {spec.name}: {exc}. Fix them and call again."))
        try:
            data, received = await connections.call(spec, args, ctx)
            # Redact before shaping: a cut must never leave half a secret behind. Both walk the whole result,
            # so a big one is done on a worker thread while the event loop serves other clients; the cut
            # works on the redacted copy in place (own: no one else reads it).
            return await off_loop(lambda result: answer(redactor, result, limit, spec, args), data, received)
        except (UpstreamError, ConfigError) as exc:
            logger.info("%s failed: %s", spec.name, type(exc).__name__)
            metrics.call_failed(exc)  # a write that may have happened counts as `unknown`
            return failed(redactor.cut(str(exc)))  # redacted, then cut to ERROR_MAX
        except Exception as exc:  # a bug of ours: say so, keep serving, keep details out of the answer
            error_id = secrets.token_hex(4)  # joins the agent's one line to the traceback in the log
            logger.error("%s crashed (error id %s)", spec.name, error_id, exc_info=True)  # redacted by the log filter
            return failed(
                f"mcp-cloudops hit an internal error in {spec.name} ({type(exc).__name__}, error id {error_id}). "
                "The server keeps running; retry once, then report the error id."
            )

    fn, resolvers = run, {}
    if confirmation.needed(spec):
        fn, resolvers = confirmation.guard(
            run,
            spec,
            fallback=settings.confirm_fallback,
            stateless=settings.stateless,
            redactor=redactor,
            validate=validator.validate,
            arg_names=schema["properties"].keys(),
            failed=failed,
            journal=connections.journal,
            what_runs=functools.partial(connections.what_runs, spec),
            target_of=functools.partial(connections.target_of, spec),
            remembered=connections.remembered,
            account_of=functools.partial(connections.account_of, spec),
        )
    return Tool(
        fn=fn,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        parameters=listed_schema(schema, spec),
        fn_metadata=FuncMetadata(arg_model=_PassThrough),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations(spec, lean=bool(choice)),
        **resolvers,
    )


def unnamed_accounts(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema arguments are checked against: `account` any string, not the enum of every account. A name
    is checked when the call resolves its account, against this caller's: the enum's error would tell one
    user the names of accounts only others may use."""
    if ACCOUNT not in schema["properties"]:
        return schema
    return {**schema, "properties": {**schema["properties"], ACCOUNT: {"type": "string"}}}


def account_choice(accounts: Accounts, provider: Provider) -> tuple[Param, ...]:
    """The `account` option of a provider's tools when it has several accounts; none with one, so that a
    server with one account per provider lists exactly what it always did."""
    own = accounts.of(provider.key)
    if len(own) < 2:
        return ()
    return (
        account_param(
            {name: account.description for name, account in own.items()}, accounts.defaults.get(provider.key)
        ),
    )


def open_journal(settings: Settings, redactor: Redactor) -> Journal | None:
    """The audit journal --audit-log names, opened (created 0600) at start: a path that cannot be
    written, or is not a regular file of this user's (a symlink, a FIFO that would block start-up),
    stops the server with one line, before any call could go unrecorded."""
    if settings.audit_log is None:
        return None
    try:
        return Journal(settings.audit_log, redactor, reads=settings.audit_reads)
    except UnsafeJournal as exc:
        raise ConfigError(f"MCP_CLOUDOPS_AUDIT_LOG (--audit-log) {str(settings.audit_log)!r} {exc}") from None
    except OSError as exc:
        raise ConfigError(
            f"MCP_CLOUDOPS_AUDIT_LOG (--audit-log) {str(settings.audit_log)!r} cannot be opened for appending "
            f"({exc.strerror or type(exc).__name__}); name a writable file"
        ) from None


def build_server(settings: Settings | None = None, registry: Registry | None = None) -> MCPServer:
    """The MCP server for a registry (default: tools.yaml) and settings (default: the environment)."""
    registry = registry or load_registry()
    settings = settings or Settings.from_env()
    if settings.accounts is None:
        settings = settings.with_accounts(registry)
    redactor = Redactor(configured_secrets(registry, settings))
    journal = open_journal(settings, redactor)
    connections = Connections(registry, settings, redactor, journal)
    specs = select_tools(registry, settings)
    sessions = SessionToolsets(registry, specs, settings, journal)
    tools = [make_tool(spec, connections, redactor) for spec in specs]
    if settings.dynamic_toolsets:
        tools = discovery_tools(registry, settings, sessions) + tools
    with sdk_logging_skipped(sys.modules[MCPServer.__module__], settings.log_level):
        server = MCPServer(
            name="mcp-cloudops",
            title="mcp-cloudops",
            instructions=instructions(registry, settings, specs),
            version=__version__,
            tools=tools,
            log_level="WARNING",
            lifespan=connections.session,
            middleware=[sessions],
            request_state_security=request_state_security(settings),
        )
    server.middleware.insert(0, confirmation.remember_sealed_round)  # before the SDK unseals the round
    announce_tool_list_changes(server)
    install_log_redaction(redactor)  # after MCPServer, which may have installed the log handler
    confirmation.unpredictable_request_ids()
    return server


def settled() -> None:
    """For a process that serves one server from now on (`serve` calls it once the server is built): what
    exists now lives as long as the process (the registry and its schemas, the SDK's modules), so it is kept
    out of the cyclic garbage collector, whose full passes walked all of it, about 90,000 objects and 50 ms
    on the event loop every few hundred calls: the calls' p99. gc.freeze, as long-running Python servers do.
    Not in build_server: a process that builds servers again and again (tests, an embedding) would keep
    each one's cycles for good (~1.2 MB a server)."""
    gc.freeze()


def request_state_security(settings: Settings) -> RequestStateSecurity | None:
    """Shared keys (MCP_CLOUDOPS_STATE_KEYS) seal a 2026-07-28 confirmation round so that any replica can open
    the user's answer; without them the SDK's process-local key, right for one process."""
    if settings.state_keys is None:
        return None
    keys = [key.strip() for key in settings.state_keys.get_secret_value().split(",") if key.strip()]
    return RequestStateSecurity(keys=keys)


def announce_tool_list_changes(server: MCPServer) -> None:
    """Declare tools.listChanged to handshake-era clients: a session's list changes when it enables a
    toolset (or could, with a header). The SDK takes the flag only as an argument of
    create_initialization_options, which it calls itself; this passes it on every call."""
    lowlevel = server._lowlevel_server
    create = lowlevel.create_initialization_options

    def with_tools_changed(notification_options: NotificationOptions | None = None, *args: Any, **kw: Any) -> Any:
        options = notification_options or NotificationOptions()
        options.tools_changed = True
        return create(options, *args, **kw)

    lowlevel.create_initialization_options = with_tools_changed  # type: ignore[method-assign]


def discovery_tools(registry: Registry, settings: Settings, sessions: SessionToolsets) -> list[Tool]:
    """The two tools of --dynamic-toolsets (tools.yaml `discovery`): list the toolsets, enable one."""
    discovery = registry.discovery_tools()
    listing, enabling = discovery.list, discovery.enable
    toolsets = list(sessions.tools)  # registry order, as list-toolsets shows them

    async def list_toolsets(ctx: Context, **arguments: Any) -> CallToolResult:
        if arguments:
            return failed(f"{listing.name} takes no arguments (got {', '.join(sorted(arguments))[:200]}).")
        accounts, who = settings.accounts_for(registry), who_calls(settings)
        configured = {  # of the accounts this caller may use
            key: any(account.configured(registry.providers[key]) for account in accounts.usable(key, who).values())
            for key in toolsets
        }
        return ok({"toolsets": sessions.listing(ctx.request_context, configured)})

    async def enable_toolset(ctx: Context, **arguments: Any) -> CallToolResult:
        toolset = arguments.get("toolset")
        if set(arguments) != {"toolset"} or toolset not in sessions.tools:
            return failed(
                f"{enabling.name} takes one argument, toolset: one of {', '.join(toolsets)} "
                f"(see {listing.name}). Fix it and call again."
            )
        try:
            added, already = sessions.enable(ctx.request_context, toolset)
        except LookupError:
            return failed(
                "This HTTP connection has no MCP session to remember toolsets in (a --stateless server, or a "
                f"client speaking MCP 2026-07-28): send the header X-MCP-Toolsets: {toolset} with each request."
            )
        if not already:
            await tool_list_changed(ctx)
        return ok({"toolset": toolset, "enabled": True, "already_enabled": already, "tools": added})

    read_only = ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    toolset_param = {"type": "string", "enum": toolsets, "description": enabling.param}
    return [
        meta_tool(listing, list_toolsets, {"type": "object", "properties": {}}, read_only),
        meta_tool(
            enabling,
            enable_toolset,
            {"type": "object", "properties": {"toolset": toolset_param}, "required": ["toolset"]},
            read_only,  # it changes what this session sees, nothing anywhere else
        ),
    ]


async def tool_list_changed(ctx: Context) -> None:
    """Tell the client to fetch tools/list again: on its session (handshake era) or, for 2026-07-28
    clients, through the server's subscription bus."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        await ctx.notify_tools_changed()
    else:
        await ctx.request_context.session.send_tool_list_changed()


def meta_tool(meta: MetaTool, fn: Any, schema: dict[str, Any], hints: ToolAnnotations) -> Tool:
    return Tool(
        fn=fn,
        name=meta.name,
        title=meta.title,
        description=meta.description,
        parameters=schema,
        fn_metadata=FuncMetadata(arg_model=_PassThrough),
        is_async=True,
        context_kwarg="ctx",
        annotations=hints.model_copy(update={"title": meta.title}),
    )


def __getattr__(name: str) -> MCPServer:
    """`mcp`, the module-level server `mcp dev` / `mcp run` look for, built on first use only:
    the CLI builds its own, and importing this module should not cost a registry load."""
    if name == "mcp":
        registry, settings = load_registry(), Settings.from_env()
        if settings.sandbox:  # the Inspector passes few variables through: this one is enough to try it
            from mcp_cloudops.sandbox.runner import run_sandbox_in_background

            settings = Settings.from_env(sandboxed(os.environ, registry, run_sandbox_in_background().env))
        server = build_server(settings, registry)
        globals()["mcp"] = server
        return server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
