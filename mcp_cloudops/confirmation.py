"""Destructive tools, and tools whose result is a credential, ask the user first through MCP elicitation.

The SDK's resolvers carry the question: a mid-call request on handshake-era connections, an
input-required round trip on 2026-07-28 ones. A client that cannot elicit (Claude Desktop today)
gets the configured fallback: `allow` (its own approval prompt is the check) or `refuse`.

The question is written for a person who may be reviewing a prompt-injected agent: every argument
in full, the ones that say what runs first, nothing that can hide or forge a line, and a call too
large to read is refused rather than shown cut. Consent is the boolean `true`, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve, build_resolver_plans, find_resolved_parameters
from mcp_types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mcp_cloudops import metrics
from mcp_cloudops.accounts import ACCOUNT
from mcp_cloudops.audit import Journal, caller
from mcp_cloudops.redaction import Redactor
from mcp_cloudops.registry_checks import PLACEHOLDER
from mcp_cloudops.registry_models import ToolSpec
from mcp_cloudops.schema import ArgumentError, tool_params
from mcp_cloudops.settings import ConfigError

Run = Callable[..., Awaitable[CallToolResult]]
WhatRuns = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | str]]
TargetOf = Callable[[dict[str, Any]], Awaitable[tuple[str | None, str | None]]]  # (the target, or why it is unread)
Validate = Callable[[Mapping[str, Any]], dict[str, Any]]
REVIEWABLE = 4000  # characters of a question a person can read before answering; a longer call is refused
SPENT_TTL = 600.0  # seconds a 2026-07-28 round's state stays valid (the SDK's request-state TTL)
SPENT_MAX = 10_000  # confirmations remembered as used; the oldest are forgotten first
# Unicode categories a person cannot see or that move text around: controls, format characters
# (bidi overrides and isolates, zero-width), line and paragraph separators, private and unassigned.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt): rendered as nothing, whatever their
# category (the Hangul fillers are letters, variation selectors marks).
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
BLANK_GLYPHS = frozenset({0x2800, 0x1D159})  # visible characters whose glyph is empty: braille blank, null notehead
_RUNS = re.compile(r"(.)\1{2,}", re.DOTALL)

HEADINGS = {  # what follows is each tool's own words (tools.yaml `ask`, which every asking tool has)
    "destructive": "Confirm a destructive change",
    "credential": "Confirm handing out a credential",
    "prepared": "Confirm what a later call will run",
}


class Confirmation(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built when a question is first asked, not at start
    confirm: StrictBool = Field(description="Yes: go ahead")


class Remembering(Confirmation):
    """The answer where --confirm-remember lets a yes also cover the next calls (never a credential tool's)."""

    remember: StrictBool = Field(default=False, description="Also yes to the calls the question names, for a while")


class Remembered:
    """The yeses a person asked to be remembered (--confirm-remember): in this process only, each for its
    seconds, keyed on who answered, the tool, the account and the ids the call acts on."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until: dict[tuple[Any, ...], float] = {}

    def remember(self, key: tuple[Any, ...], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._until = {k: until for k, until in self._until.items() if until > now}  # forget the expired
        self._until[key] = now + self.seconds

    def covers(self, key: tuple[Any, ...], now: float | None = None) -> bool:
        return self._until.get(key, 0.0) > (time.monotonic() if now is None else now)


def acted_on(spec: ToolSpec) -> list[str]:
    """The arguments naming what a call acts on (its listed ids, zone and project): what a remembered yes
    covers, beside who, the tool and the account. A command, a new name or a flag is not part of it."""
    return [p.name for p in spec.params if p.listed_by or p.location == "zone" or p.name == "project"]


def remember_key(spec: ToolSpec, arguments: Mapping[str, Any], principal: str | None) -> tuple[Any, ...]:
    """Who, which tool, which account, and the ids the call acts on."""
    ids = {name: arguments.get(name) for name in acted_on(spec)}
    return principal, spec.name, arguments.get(ACCOUNT), json.dumps(ids, sort_keys=True, default=str)


def remembers(spec: ToolSpec, seconds: float) -> bool:
    """Whether a yes to this tool may be remembered: never one handing out a credential."""
    return seconds > 0 and not spec.credential


def remember_offer(spec: ToolSpec, arguments: Mapping[str, Any], seconds: float, redactor: Redactor) -> str:
    """The question's last line where a yes can be remembered: what it would cover, and for how long."""
    if spec.ask is not None and spec.ask.covers is not None:
        what = PLACEHOLDER.sub(lambda m: shown(redactor.data(arguments.get(m.group(1)))), spec.ask.covers)
    else:
        ids = acted_on(spec)
        what = f"{spec.name} on the same {', '.join(ids)}" if ids else f"every call of {spec.name}"
    return f"Answer remember: true to also allow {what} for {seconds:g} s, unasked."


@dataclass(frozen=True)
class NotAsked:
    """What the question's resolver returns when nobody is asked, and why. The SDK carries only asked
    outcomes between rounds, so a client cannot hand one of these back."""

    why: Literal["invalid", "unasked", "fallback", "refused", "remembered"]
    message: str = ""


def needed(spec: ToolSpec) -> bool:
    return spec.hints.destructive or spec.credential or bool(spec.confirm_given)


def kind(spec: ToolSpec) -> str:
    return "destructive" if spec.hints.destructive else "credential" if spec.credential else "prepared"


def asks(spec: ToolSpec, arguments: Mapping[str, Any]) -> bool:
    """Whether this call is one to ask about: every call, unless tools.yaml `confirm_only` names the
    argument values that make it destructive (stopping an instance, not starting it), or
    `confirm_given` the arguments whose setting must be seen (a Docker exec's environment)."""
    if spec.credential or (spec.hints.destructive and spec.confirm_only is None):
        return True
    if spec.confirm_only is not None:
        return any(arguments.get(name) in values for name, values in spec.confirm_only.items())
    return any(name in arguments for name in spec.confirm_given or ())


def can_elicit(ctx: Context) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def unseen(char: str) -> bool:
    """Whether a person would not see this character as itself: it renders blank or as whitespace
    (other than the ASCII space), not at all, or moves or breaks the text around it."""
    if char == " ":
        return False
    code = ord(char)
    return (
        char.isspace()  # Unicode White_Space: NBSP, ideographic and em spaces...
        or unicodedata.category(char) in HIDDEN_CATEGORIES
        or code in BLANK_GLYPHS
        or any(low <= code <= high for low, high in DEFAULT_IGNORABLE)
    )


def _escaped_char(char: str) -> str:
    if not unseen(char):
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _counted(run: re.Match[str]) -> str:
    char, length = run.group(1), len(run.group())
    if char == " ":
        return f"«{length} spaces»"
    return f"«{length} × U+{ord(char):04X}»" if unseen(char) else run.group()


def shown(value: Any) -> str:
    """One line a person can trust: JSON, with every character that renders blank, invisible or
    line-breaking escaped, and runs of one such character (or of spaces) counted: padding must not
    push the rest of a command out of view."""
    text = _RUNS.sub(_counted, json.dumps(value, ensure_ascii=False))
    return "".join(_escaped_char(char) for char in text)


def _rank(spec: ToolSpec) -> dict[str, tuple[int, int]]:
    """What runs and what it acts on first (required arguments, text typed into a shell), then the
    other arguments, then the server's own limits."""
    ranks = {}
    for index, param in enumerate(tool_params(spec)):
        typed = param.location == "option" and param.json_schema.get("type") == "string"
        if param.required or typed:
            rank = 0
        elif param.location != "option":
            rank = 1
        else:
            rank = 2
        ranks[param.name] = (rank, index)
    return ranks


def action(spec: ToolSpec, arguments: Mapping[str, Any], redactor: Redactor, target: str | None) -> str:
    """What the person allows, in tools.yaml's words (`ask.action`), each {argument} its value as JSON, then
    the target as read: `Delete the Exoscale instance "db-1" (state "stopped", disk-size 100)`."""
    words = spec.ask.action if spec.ask is not None else spec.title

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return shown(redactor.data(arguments[name])) if name in arguments else "(not given)"

    text = PLACEHOLDER.sub(value, words)
    text = text[:1].upper() + text[1:] + (f" {redactor.text(_visible(target))}" if target else "")
    return f"{text} in account {shown(arguments[ACCOUNT])}" if ACCOUNT in arguments else text


def _visible(text: str) -> str:
    return "".join(_escaped_char(char) for char in _RUNS.sub(_counted, text))


def question(
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    redactor: Redactor,
    runs: Mapping[str, Any] | None = None,
    target: str | None = None,
) -> str:
    """The question: what the person allows and on what (tools.yaml `ask`, the target read), what runs as
    the upstream reports it (`runs`, for a call naming it by id), every argument, and what follows."""
    heading = HEADINGS[kind(spec)]
    ranks = _rank(spec)
    names = sorted(arguments, key=lambda name: ranks.get(name, (0, -1)))  # the server's own (account) first
    lines = [f"{heading} ({spec.name}): {action(spec, arguments, redactor, target)}."]
    if runs is not None:
        lines.append("It runs, as the upstream reports it:")
        lines += [f"- {name}: {shown(redactor.data(value))}" for name, value in runs.items()]
        if spec.review is not None and spec.review.unreported:
            lines.append(spec.review.unreported)
    lines.append("With:")
    lines += [f"- {name}: {shown(redactor.data(arguments[name]))}" for name in names]
    if spec.ask is not None:
        lines.append(spec.ask.consequence)
    return "\n".join(lines)


def too_large(spec: ToolSpec, text: str) -> str | None:
    if len(text) <= REVIEWABLE:
        return None
    return (
        f"{spec.name} was refused and nothing was run: its arguments are too large for a person to review "
        f"before confirming ({len(text)} characters, at most {REVIEWABLE}). Split the work into smaller calls "
        "(a shorter stdin or command) and call again."
    )


def fallback_refusal(spec: ToolSpec, ctx: Context, fallback: str, stateless: bool) -> str | None:
    """Why a call for a client that cannot be asked must not go ahead, or None when it may."""
    if stateless and ctx.client_capabilities is None:
        return (
            f"{spec.name} needs the user's confirmation, and this server runs --stateless, where a client that "
            "connected with the initialize handshake cannot be asked; nothing was changed. Run the server "
            "without --stateless (MCP_CLOUDOPS_STATELESS), or connect with a client speaking MCP 2026-07-28. "
            "--confirm-fallback applies only to clients known not to support elicitation."
        )
    if fallback == "allow":
        return None
    return (
        f"{spec.name} needs the user's confirmation and this client cannot give it (no MCP elicitation), so it "
        "was refused and nothing changed. To allow such tools for these clients, restart the server "
        "with --confirm-fallback allow (MCP_CLOUDOPS_CONFIRM_FALLBACK=allow)."
    )


def refusal(spec: ToolSpec, outcome: ElicitationResult[Confirmation]) -> str | None:
    """Why the user's answer does not let the call go ahead, or None when it does."""
    data = getattr(outcome, "data", None)
    if outcome.action == "accept" and isinstance(data, Confirmation) and data.confirm is True:
        return None
    answer = "answered no" if outcome.action == "accept" else outcome.action
    return f"The user did not confirm {spec.name} ({answer}); nothing was changed. Do not retry unasked."


_SEALED: ContextVar[str | None] = ContextVar("mcp_cloudops_sealed_round", default=None)


async def remember_sealed_round(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware, outside the SDK's request-state boundary: keeps the round's sealed token as the
    client sent it. The boundary hands handlers the unsealed state, which is the same for every round
    of the same call; the sealed token is unique to one round (a fresh nonce each time)."""
    params = ctx.params or {}
    sealed = params.get("requestState") if ctx.method == "tools/call" else None
    token = _SEALED.set(sealed if isinstance(sealed, str) else None)
    try:
        return await call_next(ctx)
    finally:
        _SEALED.reset(token)


def sealed_round() -> str | None:
    """The sealed token of the 2026-07-28 round being answered (None for other requests)."""
    return _SEALED.get()


class Spent:
    """2026-07-28 rounds whose "yes" already ran a call. The SDK seals a round's state against
    tampering but not against replay: the same sealed round and answer sent again would run it again.
    Keyed on the sealed token, so a new round for the same call is a new question."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, sealed: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        while self._seen and (next(iter(self._seen.values())) < now - SPENT_TTL or len(self._seen) >= SPENT_MAX):
            self._seen.popitem(last=False)
        key = hashlib.sha256(sealed.encode()).hexdigest()
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


def call_arguments(ctx: Context) -> Mapping[str, Any]:
    """The arguments of the tools/call being served, as the client sent them (the SDK keeps names it
    takes for itself, such as `ctx`, from the tool function); empty outside a request."""
    try:
        params = ctx.request_context.params or {}
    except ValueError:  # no request: MCPServer.call_tool called directly
        return {}
    arguments = params.get("arguments")
    return arguments if isinstance(arguments, Mapping) else {}


def guard(
    run: Run,
    spec: ToolSpec,
    *,
    fallback: str,
    stateless: bool,
    redactor: Redactor,
    validate: Validate,
    arg_names: Collection[str],
    failed: Callable[[str], CallToolResult],
    journal: Journal | None = None,
    what_runs: WhatRuns | None = None,
    target_of: TargetOf | None = None,
    account_of: Callable[[dict[str, Any]], str | None] | None = None,
    remembered: Remembered | None = None,
) -> tuple[Run, dict[str, Any]]:
    """`run` behind a confirmation, and the resolver wiring the SDK's Tool needs for it. `what_runs` reads
    what a call naming it only by id runs (tools.yaml `review`): fields, or why they cannot be read;
    `account_of` names the account the call acts in, when its provider has several (the question shows it)."""
    spent = Spent()
    offer = remembered is not None and remembers(spec, remembered.seconds)
    answer_model = Remembering if offer else Confirmation

    def key(ctx: Context, arguments: Mapping[str, Any]) -> tuple[Any, ...]:
        return remember_key(spec, {**arguments, ACCOUNT: acting(arguments)}, caller(ctx)[1])

    async def ask(ctx: Context) -> Elicit[Confirmation] | NotAsked:
        """The question, or why nobody is asked. The arguments are the client's own, as sent: a name the
        SDK takes for itself (ctx, confirmation) must not vanish between the question and the call."""
        try:
            checked = validate(call_arguments(ctx))
        except ArgumentError:  # nobody is asked about a bad call: run() refuses it, saying what to fix
            return NotAsked("invalid")
        if not asks(spec, checked):
            return NotAsked("unasked")
        if offer and remembered is not None and remembered.covers(key(ctx, checked)):
            return NotAsked("remembered")
        if not can_elicit(ctx):
            return NotAsked("fallback")
        if account_of is not None:
            try:
                acting = account_of(checked)
            except ConfigError:
                return NotAsked("unasked")  # not this caller's account: the call is refused before it sends
            checked = checked if acting is None else {**checked, ACCOUNT: acting}
        runs = target = None
        if spec.ask is not None and spec.ask.target is not None and target_of is not None:
            target, problem = await target_of(checked)
            if problem is not None:
                return NotAsked("refused", problem)
        if spec.review is not None and what_runs is not None:
            runs = await what_runs(checked)
            if isinstance(runs, str):
                return NotAsked("refused", runs)
        text = question(spec, checked, redactor, runs, target)
        if offer and remembered is not None:
            text += "\n" + remember_offer(spec, checked, remembered.seconds, redactor)
        problem = too_large(spec, text)
        return NotAsked("refused", problem) if problem else Elicit(text, answer_model)

    def acting(arguments: Mapping[str, Any]) -> str | None:
        """The account a refused call would have acted in, for its journal record (None: one account)."""
        try:
            return account_of(dict(arguments)) if account_of is not None else None
        except ConfigError:
            return None

    async def confirmed(
        ctx: Context, confirmation: ElicitationResult[Confirmation], **arguments: Any
    ) -> CallToolResult:
        asked = getattr(confirmation, "data", None)
        if isinstance(asked, NotAsked) and asked.why in ("invalid", "unasked"):
            return await run(ctx, **arguments)  # it checks the arguments as the client sent them, first
        if isinstance(asked, NotAsked) and asked.why == "remembered":
            metrics.confirmation(spec.name, "remembered")
            if journal is not None:
                await journal.remembered(spec, *caller(ctx), account=acting(arguments))
            return await run(ctx, **arguments)
        if isinstance(asked, NotAsked):
            reason = asked.message or fallback_refusal(spec, ctx, fallback, stateless)
        else:
            reason = refusal(spec, confirmation)
        if reason is not None:
            metrics.confirmation(spec.name, "refused" if isinstance(asked, NotAsked) else "declined")
            if journal is not None:
                await journal.refused(spec, reason, *caller(ctx), account=acting(arguments))
            return failed(redactor.cut(reason))
        sealed = sealed_round()
        if ctx.request_state is not None and can_elicit(ctx) and not spent.first_use(sealed or ctx.request_state):
            replayed = (
                f"This confirmation of {spec.name} was already used, and a confirmation runs one call; nothing "
                "was changed. Call the tool again to ask the user anew."
            )
            metrics.confirmation(spec.name, "refused")
            if journal is not None:
                await journal.refused(spec, replayed, *caller(ctx), account=acting(arguments))
            return failed(replayed)
        metrics.confirmation(spec.name, "accepted" if can_elicit(ctx) else "fallback")
        if offer and remembered is not None and getattr(asked, "remember", False) is True:
            with contextlib.suppress(ArgumentError):  # run() refuses such a call: nothing to remember
                remembered.remember(key(ctx, validate(arguments)))
        return await run(ctx, **arguments)

    # Real objects, not strings: the SDK reads the resolver from the annotation.
    confirmed.__annotations__["confirmation"] = Annotated[ElicitationResult[answer_model], Resolve(ask)]
    resolved = find_resolved_parameters(confirmed)
    return confirmed, {"resolved_params": dict(resolved), "resolver_plans": build_resolver_plans(resolved, arg_names)}


def unpredictable_request_ids() -> None:
    """Server-to-client request ids (each elicitation's among them) are random, not 1, 2, 3..., so a
    party that learned a session id cannot also guess which pending question to answer.

    The SDK numbers them with a counter and offers no setting: this replaces that one method.
    tests/test_hostile_confirmation.py fails if an SDK upgrade stops honouring it.
    """
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

    JSONRPCDispatcher._allocate_id = _random_id  # type: ignore[method-assign,assignment]


def _random_id(_: object) -> str:
    return secrets.token_urlsafe(18)
