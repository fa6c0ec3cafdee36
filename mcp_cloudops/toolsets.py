"""Which of the offered tools a session sees: every one (the default), the toolsets an HTTP client
names in `X-MCP-Toolsets`, or, with --dynamic-toolsets, only the two discovery tools until the
session enables a toolset.

Every offered tool is registered once; a middleware decides per request. tools/list is filtered,
and tools/call of a tool the session does not see is refused with the toolset to enable, so a
hidden tool cannot be called whatever a client believes. A session is the stdio client, or one
`Mcp-Session-Id` over HTTP. Over HTTP without one (a --stateless server, a client speaking MCP
2026-07-28, where each request stands alone), nothing carries over, and the header is the way.

In OAuth mode the caller's access token narrows this further, per request (a refreshed token with other
scopes changes the list at once): the read scope reaches the read-only tools, the write scope every tool.
Which tools need the write scope comes from the registry's hints: those that change things, and those whose
result is a credential (it lets its holder write), as --read-only decides. A call beyond the token's scope is
written to the audit journal as `refused`, with who asked, like a call the user did not confirm.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import ServerRequestContext
from mcp_types import CallToolResult, TextContent
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_cloudops.accounts import ACCOUNT, Account, Accounts, Caller
from mcp_cloudops.audit import Journal, caller
from mcp_cloudops.nearest import nearest
from mcp_cloudops.policy import who_calls
from mcp_cloudops.registry import Registry
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.schema import account_param, param_schema
from mcp_cloudops.settings import Settings

HEADER = "x-mcp-toolsets"


class SessionToolsets:
    """The toolsets each session has enabled, and what that lets it see."""

    def __init__(
        self, registry: Registry, offered: Sequence[ToolSpec], settings: Settings, journal: Journal | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.journal = journal
        self.specs = {tool.name: tool for tool in offered}
        self.dynamic = settings.dynamic_toolsets
        self.tools: dict[str, list[str]] = {}  # toolset -> its offered tools, in registry order
        for tool in offered:
            self.tools.setdefault(tool.provider, []).append(tool.name)
        if self.dynamic:
            discovery = registry.discovery_tools()
            self.discovery = frozenset({discovery.list.name, discovery.enable.name})
        else:
            self.discovery = frozenset()
        self._by_connection: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        self._local: set[str] = set()
        self.everything = self.discovery | frozenset(tool.name for tool in offered)
        self.writes = frozenset(tool.name for tool in offered if tool.mutating or tool.credential)

    # -- sessions ---------------------------------------------------------------------------------

    def _store(self, ctx: ServerRequestContext[Any, Any]) -> set[str] | None:
        """The session's enabled toolsets, or None when the request belongs to no lasting session."""
        if ctx.request is None:
            return self._local  # stdio (or in memory): this process serves one client, whatever its era
        if self.settings.stateless or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None  # over HTTP each such request stands alone: nothing carries over to the next one
        # The SDK's per-client connection (one streamable HTTP session) lives as long as the session;
        # ServerSession objects are made per request. Private: tests fail if that changes.
        connection = getattr(ctx.session, "_connection", None)
        return None if connection is None else self._by_connection.setdefault(connection, set())

    def chosen(self, ctx: ServerRequestContext[Any, Any]) -> set[str] | None:
        """The toolsets named in the request's X-MCP-Toolsets header (known and offered ones), or None."""
        raw = _header(ctx, HEADER)
        if raw is None:
            return None
        return {name.strip().lower() for name in raw.split(",") if name.strip().lower() in self.tools}

    def visible(self, ctx: ServerRequestContext[Any, Any]) -> frozenset[str] | None:
        """The tool names this request may see and call: its session's toolsets, within its token's scopes;
        None for every offered tool."""
        enabled = self.enabled_tools(ctx)
        beyond = self.out_of_scope(ctx)
        if not beyond:
            return enabled
        return (self.everything if enabled is None else enabled) - beyond

    def enabled_toolsets(self, ctx: ServerRequestContext[Any, Any]) -> set[str]:
        """The toolsets this request's session enabled, and those its header names."""
        return (self._store(ctx) or set()) | (self.chosen(ctx) or set())

    def enabled_tools(self, ctx: ServerRequestContext[Any, Any]) -> frozenset[str] | None:
        """The tools of the toolsets this session enabled or its header names; None for every offered tool."""
        if not self.dynamic and _header(ctx, HEADER) is None:
            return None
        enabled = self.enabled_toolsets(ctx)
        return self.discovery | frozenset(name for toolset in enabled for name in self.tools.get(toolset, ()))

    def out_of_scope(self, ctx: ServerRequestContext[Any, Any]) -> frozenset[str]:
        """The tools the caller's OAuth access token does not reach: with the read scope only, those that need
        the write scope; with neither (the HTTP layer refuses such a token first), all. None are, without
        OAuth, or on stdio: no HTTP request, no token, the user who started the server."""
        if not self.settings.oauth or ctx.request is None:
            return frozenset()
        token = get_access_token()
        granted = set(token.scopes) if token is not None else set()
        if self.settings.oauth_write_scope in granted:  # the write scope reaches every tool, reads included
            return frozenset()
        return self.writes if self.settings.oauth_read_scope in granted else self.everything

    def enable(self, ctx: ServerRequestContext[Any, Any], toolset: str) -> tuple[list[str], bool]:
        """Enable `toolset` for the session: the tools it adds and whether it was already on."""
        store = self._store(ctx)
        if store is None:
            raise LookupError("no session")
        already = toolset in self.enabled_toolsets(ctx)
        store.add(toolset)
        beyond = self.out_of_scope(ctx)
        return [name for name in self.tools[toolset] if name not in beyond], already

    def listing(self, ctx: ServerRequestContext[Any, Any], configured: Mapping[str, bool]) -> list[dict[str, Any]]:
        enabled = self.enabled_toolsets(ctx)
        beyond = self.out_of_scope(ctx)
        return [
            {
                "name": key,
                "title": self.registry.providers[key].title,
                "description": self.registry.providers[key].summary or self.registry.providers[key].title,
                "tools": len([name for name in names if name not in beyond]),
                "enabled": key in enabled,
                "configured": configured.get(key, False),
            }
            for key, names in self.tools.items()
        ]

    # -- the middleware ---------------------------------------------------------------------------

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        if ctx.method == "tools/list":
            result = await call_next(ctx)
            if not (isinstance(result, dict) and isinstance(result.get("tools"), list)):
                return result
            visible = self.visible(ctx)
            tools = [t for t in result["tools"] if visible is None or t.get("name") in visible]
            return {**result, "tools": self.accounts_view(tools)}
        if ctx.method == "tools/call":
            name = (ctx.params or {}).get("name")
            if isinstance(name, str) and name in self.out_of_scope(ctx):
                reason = self.scope_refusal(name)
                await self.journal_refusal(ctx, name, reason)
                return CallToolResult(content=[TextContent(type="text", text=reason)], is_error=True)
            visible = self.visible(ctx)
            if visible is not None and isinstance(name, str) and name not in visible:
                return self.hidden(ctx, name)
            if isinstance(name, str) and name not in self.everything:
                return self.unknown(ctx, name)
        return await call_next(ctx)

    def accounts_view(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`tools` as this caller sees them: a tool whose provider has no account the caller may use (for one
        that writes, none it may write with) is left out, and an `account` choice lists only the caller's
        accounts, with the default it gets. Judged from the token and the configuration only, per request."""
        accounts = self.settings.accounts
        who = who_calls(self.settings)
        if accounts is None or (who.everyone and not any(account.read_only for account in accounts)):
            return tools  # nothing varies by caller
        seen = []
        for tool in tools:
            spec = self.specs.get(tool.get("name", ""))
            if spec is None:
                seen.append(tool)  # the discovery tools
                continue
            if usable := usable_accounts(spec, accounts, who):
                seen.append(with_account_choice(tool, accounts, self.registry.providers[spec.provider], usable))
        return seen

    def scope_refusal(self, name: str) -> str:
        """Why a call beyond the token's scope is refused, as a tool error rather than an HTTP 403: the call
        arrives inside an MCP message whose HTTP answer is already under way (and in one session with others),
        and the tool was not listed for this token anyway."""
        needed = self.settings.oauth_write_scope if name in self.writes else self.settings.oauth_read_scope
        why = "changes things or returns a credential, so it " if name in self.writes else ""
        return (
            f"{name} {why}needs the OAuth scope {needed}, which this access token does not grant: sign in again "
            f"asking for {needed} (the authorization server decides who may have it), then call {name} again."
        )

    async def journal_refusal(self, ctx: ServerRequestContext[Any, Any], name: str, reason: str) -> None:
        """A `refused` record naming the session and the token's subject, as confirmation.py writes for a call
        the user declined: the journal shows who tried what they may not. Only offered tools are journaled: the
        discovery tools are beyond the scope of no token that gets this far (one with neither scope gets 403)."""
        spec = self.specs.get(name)
        if self.journal is None or spec is None:
            return
        await self.journal.refused(spec, reason, *caller(ctx))  # caller takes a middleware's context as well

    def callable_names(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, str]:
        """The tools this request may see and call (name -> toolset), as its tools/list shows them."""
        visible = self.visible(ctx)
        names = self.everything if visible is None else visible
        accounts, who = self.settings.accounts, who_calls(self.settings)
        usable = {}
        for name in names:
            spec = self.specs.get(name)
            if spec is None:
                usable[name] = ""  # a discovery tool
            elif accounts is None or usable_accounts(spec, accounts, who):
                usable[name] = spec.provider
        return usable

    def unknown(self, ctx: ServerRequestContext[Any, Any], name: str) -> CallToolResult:
        """No such tool for this caller: the nearest names it can call, a provider's name in the request
        weighing most. The same words for a tool that exists but is not this caller's."""
        close = nearest(name, self.callable_names(ctx), {key: {key} for key in self.registry.providers})
        shown = name if len(name) <= 64 else name[:63] + "…"
        if (spec := self.registry.by_name.get(name)) is not None:
            return CallToolResult(content=[TextContent(type="text", text=self.left_out(spec))], is_error=True)
        text = (
            f"Unknown tool {shown!r}. The nearest this caller can use: {', '.join(close)}. Call one of them."
            if close
            else f"Unknown tool {shown!r}: read tools/list for the tools this caller can use."
        )
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)

    def left_out(self, spec: ToolSpec) -> str:
        """Why a tools.yaml tool is not offered: the start-up configuration, which no call can change."""
        if self.settings.read_only and (spec.mutating or spec.credential):
            return (
                f"{spec.name} is not offered: this server runs read-only (--read-only, MCP_CLOUDOPS_READ_ONLY), "
                "so nothing that changes things or returns a credential is. Read tools/list for what is offered."
            )
        return (
            f"{spec.name} is not offered: this server's --toolsets or --tools (MCP_CLOUDOPS_TOOLSETS, "
            "MCP_CLOUDOPS_TOOLS) leave it out. Read tools/list for what is offered."
        )

    def hidden(self, ctx: ServerRequestContext[Any, Any], name: str) -> CallToolResult:
        toolset = next((key for key, names in self.tools.items() if name in names), None)
        if toolset is None:
            return self.unknown(ctx, name)
        if self.dynamic:
            text = (
                f"{name} is in the {toolset} toolset, which this session has not enabled: call "
                f"{self.registry.discovery_tools().enable.name} with toolset={toolset!r}, then call {name} again."
            )
        else:
            text = (
                f"{name} is in the {toolset} toolset, which this session's X-MCP-Toolsets header leaves out: "
                "open a session whose header names it."
            )
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def usable_accounts(spec: ToolSpec, accounts: Accounts, who: Caller) -> dict[str, Account]:
    """The accounts `who` may call this tool in: for one that changes things or hands out a credential, those
    it may write with. None: the tool is not this caller's."""
    return accounts.usable(spec.provider, who, writing=spec.mutating or spec.credential)


def with_account_choice(
    tool: dict[str, Any], accounts: Accounts, provider: Provider, usable: Mapping[str, Account]
) -> dict[str, Any]:
    """A listed tool whose `account` argument offers only `usable`, defaulting as a call naming none would."""
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict) or ACCOUNT not in schema.get("properties", {}):
        return tool
    default = accounts.default_for(provider.key, usable)
    choice = account_param({name: account.description for name, account in usable.items()}, default)
    properties = {**schema["properties"], ACCOUNT: param_schema(choice, provider)}
    required = [name for name in schema.get("required", []) if name != ACCOUNT] + ([] if default else [ACCOUNT])
    listed = {**schema, "properties": properties, "required": required}
    if not required:
        listed.pop("required")
    return {**tool, "inputSchema": listed}


def _header(ctx: ServerRequestContext[Any, Any], name: str) -> str | None:
    headers = getattr(ctx.request, "headers", None)
    return headers.get(name) if headers is not None else None
