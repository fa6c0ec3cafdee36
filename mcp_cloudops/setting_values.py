"""Parsers of setting values, and the reader that applies them: each turns one variable's raw text into a
typed value or raises Invalid saying what was expected and how to fix it, so that every bad setting is told
at start, all at once, on one line each, naming the variable (and the flag that set it)."""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Callable, Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr

from mcp_cloudops.shaping import MIN_CAP

USERINFO = re.compile(r"//[^/@]*@")
LOOPBACK_NAMES = ("localhost",)
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 3.3 scope-token: no space, quote or backslash

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")

Value = TypeVar("Value")
Number = TypeVar("Number", int, float)


class ConfigError(RuntimeError):
    """Configuration is missing or wrong; the message names the environment variable to set or fix."""


class Invalid(ValueError):
    """A value of the wrong kind or range: what it should be and, unless the default says it, how to fix it."""

    def __init__(self, expected: str, fix: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.fix = fix


def as_boolean(raw: str) -> bool:
    """A documented boolean: `=y` must not quietly mean "off" for a safety switch."""
    word = raw.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise Invalid("a boolean", f"use one of {', '.join(TRUE)} (on) or {', '.join(FALSE[:-1])} (off)")


def as_number(kind: Callable[[str], Number], minimum: Number, *, inclusive: bool) -> Callable[[str], Number]:
    """A parser of finite numbers of `kind` from `minimum` (or above it): a limit of "-1", "ten" or "25k"
    must not start the server, nor fail every call later."""
    unit = "a whole number" if kind is int else "a number of seconds"
    expected = f"{unit} {'>=' if inclusive else '>'} {minimum:g}"

    def parse(raw: str) -> Number:
        try:
            value = kind(raw)
        except ValueError:
            raise Invalid(expected) from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise Invalid(expected)
        return value

    return parse


def as_choice(*choices: str, kind: str | None = None) -> Callable[[str], str]:
    """One of a few words (a `kind` of thing), in any case."""

    def parse(raw: str) -> str:
        word = raw.strip().lower()
        if word not in {choice.lower() for choice in choices}:
            raise Invalid(kind or " or ".join(choices), f"use one of {', '.join(choices)}")
        return word

    return parse


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def as_secure_url(what: str, example: str) -> Callable[[str], str]:
    """A parser of the URL of `what`: https://, or http:// on a loopback host only (an access token, or the
    keys that check one, must not cross a network in clear), with a host and no query, fragment or password."""
    fix = f"set it to {what}, e.g. {example}"

    def parse(raw: str) -> str:
        try:
            parts = urlsplit(raw)
            _ = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError:
            raise Invalid("a URL", fix) from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise Invalid("an https:// URL", fix)
        if scheme == "http" and not is_loopback(parts.hostname):
            raise Invalid("an https:// URL (http:// is accepted only for a loopback host)", fix)
        if parts.username is not None or parts.password is not None:
            raise Invalid("a usable URL (it carries a user name or password)", fix)
        if parts.query or parts.fragment or raw.endswith(("?", "#")):
            raise Invalid("a usable URL (it has a query or fragment)", fix)
        return raw

    return parse


def as_scope(raw: str) -> str:
    """An OAuth scope name as tokens carry it (RFC 6749 3.3): printable ASCII without space, quote or backslash."""
    if not SCOPE_TOKEN.fullmatch(raw):
        raise Invalid("an OAuth scope name (printable ASCII, no space, quote or backslash)")
    return raw


def as_path(raw: str) -> Path:
    return Path(raw).expanduser()


def as_registry(raw: str) -> Path:
    """Another tools.yaml: a file this process can read (its content is checked when it is loaded)."""
    path = Path(raw).expanduser()
    reason = unreadable(path)
    if reason:
        raise Invalid(f"a readable file ({reason})", "set it to a tools.yaml, or unset it for the packaged one")
    return path


SECONDS = as_number(float, 0.0, inclusive=False)
POSITIVE = as_number(int, 1, inclusive=True)
COUNT = as_number(int, 0, inclusive=True)
WAIT_CAP = as_number(float, 0.0, inclusive=True)  # 0: never wait inside a call, tell the agent instead
REMEMBER = as_number(float, 0.0, inclusive=True)  # 0: every call asked (the default)
OUTPUT_CAP = as_number(int, MIN_CAP, inclusive=True)  # below it a result and its note would not both fit


def unreadable(path: Path) -> str | None:
    """Why this process cannot read `path` as a file, or None: checked at start, not at the first call."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):  # a FIFO would block the open below
            return "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        with path.open("rb"):
            return None
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()


def state_keys(raw: str) -> SecretStr:
    """Comma-separated keys that seal 2026-07-28 requestState (a pending confirmation): the first seals, all
    open. Replicas share them, so a user's answer may reach any replica. Each at least 32 bytes."""
    given = [key.strip() for key in raw.split(",") if key.strip()]
    if not given or any(len(key.encode()) < 32 for key in given):
        raise Invalid("a list of keys of 32 bytes or more", "generate one with `openssl rand -base64 32`")
    return SecretStr(raw)


def tokens(raw: str) -> SecretStr:
    """Comma-separated HTTP bearer tokens, one per person or agent. Checked without ever quoting them."""
    given = [token.strip() for token in raw.split(",") if token.strip()]
    if not given:
        raise Invalid("a token", "set one or more tokens, comma-separated")
    for number, token in enumerate(given, 1):
        if not token.isascii() or not token.isprintable():
            raise Invalid(
                f"a list of tokens a client can send: token {number} of {len(given)} has a control or non-ASCII "
                "character",
                "use printable ASCII",
            )
    return SecretStr(raw)


def as_port(raw: str) -> int:
    """A TCP port to listen on: 1-65535, or 0 for any free one (the log line says which)."""
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise Invalid("a port", "use 1-65535, or 0 for any free one")
    return port


def names(raw: str | None) -> frozenset[str] | None:
    """A comma-separated list from a flag or env var; None when not given (no restriction)."""
    if raw is None or not raw.strip():
        return None
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


class Reader:
    """Reads MCP_CLOUDOPS_* values, collecting every problem so that all are told at once, one line each."""

    def __init__(self, source: Mapping[str, str], flags: Mapping[str, str]) -> None:
        self.source = source
        self.flags = flags  # variable -> the flag that set it, to name what the user typed
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.source.get(name, "").strip()
        return value or None

    def has_userinfo(self, name: str) -> bool:
        """Whether the URL in `name` carries a user name or password: then a message must not quote it."""
        return USERINFO.search(self.raw(name) or "") is not None

    def named(self, name: str) -> str:
        """`name`, and the flag that set it if one did: what a message about a combination calls it."""
        flag = self.flags.get(name)
        return f"{name} (from {flag})" if flag else name

    def read(self, name: str, default: Value, parse: Callable[[str], Value], *, secret: bool = False) -> Value:
        """The value of `name` parsed, or `default` when unset; a bad value is noted and `default` returned."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except Invalid as exc:
            self.problems.append(self.describe(name, None if secret else raw, exc, default))
            return default

    def describe(self, name: str, raw: str | None, exc: Invalid, default: object) -> str:
        flag = self.flags.get(name)
        subject = name if raw is None else f"{name}={raw!r}"
        subject += f" (from {flag})" if flag else ""
        unset = "leave the flag out" if flag else "unset it"
        if exc.fix is not None:
            return f"{subject} is not {exc.expected}: {exc.fix}"
        if default is None:  # e.g. a per-provider timeout: unset, the general one applies
            return f"{subject} is not {exc.expected}: set one, or {unset}"
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        return f"{subject} is not {exc.expected}: set one, or {unset} for the default ({shown})"
