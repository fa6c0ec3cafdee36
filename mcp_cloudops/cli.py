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
from ipaddress import ip_address
from typing import TYPE_CHECKING

import anyio

from mcp_cloudops.registry import Registry, RegistryError, load_registry
from mcp_cloudops.settings import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

LOOPBACK_NAMES = ("localhost",)
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


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hint_flags(tool_hints: object) -> str:
    names = ("readOnly", "destructive", "idempotent", "openWorld")
    return ",".join(name for name in names if getattr(tool_hints, name))


def list_tools(registry: Registry, fmt: str) -> str:
    rows = [
        {"name": t.name, "provider": t.provider, "title": t.title, "hints": t.hints.model_dump()}
        for t in registry.tools
    ]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "markdown":
        lines = ["| tool | provider | readOnly | destructive | idempotent |", "|---|---|---|---|---|"]
        for t in registry.tools:
            h = t.hints
            marks = ["yes" if v else "no" for v in (h.readOnly, h.destructive, h.idempotent)]
            lines.append(f"| `{t.name}` | {registry.providers[t.provider].title} | " + " | ".join(marks) + " |")
        return "\n".join(lines)
    width = max(len(t.name) for t in registry.tools)
    return "\n".join(f"{t.name:<{width}}  {t.provider:<9}  {hint_flags(t.hints)}" for t in registry.tools)


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


async def serve_http(server: MCPServer, host: str, port: int) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{host}:*", "127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=[f"http://{host}:*", "http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    logging.getLogger("mcp_cloudops").info("streamable HTTP on http://%s:%d/mcp", host, port)
    await uvicorn.Server(config).serve()


async def serve(args: argparse.Namespace) -> None:
    from mcp_cloudops.server import build_server

    async def run(settings: Settings) -> None:
        server = build_server(settings)
        if args.transport == "http":
            await serve_http(server, args.host, args.port)
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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mcp-cloudops", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command")
    run = commands.add_parser("serve", help="run the MCP server (default)")
    run.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    run.add_argument("--host", default="127.0.0.1", help="HTTP bind address (loopback only)")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument(
        "--sandbox", action="store_true", help="start local simulators of every API and use them (no account)"
    )
    tools = commands.add_parser("list-tools", help="print the tools with their provider and hints")
    fmt = tools.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json")
    fmt.add_argument("--markdown", dest="format", action="store_const", const="markdown")
    commands.add_parser("check", help="validate tools.yaml and report which providers have credentials")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in COMMANDS:
        words.insert(0, "serve")  # `mcp-cloudops --transport http` means serve
    args = parser().parse_args(words)
    command = args.command
    configure_logging()
    try:
        registry = load_registry()
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 2
    if command in ("list-tools", "check"):
        text = (
            list_tools(registry, args.format or "text")
            if command == "list-tools"
            else check(registry, Settings.from_env())
        )
        with contextlib.suppress(BrokenPipeError):  # e.g. piped into `head`
            print(text, flush=True)
        return 0
    if args.transport == "http" and not is_loopback(args.host):
        print(f"refusing to bind {args.host}: only loopback addresses are served", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
