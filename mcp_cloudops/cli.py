"""`mcp-cloudops`: serve (stdio | streamable HTTP, optionally against the sandbox), list-tools, check.

Logs go to stderr only: on stdio, stdout carries nothing but the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from mcp_cloudops.policy import PolicyError, select_tools
from mcp_cloudops.registry import Registry, RegistryError, ToolSpec, load_registry
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.web import descriptor_warning, http_app, is_loopback, limited_h11

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

COMMANDS = ("serve", "list-tools", "check", "-h", "--help")


def configure_logging() -> None:
    level = os.environ.get("MCP_CLOUDOPS_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mcp_cloudops").setLevel(level)
    # httpx logs every request URL at INFO; URLs are not for logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def hint_flags(tool_hints: object) -> str:
    names = ("readOnly", "destructive", "idempotent", "openWorld")
    return ",".join(name for name in names if getattr(tool_hints, name))


def list_tools(registry: Registry, fmt: str, tools: Sequence[ToolSpec] | None = None) -> str:
    """The tools (all, or those a policy selected) as text, JSON or the README's Markdown table."""
    selected = registry.tools if tools is None else tools
    rows = [{"name": t.name, "provider": t.provider, "title": t.title, "hints": t.hints.model_dump()} for t in selected]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "markdown":
        lines = ["| tool | provider | readOnly | destructive | idempotent |", "|---|---|---|---|---|"]
        for t in selected:
            h = t.hints
            marks = ["yes" if v else "no" for v in (h.readOnly, h.destructive, h.idempotent)]
            lines.append(f"| `{t.name}` | {registry.providers[t.provider].title} | " + " | ".join(marks) + " |")
        return "\n".join(lines)
    width = max((len(t.name) for t in selected), default=0)
    return "\n".join(f"{t.name:<{width}}  {t.provider:<9}  {hint_flags(t.hints)}" for t in selected)


def check(registry: Registry, settings: Settings) -> str:
    """Which providers are ready: the registry is valid, and which credential variables are set."""
    lines = [f"tools.yaml: OK ({len(registry.tools)} tools, {len(registry.providers)} providers)"]
    for provider in registry.providers.values():
        status = settings.credential_status(provider)
        ready = all(status.values())
        detail = ", ".join(f"{name} {'set' if ok else 'MISSING'}" for name, ok in status.items())
        count = sum(1 for t in registry.tools if t.provider == provider.key)
        lines.append(f"{provider.key:<9} {'ready' if ready else 'not ready':<9} {count:>2} tools  {detail}")
    return "\n".join(lines)


async def serve_http(server: MCPServer, settings: Settings, host: str, port: int) -> None:
    """Serve /mcp with uvicorn, whose connections get a head deadline, an idle timeout and a cap (web.py)."""
    import resource

    import uvicorn

    app = http_app(server, host, settings.http_token, settings.stateless)
    protocol = limited_h11(settings.http_header_timeout, settings.http_max_connections)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        timeout_keep_alive=settings.http_idle_timeout,  # typed int, but a float works (call_later)
        backlog=settings.http_max_connections,  # also how many asyncio accepts at once, before the cap sees them
        log_level="warning",
        access_log=False,
    )
    log = logging.getLogger("mcp_cloudops")
    warning = descriptor_warning(settings.http_max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    if warning:
        log.warning("%s", warning)
    mode = "stateless " if settings.stateless else ""
    log.info("%sstreamable HTTP on http://%s:%d/mcp", mode, host, port)
    await uvicorn.Server(config).serve()


async def serve(args: argparse.Namespace, registry: Registry) -> None:
    from mcp_cloudops.server import build_server

    async def run(settings: Settings) -> None:
        server = build_server(settings, registry)
        if args.transport == "http":
            await serve_http(server, settings, args.host, args.port)
        else:
            await server.run_stdio_async()

    if not args.sandbox:
        await run(Settings.from_env())
        return
    from mcp_cloudops.sandbox.runner import run_sandbox

    async with run_sandbox() as sandbox:
        logging.getLogger("mcp_cloudops").info(
            "sandbox simulators: %s", ", ".join(f"{k}={v}" for k, v in sandbox.addresses.items())
        )
        await run(Settings.from_env({**os.environ, **sandbox.env}))


FLAG_ENV = {
    "read_only": "MCP_CLOUDOPS_READ_ONLY",
    "toolsets": "MCP_CLOUDOPS_TOOLSETS",
    "tools": "MCP_CLOUDOPS_TOOLS",
    "exclude_tools": "MCP_CLOUDOPS_EXCLUDE_TOOLS",
    "confirm_fallback": "MCP_CLOUDOPS_CONFIRM_FALLBACK",
    "show_operation_secrets": "MCP_CLOUDOPS_SHOW_OPERATION_SECRETS",
    "http_token": "MCP_CLOUDOPS_HTTP_TOKEN",
    "stateless": "MCP_CLOUDOPS_STATELESS",
    "http_header_timeout": "MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT",
    "http_idle_timeout": "MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT",
    "http_max_connections": "MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS",
}


def flags_as_env(args: argparse.Namespace) -> dict[str, str]:
    """Each flag has an environment twin; flags win. One source (the environment) for Settings."""
    overlay: dict[str, str] = {}
    for flag, name in FLAG_ENV.items():
        value = getattr(args, flag, None)
        if value is True:
            overlay[name] = "1"
        elif isinstance(value, str):
            overlay[name] = value
    return overlay


def parser() -> argparse.ArgumentParser:
    policy = argparse.ArgumentParser(add_help=False)
    policy.add_argument(
        "--read-only",
        action="store_true",
        default=None,
        help="offer only read-only tools; the upstream layer refuses anything but GET",
    )
    policy.add_argument("--toolsets", metavar="LIST", help="providers to offer, e.g. incus,exoscale")
    policy.add_argument("--tools", metavar="LIST", help="only these tools (comma-separated names)")
    policy.add_argument("--exclude-tools", metavar="LIST", help="never these tools")
    policy.add_argument(
        "--confirm-fallback",
        choices=("allow", "refuse"),
        help="destructive calls from clients that cannot confirm by elicitation (default allow)",
    )
    root = argparse.ArgumentParser(prog="mcp-cloudops", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command")
    run = commands.add_parser("serve", parents=[policy], help="run the MCP server (default)")
    run.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    run.add_argument("--host", default="127.0.0.1", help="HTTP bind address; beyond loopback needs a token")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument(
        "--http-token",
        metavar="TOKEN",
        help="require Authorization: Bearer TOKEN; several comma-separated, one per agent "
        "(prefer MCP_CLOUDOPS_HTTP_TOKEN: flags show in ps)",
    )
    run.add_argument(
        "--stateless", action="store_true", default=None, help="no session state, for replicas behind a load balancer"
    )
    run.add_argument(
        "--http-header-timeout", metavar="SECONDS", help="a request head must arrive within this (default 10)"
    )
    run.add_argument(
        "--http-idle-timeout", metavar="SECONDS", help="close idle keep-alive connections after this (default 15)"
    )
    run.add_argument(
        "--http-max-connections",
        metavar="N",
        help="open HTTP connections at most; beyond it the longest-idle one is closed (default 256)",
    )
    run.add_argument(
        "--sandbox", action="store_true", help="start local simulators of every API and use them (no account)"
    )
    run.add_argument(
        "--show-operation-secrets",
        action="store_true",
        default=None,
        help="show the secrets of Incus operations (exec fds, join tokens) in results; masked by default",
    )
    tools = commands.add_parser("list-tools", parents=[policy], help="print the tools with their provider and hints")
    fmt = tools.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json")
    fmt.add_argument("--markdown", dest="format", action="store_const", const="markdown")
    commands.add_parser(
        "check", parents=[policy], help="validate tools.yaml and report which providers have credentials"
    )
    return root  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in COMMANDS:
        words.insert(0, "serve")  # `mcp-cloudops --transport http` means serve
    args = parser().parse_args(words)
    command = args.command
    os.environ.update(flags_as_env(args))
    configure_logging()
    try:
        settings = Settings.from_env()
        registry = load_registry()
        selected = select_tools(registry, settings)
    except (ConfigError, RegistryError, PolicyError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if command in ("list-tools", "check"):
        if command == "list-tools":
            text = list_tools(registry, args.format or "text", selected)
        else:
            text = check(registry, settings)
        with contextlib.suppress(BrokenPipeError):  # e.g. piped into `head`
            print(text, flush=True)
        return 0
    if args.transport == "http" and not is_loopback(args.host) and settings.http_token is None:
        print(
            f"refusing to bind {args.host} without a token: set MCP_CLOUDOPS_HTTP_TOKEN (or --http-token), "
            "or bind a loopback address",
            file=sys.stderr,
        )
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, args, registry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
