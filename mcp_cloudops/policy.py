"""Which tools exist: one filter for read-only mode, toolsets and allow/deny lists.

Hints tell a client what a tool does; this decides what the server offers at all. A tool that
is filtered out is not registered, so no client can call it whatever it believes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_cloudops.accounts import Account, Caller
from mcp_cloudops.registry import Registry
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.settings import Settings

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken


class PolicyError(ValueError):
    """A policy names a toolset or tool that does not exist."""


def enabled(tool: ToolSpec, settings: Settings) -> bool:
    if settings.read_only and (tool.mutating or tool.credential):  # a credential would let its holder write
        return False
    if settings.toolsets is not None and tool.provider not in settings.toolsets:
        return False
    if settings.tools is not None and tool.name not in settings.tools:
        return False
    return tool.name not in settings.exclude_tools


def check_names(registry: Registry, settings: Settings) -> None:
    """Refuse at start a toolset or tool name that matches nothing: a typo must not widen or empty the set."""
    for flag, chosen in (("--toolsets", settings.toolsets), ("--tools", settings.tools)):
        if chosen is not None and not chosen:
            raise PolicyError(f"{flag} lists no names: give at least one, or leave it out for all")
    unknown_sets = sorted((settings.toolsets or set()) - set(registry.providers))
    if unknown_sets:
        raise PolicyError(f"unknown toolset(s) {', '.join(unknown_sets)}; known: {', '.join(registry.providers)}")
    named = (settings.tools or set()) | settings.exclude_tools
    unknown = sorted(named - set(registry.by_name))
    if unknown:
        raise PolicyError(f"unknown tool(s) {', '.join(unknown)}; see `mcp-cloudops list-tools`")
    if settings.confirm_fallback not in ("allow", "refuse"):
        raise PolicyError(f"confirm fallback must be allow or refuse, not {settings.confirm_fallback!r}")


def select_tools(registry: Registry, settings: Settings) -> tuple[ToolSpec, ...]:
    check_names(registry, settings)
    selected = tuple(tool for tool in registry.tools if enabled(tool, settings))
    check_steps(selected)
    return selected


def check_steps(selected: tuple[ToolSpec, ...]) -> None:
    """A tool whose flow calls another tool (tools.yaml `attach_all`) is offered only with it: refused at
    start, never a failure in the middle of an agent's task."""
    names = {tool.name for tool in selected}
    for tool in selected:
        for field, step in tool.steps().items():
            if step.tool not in names:
                raise PolicyError(
                    f"{tool.name} calls {step.tool} ({field} in tools.yaml), which this policy leaves out: "
                    f"offer {step.tool} too, or leave {tool.name} out (--tools, --exclude-tools, --toolsets)"
                )


def access_token(settings: Settings) -> AccessToken | None:
    """This request's OAuth access token, or None: no OAuth endpoint, or no token (stdio)."""
    if not settings.oauth:
        return None
    from mcp.server.auth.middleware.auth_context import get_access_token

    return get_access_token()


def who_calls(settings: Settings) -> Caller:
    """Who this request comes from, as accounts see it: on an OAuth endpoint, the token's subject and groups
    (judged per request, like its scopes); anywhere else, or without a token (stdio), everyone."""
    token = access_token(settings)
    if token is None:
        return Caller()
    groups = (token.claims or {}).get("groups") or []
    return Caller(token.subject, frozenset(group for group in groups if isinstance(group, str)), everyone=False)


def may_write(settings: Settings) -> bool:
    """Whether the caller of this request may change things: never under --read-only; on an OAuth endpoint,
    only with the write scope (judged per request, like the tools it may call)."""
    if settings.read_only:
        return False
    if not settings.oauth:
        return True
    token = access_token(settings)
    return token is not None and settings.oauth_write_scope in token.scopes


def read_only_refusal(
    settings: Settings,
    tool: ToolSpec,
    provider: Provider,
    *,
    method: str = "GET",
    runs_commands: bool = False,
    account: Account | None = None,
) -> str | None:
    """Why read-only mode, or a read-only account, refuses to send this, or None. Checked where requests
    leave the server, behind the filter above: a tool registered by mistake still cannot write (any method
    but GET) or open a session that can run a command."""
    if method == "GET" and not runs_commands and not tool.credential:
        return None
    if runs_commands:
        what = f"{tool.name}'s websocket, which can run commands"
    elif method == "GET":
        what = f"{tool.name}, whose result is a credential,"
    else:
        what = f"{method} for {tool.name}"
    if settings.read_only:
        return (
            f"Read-only mode: mcp-cloudops refuses to send {what} to {provider.title}. "
            "Restart the server without --read-only (MCP_CLOUDOPS_READ_ONLY) to allow changes."
        )
    if account is not None and account.read_only:
        return (
            f"Account {account.name!r} of {provider.title} is read-only ({account.source}): mcp-cloudops refuses "
            f"to send {what}. Nothing was changed. Use an account that may write, if the user has one."
        )
    return None
