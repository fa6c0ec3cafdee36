"""`mcp-cloudops`: serve (stdio | streamable HTTP, optionally against the sandbox), list-tools, check, generate.

Logs go to stderr only: on stdio, stdout carries nothing but the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from mcp_cloudops import health, metrics
from mcp_cloudops.accounts import DEFAULT, ENVIRONMENT, Account, sandboxed
from mcp_cloudops.logs import configure_logging
from mcp_cloudops.policy import PolicyError, select_tools
from mcp_cloudops.provider_checks import Problem, provider_problems
from mcp_cloudops.registry import Registry, RegistryError, load_registry
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.setting_values import Invalid, as_port, is_loopback
from mcp_cloudops.settings import ConfigError, Settings, unknown_settings
from mcp_cloudops.web import (
    descriptor_warning,
    host_header_name,
    http_app,
    limited_h11,
    listening_socket,
)

if TYPE_CHECKING:
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    from mcp_cloudops.sandbox.runner import Sandbox


def hint_flags(tool_hints: object) -> str:
    names = ("readOnly", "destructive", "idempotent", "openWorld")
    return ",".join(name for name in names if getattr(tool_hints, name))


def list_tools(registry: Registry, fmt: str, tools: Sequence[ToolSpec] | None = None) -> str:
    """The tools (all, or those a policy selected) as text, JSON or the Markdown table of docs/tools.md, "The tools"."""
    selected = registry.tools if tools is None else tools
    rows = [{"name": t.name, "provider": t.provider, "title": t.title, "hints": t.hints.model_dump()} for t in selected]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "markdown":
        from mcp_cloudops.mirrors import tool_table

        return tool_table(registry, selected)
    width = max((len(t.name) for t in selected), default=0)
    return "\n".join(f"{t.name:<{width}}  {t.provider:<9}  {hint_flags(t.hints)}" for t in selected)


def check(registry: Registry, settings: Settings, selected: Sequence[ToolSpec]) -> tuple[str, int]:
    """Which providers the tools this policy offers can use, and the exit status: 1 when an offered provider
    is configured but cannot be used, or none is ready (a script or CI step must not pass on that), else 0.
    Counts are of the offered tools: the same filters as `serve` (--read-only, toolsets, allow/deny lists)."""
    offered = Counter(tool.provider for tool in selected)
    size = f"{len(registry.tools)} tools, {len(registry.providers)} providers"
    lines = [f"tools.yaml: OK ({size}); {policy(settings, len(selected))}"]
    ready: list[str] = []
    unusable: list[str] = []
    accounts = settings.accounts_for(registry)
    for provider in registry.providers.values():
        count = offered[provider.key]
        own = accounts.of(provider.key)
        states = {name: account_state(account, provider, count) for name, account in own.items()}
        state = provider_state([state for state, _ in states.values()])
        if list(own) == [DEFAULT] and own[DEFAULT].source == ENVIRONMENT:  # one account: as it always read
            lines.append(f"{provider.key:<9} {state:<9} {count:>2} tools  {status(own[DEFAULT], provider)}")
            lines += [f"  {problem.text}" for problem in states[DEFAULT][1]]
        else:
            lines.append(f"{provider.key:<9} {state:<9} {count:>2} tools  {len(own)} accounts")
            for name, account in own.items():
                default = " (default)" if name == accounts.defaults.get(provider.key) else ""
                state_of, source = states[name][0], account.source
                lines.append(f"  {name}{default}: {state_of}, from {source}; {status(account, provider)}")
                lines += [f"    {problem.text}" for problem in states[name][1]]
        if state in ("ready", "unusable"):
            (ready if state == "ready" else unusable).append(provider.key)
    lines += [f"skipped: {line}" for line in accounts.skipped]
    if unusable:
        lines.append(f"not ready: {', '.join(unusable)} configured but not usable: fix the lines above")
    elif not ready:
        lines.append(
            "not ready: no offered provider is configured: set one's variables "
            '(see docs/configuration.md, "Providers")'
        )
    return "\n".join(lines), 1 if unusable or not ready else 0


def policy(settings: Settings, offered: int) -> str:
    """What the policy offers and which filters chose it, for `check`'s first line."""
    filters = ["--read-only"] if settings.read_only else []
    filters += [f"--toolsets {','.join(sorted(settings.toolsets))}"] if settings.toolsets is not None else []
    filters += [f"--tools ({len(settings.tools)} named)"] if settings.tools is not None else []
    filters += [f"--exclude-tools ({len(settings.exclude_tools)} named)"] if settings.exclude_tools else []
    return f"this policy offers {offered} tools" + (f" ({', '.join(filters)})" if filters else "")


def account_state(account: Account, provider: Provider, offered: int) -> tuple[str, list[Problem]]:
    """off (no tool offered), unusable (configured, but something is wrong or missing), ready, or not set;
    and what is wrong."""
    if not offered:
        return "off", []
    problems = provider_problems(account, provider)
    if problems:
        return "unusable", problems
    return ("ready" if account.configured(provider) else "not set"), []


def provider_state(states: Sequence[str]) -> str:
    """A provider's state from its accounts': unusable if one is, else ready if one is."""
    return next((state for state in ("off", "unusable", "ready") if state in states), "not set")


def status(account: Account, provider: Provider) -> str:
    """Which of an account's variables are set (never their values)."""
    return ", ".join(f"{name} {'set' if ok else 'MISSING'}" for name, ok in account.credential_status(provider).items())


def offered_problems(settings: Settings, registry: Registry, selected: Sequence[ToolSpec]) -> list[Problem]:
    """What is wrong with the accounts of the providers whose tools are offered (one left out by the policy
    cannot fail a call). Not under --sandbox: the simulators' addresses replace the providers' settings."""
    keys = {tool.provider for tool in selected}
    accounts = settings.accounts_for(registry)
    return [
        problem
        for provider in registry.providers.values()
        if provider.key in keys
        for account in accounts.of(provider.key).values()
        for problem in provider_problems(account, provider)
    ]


def announcing(config: uvicorn.Config, announce: Callable[[], None]) -> uvicorn.Server:
    """uvicorn's Server, calling `announce` once it serves (socket listening, app started), not before."""
    import uvicorn

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce()

    return Announcing(config)


async def serve_http(
    server: MCPServer, settings: Settings, host: str, sock: socket.socket, metrics_sock: socket.socket | None = None
) -> None:
    """Serve /mcp with uvicorn on `sock` (bound by the caller, so a port in use stops the start with one line),
    its connections with head and body deadlines, an idle timeout and a cap (web.py)."""
    import resource

    import uvicorn

    from mcp_cloudops.oauth import ResourceServer

    oauth = ResourceServer.from_settings(settings)
    app = health.probes(http_app(server, host, settings.http_token, settings.stateless, oauth))
    protocol = limited_h11(settings.http_header_timeout, settings.http_max_connections, settings.http_body_timeout)
    config = uvicorn.Config(
        app,
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
    where = f"http://{host_header_name(host)}:{sock.getsockname()[1]}/mcp"
    if oauth is not None:
        log.info(
            "OAuth: access tokens from %s for %s (scopes %s); metadata at %s",
            oauth.issuer, oauth.resource, " ".join(oauth.scopes), oauth.metadata_url,
        )  # fmt: skip
    with sock:
        async with metrics.exporting(server, metrics_sock, settings):
            await announcing(config, lambda: log.info("%sstreamable HTTP on %s", mode, where)).serve(sockets=[sock])


async def serve(
    args: argparse.Namespace,
    registry: Registry,
    settings: Settings,
    server: MCPServer | None,
    sock: socket.socket | None,
    metrics_sock: socket.socket | None = None,
) -> None:
    """Serve `server` on stdio, or over HTTP on `sock`; with --sandbox (no `server` yet), one built against
    simulators started first."""
    from mcp_cloudops.server import build_server, settled

    async def run(server: MCPServer, settings: Settings) -> None:
        settled()  # this process serves this server from now on
        if sock is not None:
            await serve_http(server, settings, args.host, sock, metrics_sock)
        else:
            await server.run_stdio_async()

    if server is not None:
        await run(server, settings)
        return
    from mcp_cloudops.sandbox.runner import run_sandbox

    async with run_sandbox(team=True) as sandbox:
        logging.getLogger("mcp_cloudops").info(
            "sandbox simulators: %s; account team: %s",
            ", ".join(f"{k}={v}" for k, v in sandbox.addresses.items()),
            ", ".join(f"{k}={v}" for k, v in (sandbox.team.addresses if sandbox.team else {}).items()),
        )
        settings = sandbox_settings(registry, sandbox)
        await run(build_server(settings, registry), settings)


def sandbox_settings(registry: Registry, sandbox: Sandbox) -> Settings:
    """The environment's settings with every provider's own replaced by the simulators' addresses and
    credentials (accounts.sandboxed): what `serve --sandbox` serves and `check --sandbox` checks."""
    return Settings.from_env(sandboxed(os.environ, registry, sandbox.env))


async def check_sandbox(registry: Registry, selected: Sequence[ToolSpec]) -> tuple[str, int]:
    """`check --sandbox`: the simulators started as `serve --sandbox` starts them, and the check run against
    them; then whether `serve --sandbox` would be ready."""
    from mcp_cloudops.sandbox.runner import run_sandbox

    async with run_sandbox(team=True) as sandbox:
        text, status = check(registry, sandbox_settings(registry, sandbox), selected)
        count = len(sandbox.simulators)
        started = f"sandbox: {count} simulators running on this machine, and {count} more as the team account"
    verdict = (
        "ready: `mcp-cloudops serve --sandbox` serves against these simulators, no account needed"
        if status == 0
        else "the sandbox is not ready: see the lines above"
    )
    first, _, rest = text.partition("\n")
    return "\n".join([first, started, rest, verdict]), status


FLAG_ENV = {
    "read_only": "MCP_CLOUDOPS_READ_ONLY",
    "toolsets": "MCP_CLOUDOPS_TOOLSETS",
    "tools": "MCP_CLOUDOPS_TOOLS",
    "exclude_tools": "MCP_CLOUDOPS_EXCLUDE_TOOLS",
    "confirm_fallback": "MCP_CLOUDOPS_CONFIRM_FALLBACK",
    "confirm_remember": "MCP_CLOUDOPS_CONFIRM_REMEMBER",
    "show_operation_secrets": "MCP_CLOUDOPS_SHOW_OPERATION_SECRETS",
    "http_token": "MCP_CLOUDOPS_HTTP_TOKEN",
    "oauth_issuer": "MCP_CLOUDOPS_OAUTH_ISSUER",
    "public_url": "MCP_CLOUDOPS_PUBLIC_URL",
    "oauth_groups_claim": "MCP_CLOUDOPS_OAUTH_GROUPS_CLAIM",
    "stateless": "MCP_CLOUDOPS_STATELESS",
    "http_header_timeout": "MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT",
    "http_body_timeout": "MCP_CLOUDOPS_HTTP_BODY_TIMEOUT",
    "http_idle_timeout": "MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT",
    "http_max_connections": "MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS",
    "audit_log": "MCP_CLOUDOPS_AUDIT_LOG",
    "audit_reads": "MCP_CLOUDOPS_AUDIT_READS",
    "dynamic_toolsets": "MCP_CLOUDOPS_DYNAMIC_TOOLSETS",
    "sandbox": "MCP_CLOUDOPS_SANDBOX",
    "metrics_port": "MCP_CLOUDOPS_METRICS_PORT",
    "metrics_host": "MCP_CLOUDOPS_METRICS_HOST",
    "accounts": "MCP_CLOUDOPS_ACCOUNTS",
    "cli_accounts": "MCP_CLOUDOPS_CLI_ACCOUNTS",
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


def flag_names(args: argparse.Namespace) -> dict[str, str]:
    """Variable -> the flag that set it on this command line: errors name what the user typed."""
    given = flags_as_env(args)
    return {name: "--" + flag.replace("_", "-") for flag, name in FLAG_ENV.items() if name in given}


class VersionAction(argparse.Action):
    """--version: the installed package's version (pyproject.toml's), looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        import mcp_cloudops

        print(f"mcp-cloudops {mcp_cloudops.__version__}")  # stdout, like every --version
        parser.exit(0)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (exit 2), like every other configuration error; the root one
    knows its commands (`commands`: name -> the command's parser)."""

    commands: dict[str, Parser]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def flags(self) -> list[str]:
        """Every flag this parser takes, as typed (--read-only)."""
        return [name for action in self._actions for name in action.option_strings]


def spelled_like(word: str, choices: Iterable[str]) -> str:
    """ ": did you mean X?" when one of `choices` is spelt like `word` (difflib, as misspelt settings are
    matched; flags without their dashes, which every flag shares), else nothing."""
    bare = {choice.lstrip("-"): choice for choice in choices}
    close = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1)
    return f": did you mean {bare[close[0]]}?" if close else ""


def unknown_command(word: str, commands: Iterable[str]) -> str:
    """A first word that is no command (serve takes none): the command spelt like it, and every command."""
    names = list(commands)
    listed = f"(commands: {', '.join(names)}; see mcp-cloudops --help)"
    return f"mcp-cloudops: {word} is not a command{spelled_like(word, names)} {listed}"


def unknown_arguments(extra: Sequence[str], command: str, commands: dict[str, Parser]) -> str:
    """What is wrong with the words `command` did not take: the first unknown flag, with the flag of this
    command spelt like it, or the command that does take it; else the first stray word."""
    prog, parsed = f"mcp-cloudops {command}", commands[command]
    see = f"(see {prog} --help)"
    flags = [word.split("=", 1)[0] for word in extra if word.startswith("-")]
    if not flags:
        return f"{prog}: unexpected argument {extra[0]!r}: {command} takes flags only {see}"
    flag = flags[0]
    elsewhere = [name for name, other in commands.items() if name != command and flag in other.flags()]
    if elsewhere:
        return f"{prog}: {flag} is a flag of {' and '.join(elsewhere)}, not of {command} {see}"
    return f"{prog}: {flag} is not a flag of {command}{spelled_like(flag, parsed.flags())} {see}"


def port_number(text: str) -> int:
    """--port: the settings' port rule (setting_values.as_port), worded as argparse reports a bad flag."""
    try:
        return as_port(text)
    except Invalid:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 1-65535 (or 0 for any free one)") from None


def parser() -> Parser:
    policy = Parser(add_help=False)
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
        "--accounts",
        metavar="FILE",
        help='more accounts per provider, beside the environment\'s (see docs/configuration.md, "Accounts")',
    )
    policy.add_argument(
        "--cli-accounts",
        action="store_true",
        default=None,
        help="also the accounts of the scw, incus and exo CLIs' own configuration files",
    )
    policy.add_argument(
        "--confirm-fallback",
        choices=("allow", "refuse"),
        help="destructive calls from clients that cannot confirm by elicitation (default allow)",
    )
    policy.add_argument(
        "--confirm-remember",
        metavar="SECONDS",
        help="let a person's yes also cover the same tool on the same target for SECONDS (default 0: off)",
    )
    sandbox = Parser(add_help=False)
    sandbox.add_argument(
        "--sandbox",
        action="store_true",
        help="start local simulators of every API and use them, no account needed (MCP_CLOUDOPS_SANDBOX=1 too)",
    )
    root = Parser(prog="mcp-cloudops", description=__doc__.splitlines()[0])
    root.add_argument("--version", action=VersionAction, help="print the version and exit")
    commands = root.add_subparsers(dest="command", parser_class=Parser)
    run = commands.add_parser("serve", parents=[policy, sandbox], help="run the MCP server (default)")
    run.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    run.add_argument("--host", default="127.0.0.1", help="HTTP bind address; beyond loopback needs a token")
    run.add_argument("--port", type=port_number, default=8000, help="HTTP port (default 8000)")
    run.add_argument(
        "--http-token",
        metavar="TOKEN",
        help="require Authorization: Bearer TOKEN; several comma-separated, one per agent "
        "(prefer MCP_CLOUDOPS_HTTP_TOKEN: flags show in ps)",
    )
    run.add_argument(
        "--oauth-issuer",
        metavar="URL",
        help="accept OAuth access tokens from this authorization server (its issuer URL) instead of --http-token",
    )
    run.add_argument(
        "--public-url",
        metavar="URL",
        help="with --oauth-issuer: this server's MCP URL as clients reach it, e.g. https://mcp.example.com/mcp "
        "(the tokens' audience)",
    )
    run.add_argument(
        "--oauth-groups-claim",
        metavar="CLAIM",
        help="with --oauth-issuer: the token claim listing the user's groups (default groups)",
    )
    run.add_argument(
        "--stateless", action="store_true", default=None, help="no session state, for replicas behind a load balancer"
    )
    run.add_argument(
        "--http-header-timeout", metavar="SECONDS", help="a request head must arrive within this (default 10)"
    )
    run.add_argument(
        "--http-body-timeout",
        metavar="SECONDS",
        help="a request body must arrive within this of its head (default 30)",
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
        "--show-operation-secrets",
        action="store_true",
        default=None,
        help="show the secrets of Incus operations (exec fds, join tokens) in results; masked by default",
    )
    run.add_argument(
        "--audit-log",
        metavar="PATH",
        help="append a JSON line for each change an agent makes: before it is sent, and how it ended",
    )
    run.add_argument("--audit-reads", action="store_true", default=None, help="with --audit-log: journal reads too")
    run.add_argument(
        "--dynamic-toolsets",
        action="store_true",
        default=None,
        help="sessions start with list-toolsets and enable-toolset only, and enable the toolsets they need",
    )
    run.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="serve Prometheus metrics at /metrics on this port, a listener of their own (HTTP transport only)",
    )
    run.add_argument(
        "--metrics-host", metavar="ADDRESS", help="the metrics listener's address (default 127.0.0.1, whatever --host)"
    )
    tools = commands.add_parser("list-tools", parents=[policy], help="print the tools with their provider and hints")
    fmt = tools.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json")
    fmt.add_argument("--markdown", dest="format", action="store_const", const="markdown")
    commands.add_parser(
        "check", parents=[policy, sandbox], help="validate tools.yaml and report which providers have credentials"
    )
    generate = commands.add_parser(
        "generate",
        help="in a source checkout: rewrite every file that mirrors tools.yaml (docs' tool table, bundle, "
        "server.json, tests/snapshots/)",
    )
    generate.add_argument(
        "--check", action="store_true", help="write nothing: list the stale files and exit 1 if there are any"
    )
    root.commands = dict(commands.choices)
    return root  # fmt: skip


def start(args: argparse.Namespace) -> tuple[Settings, Registry, tuple[ToolSpec, ...]]:
    """Settings, registry and the offered tools, every value checked: ConfigError, RegistryError or
    PolicyError say what to fix, one line each (all bad settings at once, misspelt names too)."""
    settings: Settings | None = None
    problems: list[str] = []
    try:
        settings = Settings.from_env(flags=flag_names(args))
    except ConfigError as exc:
        problems = str(exc).splitlines()
    registry = load_registry()
    problems += unknown_settings(os.environ, registry)
    if settings is not None and not problems and not settings.sandbox:  # the sandbox brings its own accounts
        try:
            settings = settings.with_accounts(registry)
        except ConfigError as exc:
            problems += str(exc).splitlines()
    if settings is None or problems:
        raise ConfigError("\n".join(problems))
    return settings, registry, select_tools(registry, settings)


def run_server(args: argparse.Namespace, settings: Settings, registry: Registry, selected: Sequence[ToolSpec]) -> int:
    """`serve`: refuse what cannot work (a value set but wrong, a port in use) with one line each and exit
    status 2, before anything says it serves; warn about providers configured only in part."""
    if args.transport == "http" and not is_loopback(args.host) and settings.http_token is None and not settings.oauth:
        return refuse(
            f"refusing to bind {args.host} without a token: set MCP_CLOUDOPS_HTTP_TOKEN (or --http-token), "
            "or bind a loopback address"
        )  # or OAuth (--oauth-issuer), which docs/team.md, "Signing in with OAuth" shows
    if problem := metrics.stdio_problem(settings, args.transport):
        return refuse(problem)
    problems = [] if settings.sandbox else offered_problems(settings, registry, selected)
    if fatal := [problem.text for problem in problems if problem.fatal]:
        return refuse(*fatal)
    from mcp_cloudops.server import build_server

    try:  # before the bind: what it opens (the audit journal) fails with one line too
        server = None if settings.sandbox else build_server(settings, registry)
    except ConfigError as exc:
        return refuse(str(exc))
    sock = metrics_sock = None
    if args.transport == "http":
        try:
            sock = listening_socket(args.host, args.port, settings.http_max_connections)
            metrics_sock = metrics.metrics_socket(settings)  # None without --metrics-port
        except ConfigError as exc:
            return refuse(str(exc))
    for problem in problems:
        logging.getLogger("mcp_cloudops").warning("%s", problem.text)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, args, registry, settings, server, sock, metrics_sock)
    return 0


def refuse(*lines: str) -> int:
    """Each problem on its own line on stderr, then exit status 2: what every configuration error does."""
    for line in lines:
        print(line, file=sys.stderr)
    return 2


def generate(check_only: bool) -> int:
    """`generate`: every mirror of tools.yaml in this checkout brought up to date, or with --check only named
    (exit 1 when one is stale). Exit 2 when they cannot be made: no checkout here, a broken tools.yaml..."""
    from mcp_cloudops.mirrors import COMMAND, expected, find_checkout, stale, write
    from mcp_cloudops.snapshots import MirrorError

    configure_logging("WARNING")  # the calls made against the sandbox are no news
    try:
        checkout = find_checkout(Path.cwd())
        files = anyio.run(expected, checkout)
    except (MirrorError, RegistryError) as exc:
        return refuse(str(exc))
    paths = list(stale(checkout, files))
    if check_only:
        lines = [f"stale: {path}" for path in paths]
        lines += [f"run `{COMMAND}` in {checkout.root}, then review the diff"] if paths else []
        print("\n".join(lines or [f"every mirror of tools.yaml is current ({len(files)} files)"]))
        return 1 if paths else 0
    write(checkout, files, paths)
    lines = [f"{'deleted' if files[path] is None else 'wrote'} {path}" for path in paths]
    print("\n".join([*lines, "review the diff (git diff)"] if lines else ["every mirror was current: nothing written"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    root = parser()
    if words and not words[0].startswith("-") and words[0] not in root.commands:
        return refuse(unknown_command(words[0], root.commands))
    if not words or words[0] not in (*root.commands, "--version", "--help", "-h"):
        words.insert(0, "serve")  # `mcp-cloudops --transport http` means serve
    args, extra = root.parse_known_args(words)
    if extra:
        return refuse(unknown_arguments(extra, args.command, root.commands))
    if args.command == "generate":
        return generate(args.check)
    os.environ.update(flags_as_env(args))
    try:
        settings, registry, selected = start(args)
    except (ConfigError, RegistryError, PolicyError) as exc:
        return refuse(str(exc))
    configure_logging(settings.log_level)
    if args.command == "serve":
        return run_server(args, settings, registry, selected)
    status = 0
    if args.command == "list-tools":
        text = list_tools(registry, args.format or "text", selected)
    elif settings.sandbox:
        text, status = anyio.run(check_sandbox, registry, selected)
    else:
        text, status = check(registry, settings, selected)
    with contextlib.suppress(BrokenPipeError):  # e.g. piped into `head`
        print(text, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
