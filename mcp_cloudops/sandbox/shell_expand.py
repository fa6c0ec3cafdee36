"""Word expansion, in POSIX order: `~`, parameters (`$X`, `${X:-word}`, `${#X}`, `${X%pattern}`, `$?`, `$@`...),
field splitting of unquoted results on IFS, then pathname patterns (`*`, `?`, `[...]`) against the instance's
files, a pattern that matches nothing staying as written. Words arrive marked by `shell_parse`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

from mcp_cloudops.sandbox.shell_fs import FileSystem, FsError
from mcp_cloudops.sandbox.shell_io import Proc
from mcp_cloudops.sandbox.shell_parse import (
    GLOBS,
    LBRACK,
    LINE,
    LIT,
    QMARK,
    STAR,
    TABLE_BASE,
    TILDE,
    HereDoc,
    Param,
    parse_dollar,
)


class Shell(Protocol):
    """What expansion needs of the shell running the word (`shell.Shell`)."""

    proc: Proc
    cwd: str
    options: set[str]
    args: list[str]
    line: int
    table: list[Param | HereDoc]

    def lookup(self, name: str) -> str | None: ...

    def assign(self, name: str, value: str) -> None: ...


_TEXT = {STAR: "*", QMARK: "?", LBRACK: "[", TILDE: "~", LIT: "", LINE: ""}
_BREAK = "\x00"  # between the fields of "$@" (a NUL cannot be in an argument)
_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "xdigit": "0-9A-Fa-f",
    "cntrl": r"\x00-\x1f\x7f",
    "print": r"\x20-\x7e",
    "graph": r"\x21-\x7e",
}


class ExpansionError(Exception):
    """`${X?}` of an unset X, or `$X` under `set -u`: fatal to a non-interactive shell (exit 2)."""


def text(word: str) -> str:
    """A word's characters as typed: markers back to what they stand for."""
    return "".join(_TEXT.get(c, c) for c in word)


def _entry(c: str, shell: Shell) -> Param | HereDoc | None:
    k = ord(c) - TABLE_BASE
    return shell.table[k] if 0 <= k < len(shell.table) else None


def value(param: Param, shell: Shell) -> str:
    """The text a parameter expansion stands for (before field splitting)."""
    name, op = param.name, param.op
    if op == "bad":
        raise ExpansionError("Bad substitution")
    current = shell.lookup(name)
    if op == "len":
        return str(len(current or ""))
    empty = not current
    if op in (":-", "-"):
        return inline(param.word, shell, param.quoted) if (empty if op == ":-" else current is None) else current or ""
    if op in (":=", "="):
        if empty if op == ":=" else current is None:
            current = inline(param.word, shell, param.quoted)
            shell.assign(name, current)
        return current or ""
    if op in (":+", "+"):
        return inline(param.word, shell, param.quoted) if not (empty if op == ":+" else current is None) else ""
    if op in (":?", "?"):
        if empty if op == ":?" else current is None:
            raise ExpansionError(f"{name}: {inline(param.word, shell, True) or 'parameter not set'}")
        return current or ""
    if current is None and "u" in shell.options and name not in "@*":
        raise ExpansionError(f"{name}: parameter not set")
    if op in ("#", "##", "%", "%%"):
        return _trim(current or "", inline(param.word, shell, param.quoted), op)
    return current or ""


def _trim(subject: str, pattern: str, op: str) -> str:
    regex = re.compile(_pattern(pattern, plain_active=True), re.DOTALL)
    spans = range(len(subject) + 1)
    if op in ("#", "##"):
        ends = [n for n in spans if regex.fullmatch(subject[:n])]
        return subject[(max(ends) if op == "##" else min(ends)) :] if ends else subject
    starts = [n for n in spans if regex.fullmatch(subject[n:])]
    return subject[: (min(starts) if op == "%%" else max(starts))] if starts else subject


def inline(raw: str, shell: Shell, quoted: bool, *, here: bool = False) -> str:
    """Raw script text (the word of `${X:-word}`, a here-document's body) with quotes removed and `$`
    expansions done; in a here-document quotes are text and `\\` escapes only `$`, `` ` ``, `\\` and newline."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            special = "$`\\\n" + ('"' if quoted and not here else "")
            if nxt == "\n":
                pass
            elif (quoted or here) and nxt not in special:
                out.append(c + nxt)
            else:
                out.append(nxt)
            i += 2
        elif c == "'" and not quoted and not here:
            end = raw.find("'", i + 1)
            end = len(raw) if end < 0 else end
            out.append(raw[i + 1 : end])
            i = end + 1
        elif c == '"' and not here:
            end = i + 1
            while end < len(raw) and raw[end] != '"':
                end += 2 if raw[end] == "\\" else 1
            out.append(inline(raw[i + 1 : end], shell, True))
            i = end + 1
        elif c == "$":
            param, i = parse_dollar(raw, i, quoted, shell.line)
            out.append("$" if param is None else value(param, shell))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def here_document(doc: HereDoc, shell: Shell) -> str:
    return inline(doc.body, shell, True, here=True) if doc.expand else doc.body


def fields(word: str, shell: Shell) -> list[str]:
    """A command word's fields: expanded, split, pathname-expanded."""
    if word == "":
        return [""]  # only quotes make an empty word
    result: list[str] = []
    for field in _split(word, shell):
        if any(g in field for g in (STAR, QMARK, LBRACK)):
            matches = glob(field, shell)
            if matches:
                result.extend(matches)
                continue
        result.append(text(field))
    return result


def single(word: str, shell: Shell) -> str:
    """An assignment's value or a redirection's target: expanded but neither split nor globbed."""
    out: list[str] = []
    start = 0
    if word.startswith(TILDE):
        home, start = _tilde(word, shell)
        out.append(home)
    for c in word[start:]:
        entry = _entry(c, shell)
        out.append(value(entry, shell).replace(_BREAK, " ") if isinstance(entry, Param) else c)
    return text("".join(out))


def _tilde(word: str, shell: Shell) -> tuple[str, int]:
    """What a leading `~` or `~name` (up to the first `/`) stands for, $HOME or that user's home in
    /etc/passwd, and how many characters of the word it replaces; an unknown name stays as written."""
    name = word[1:].split("/", 1)[0]
    if name == "":
        home = shell.lookup("HOME")
    elif re.fullmatch(r"[A-Za-z0-9._-]+", name):
        home = next((row[3] for row in shell.proc.fs.passwd() if row[0] == name), None)
    else:
        home = None
    return (TILDE, 1) if home is None else (home, 1 + len(name))


def _split(word: str, shell: Shell) -> Iterator[str]:
    """Expand parameters and split what unquoted ones produce on IFS (runs of IFS blanks separate; each other
    IFS character ends a field, empty or not); active glob characters stay markers."""
    ifs = shell.lookup("IFS")
    ifs = " \t\n" if ifs is None else ifs
    current: list[str] | None = None  # the field being built; None until something starts one
    last = "start"  # what came last: "start", "text", "blank" or "delimiter" (a non-blank IFS character)
    start = 0
    if word.startswith(TILDE):
        home, start = _tilde(word, shell)
        current, last = [home], "text"
    for c in word[start:]:
        entry = _entry(c, shell)
        if isinstance(entry, Param) and entry.quoted:
            if entry.name == "@" and not shell.args:
                continue
            last = "text"
            for n, part in enumerate(value(entry, shell).split(_BREAK)):
                if n:
                    yield "".join(current or [])
                    current = None
                current = (current or []) + [part]
        elif isinstance(entry, Param):
            for ch in value(entry, shell).replace(_BREAK, " "):
                if ch not in ifs:
                    current = current or []
                    current.append(GLOBS.get(ch, ch))
                    last = "text"
                    continue
                if current is not None:
                    yield "".join(current)
                    current = None
                elif ch not in " \t\n" and last in ("start", "delimiter"):
                    yield ""
                last = "blank" if ch in " \t\n" and last == "text" else "delimiter" if ch not in " \t\n" else last
            continue
        elif c not in (LIT, LINE):
            current = current or []
            current.append(c)
        last = "text"
    if current is not None:
        yield "".join(current)


def _pattern(pattern: str, *, plain_active: bool) -> str:
    """A shell pattern as a regular expression; markers (or, with `plain_active`, plain `*?[`) are active."""
    active = {STAR: "*", QMARK: "?", LBRACK: "["} | ({"*": "*", "?": "?", "[": "["} if plain_active else {})
    out: list[str] = []
    i = 0
    while i < len(pattern):
        kind = active.get(pattern[i])
        if kind == "*":
            out.append(".*")
        elif kind == "?":
            out.append(".")
        elif kind == "[" and (end := _bracket_end(pattern, i)) > 0:
            out.append(_bracket(text(pattern[i + 1 : end])))
            i = end
        else:
            out.append(re.escape(_TEXT.get(pattern[i], pattern[i])))
        i += 1
    return "".join(out)


def _bracket_end(pattern: str, i: int) -> int:
    j = i + 1
    if pattern[j : j + 1] in ("!", "^"):
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < len(pattern):
        if pattern.startswith("[:", j):
            close = pattern.find(":]", j + 2)
            j = close + 2 if close > 0 else j + 1
            continue
        if pattern[j] == "]":
            return j
        j += 1
    return -1


def _bracket(inside: str) -> str:
    negate = inside[:1] in ("!", "^")
    inside = inside[1:] if negate else inside
    body = re.sub(
        r"\[:(\w+):\]|(.)",
        lambda m: _CLASSES.get(m[1], "") if m[1] else ("\\" + m[2] if m[2] in "\\^[]" else m[2]),
        inside,
        flags=re.DOTALL,
    )
    return f"[{'^' if negate else ''}{body}]"


def glob(field: str, shell: Shell) -> list[str]:
    """The paths a field with active pattern characters names, sorted; none: []."""
    fs, cwd, user = shell.proc.fs, shell.cwd, shell.proc.user
    parts = field.split("/")
    found = ["/" if field.startswith("/") else ""]
    parts = parts[1:] if field.startswith("/") else parts
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if part == "":
            found = [p + ("/" if p and not p.endswith("/") else "") for p in found] if last else found
            continue
        joined: list[str] = []
        if not any(g in part for g in (STAR, QMARK, LBRACK)):
            joined = [_join(p, text(part)) for p in found]
            joined = [p for p in joined if fs.get(FileSystem.resolve(cwd, p)) is not None]
        else:
            regex = re.compile(_pattern(part, plain_active=False), re.DOTALL)
            for prefix in found:
                try:
                    names = fs.listdir(FileSystem.resolve(cwd, prefix or "."), user)
                except FsError:
                    continue
                names = [".", "..", *names] if part.startswith(".") else names  # as dash's readdir gives them
                joined += [
                    _join(prefix, name)
                    for name in names
                    if regex.fullmatch(name) and (not name.startswith(".") or part.startswith("."))
                ]
        if not last:
            joined = [p for p in joined if (node := fs.get(FileSystem.resolve(cwd, p))) and node.is_dir]
        found = joined
        if not found:
            return []
    return sorted(found)


def _join(prefix: str, name: str) -> str:
    return name if not prefix else prefix + name if prefix.endswith("/") else f"{prefix}/{name}"
