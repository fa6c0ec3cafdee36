"""The sandbox shell's grammar: POSIX words and operators, split by the standard library's `shlex`.

shlex (posix mode, `punctuation_chars`) splits words and operators, removes quotes and handles backslashes,
but its output no longer says which characters were quoted, and `$HOME` in single quotes must stay text. So a
first pass (`_Marker`) walks the script once, tracking only quotes, and replaces each *active* `$...`, glob
character, leading `~` and here-document with a private-use character that shlex passes through untouched; the
parts it stands for go in a table. What the grammar cannot do (command substitution, `if`/`for`/`while`,
subshells, background jobs, arithmetic) is refused whole, before anything runs: `Unsupported`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

# Marker characters (Unicode private-use planes 15-16; a script containing any is refused).
TABLE_BASE = 0xF0000  # chr(TABLE_BASE + k): entry k of the table (a parameter or a here-document)
STAR, QMARK, LBRACK = "\U00100000", "\U00100001", "\U00100002"  # unquoted *, ?, [: pathname patterns
TILDE = "\U00100003"  # an unquoted ~ starting a word
IO = "\U00100004"  # after the digits of `2>`: an fd number, not a word
LIT = "\U00100005"  # after a quoted ; & | < > ( ) or newline: text, not an operator
LINE = "\U00100006"  # a backslash-newline that was removed: counts for line numbers only
GLOBS = {"*": STAR, "?": QMARK, "[": LBRACK}
PUNCTUATION = "();<>|&\n"
_OPERATORS = ("&&", "||", ";;", ">>", "<<", ">&", "<&", ">|", "<>")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPECIAL = "0123456789?#$!@*-"
_PARAM_OPS = (":-", ":=", ":+", ":?", "##", "%%", "-", "=", "+", "?", "#", "%")
RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "{", "}", "function"}
)
REDIRECTIONS = frozenset({"<", ">", ">>", ">|", "<>", ">&", "<&", "<<"})


class ShellSyntaxError(Exception):
    """What dash reports as `Syntax error: ...` (exit 2, nothing runs)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


class Unsupported(Exception):
    """A construct the sandbox shell does not run: refused whole (exit 2) rather than half-done."""

    def __init__(self, construct: str, line: int) -> None:
        super().__init__(construct)
        self.construct, self.line = construct, line


@dataclass(frozen=True)
class Param:
    """`$name` or `${name<op><word>}`; `word` is raw script text, expanded when used."""

    name: str
    op: str = ""
    word: str = ""
    quoted: bool = False


@dataclass
class HereDoc:
    body: str = ""
    expand: bool = True
    lines: int = 0


@dataclass
class Redirect:
    fd: int
    op: str
    target: str  # a raw word (markers inside)


@dataclass
class Simple:
    assigns: list[str]
    words: list[str]
    redirects: list[Redirect]
    line: int


@dataclass
class Pipeline:
    commands: list[Simple]
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]] = field(default_factory=list)


@dataclass
class Script:
    items: list[AndOr]
    table: list[Param | HereDoc]


def parse_dollar(text: str, i: int, quoted: bool, line: int) -> tuple[Param | None, int]:
    """The parameter expansion starting at `text[i]` (a `$`) and the index after it; None for a lone `$`."""
    rest = text[i + 1 : i + 3]
    if rest.startswith("(("):
        raise Unsupported("arithmetic expansion $((...))", line)
    if rest.startswith("("):
        raise Unsupported("command substitution $(...)", line)
    if rest.startswith("{"):
        close = _closing_brace(text, i + 2, line)
        body = text[i + 2 : close]
        if match := re.fullmatch(r"#([A-Za-z_][A-Za-z0-9_]*|[0-9?#$!@*-])", body):
            return Param(match[1], "len", quoted=quoted), close + 1
        name = _NAME.match(body) or re.match(r"[0-9]+|[?#$!@*-]", body)
        tail = body[name.end() :] if name else body
        op = next((op for op in _PARAM_OPS if tail.startswith(op)), None)
        if name is None or (tail and op is None):  # dash finds this out when it expands it
            return Param(body, "bad", quoted=quoted), close + 1
        return Param(name[0], op or "", tail[len(op or "") :], quoted), close + 1
    if match := _NAME.match(text, i + 1):
        return Param(match[0], quoted=quoted), match.end()
    if rest[:1] and rest[0] in _SPECIAL:
        return Param(rest[0], quoted=quoted), i + 2
    return None, i + 1


def _closing_brace(text: str, start: int, line: int) -> int:
    """Where the `}` closing a `${` is: nested `${...}`, quotes and backslashes skipped."""
    depth, j = 1, start
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 1
        elif c == "'":
            j = text.find("'", j + 1) if "'" in text[j + 1 :] else len(text)
        elif c == '"':
            j += 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
        elif text.startswith("${", j):
            depth += 1
            j += 1
        elif c == "}":
            depth -= 1
            if not depth:
                return j
        j += 1
    raise ShellSyntaxError("Missing '}'", line)


class _Marker:
    """One pass over the script that keeps track of quoting only; see the module's docstring."""

    def __init__(self, script: str) -> None:
        self.s = script
        self.i = 0
        self.line = 1
        self.out: list[str] = []
        self.table: list[Param | HereDoc] = []
        self.pending: list[tuple[HereDoc, str, bool]] = []

    def mark(self) -> str:
        s = self.s
        if bad := re.search("[\U000f0000-\U0010ffff]", s):
            raise Unsupported(f"the private-use character U+{ord(bad[0]):X}", s.count("\n", 0, bad.start()) + 1)
        quote, start = "", True  # the quote we are in; whether the next character starts a word
        while self.i < len(s):
            c = s[self.i]
            blank = False
            if quote == "'":
                quote = "" if c == "'" else quote
                self._literal(c)
            elif quote == '"':
                quote = self._double_quoted(c)
            elif c == "\\":
                self._escaped()
            elif c == "$":
                self._dollar(False)
            elif c == "`":
                raise Unsupported("command substitution `...`", self.line)
            elif c == "#" and start:  # a comment, up to the newline
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end
            elif c.isdigit() and start:
                digits = re.match(r"\d+", s[self.i :])
                assert digits is not None
                self.i += len(digits[0])
                self._emit(digits[0] + (IO if s[self.i : self.i + 1] in ("<", ">") else ""))
            elif s.startswith("<<", self.i):
                self._here_document()
                blank = True
            else:
                quote = c if c in "'\"" else ""
                blank = c in " \t\r" or c in PUNCTUATION
                self._emit(GLOBS.get(c) or (TILDE if c == "~" and start else c))
                self.i += 1
                if c == "\n":
                    self.line += 1
                    self._read_here_documents()
            start = blank
        if quote:
            raise ShellSyntaxError("Unterminated quoted string", self.line)
        for doc, _, _ in self.pending:  # a here-document the script ends inside of: empty
            doc.body = ""
        return "".join(self.out)

    def _emit(self, text: str) -> None:
        self.out.append(text)

    def _literal(self, c: str) -> None:
        """A quoted character: operators' characters are marked as text."""
        self.out.append(c + LIT if c in PUNCTUATION else c)
        self.i += 1
        if c == "\n":
            self.line += 1

    def _double_quoted(self, c: str) -> str:
        s, i = self.s, self.i
        if c == '"':
            self._emit(c)
            self.i += 1
            return ""
        if c == "$":
            self._dollar(True)
            return '"'
        if c == "`":
            raise Unsupported("command substitution `...`", self.line)
        if c == "\\":
            nxt = s[i + 1 : i + 2]
            if nxt == "\n":
                self._emit(LINE)
                self.i += 2
                self.line += 1
                return '"'
            if nxt in ("$", "`"):  # text: shlex keeps a bare $ or ` as it is
                self._emit(nxt)
                self.i += 2
                return '"'
            if nxt in ('"', "\\"):
                self._emit(c + nxt)
                self.i += 2
                return '"'
        self._literal(c)
        return '"'

    def _escaped(self) -> None:
        nxt = self.s[self.i + 1 : self.i + 2]
        if nxt == "\n":
            self._emit(LINE)
            self.line += 1
        elif nxt == "":
            self._emit("\\\\")
        else:
            self._emit("\\" + nxt + (LIT if nxt in PUNCTUATION else ""))
        self.i += 2

    def _dollar(self, quoted: bool) -> None:
        param, end = parse_dollar(self.s, self.i, quoted, self.line)
        if param is None:
            self._emit("$")
        else:
            self._emit(chr(TABLE_BASE + len(self.table)))
            self.table.append(param)
        self.i = end

    def _here_document(self) -> None:
        s = self.s
        j = self.i + 2
        strip = s.startswith("-", j)
        j += strip
        while j < len(s) and s[j] in " \t":
            j += 1
        word = re.match(r"""(?:[^\s;&|<>()'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")+""", s[j:], re.DOTALL)
        if word is None:
            raise ShellSyntaxError(f'"{s[j]}" unexpected' if j < len(s) else "end of file unexpected", self.line)
        raw = word[0]
        delimiter = re.sub(
            r"""\\(.)|'([^']*)'|"((?:[^"\\]|\\.)*)\"""", lambda m: "".join(g or "" for g in m.groups()), raw
        )
        doc = HereDoc(expand=not re.search(r"""['"\\]""", raw))
        self.out.append(f"<< {chr(TABLE_BASE + len(self.table))} ")
        self.table.append(doc)
        self.pending.append((doc, delimiter, strip))
        self.i = j + len(raw)

    def _read_here_documents(self) -> None:
        s = self.s
        for doc, delimiter, strip in self.pending:
            lines: list[str] = []
            while self.i < len(s):
                end = s.find("\n", self.i)
                text = s[self.i :] if end < 0 else s[self.i : end]
                self.i = len(s) if end < 0 else end + 1
                doc.lines += 1
                text = text.lstrip("\t") if strip else text
                if text == delimiter:
                    break
                lines.append(text + ("\n" if end >= 0 else ""))
            doc.body = "".join(lines)
            self.line += doc.lines
            self._emit(LINE * doc.lines + " ")  # the body's lines, counted where they are
        self.pending = []


@dataclass
class _Token:
    value: str
    line: int
    op: bool


def _tokens(text: str) -> list[_Token]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=PUNCTUATION)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens: list[_Token] = []
    line = 1
    for raw in lexer:
        if raw and all(c in PUNCTUATION for c in raw):
            while raw:
                op = next((op for op in _OPERATORS if raw.startswith(op)), raw[0])
                tokens.append(_Token(op, line, True))
                line += op == "\n"
                raw = raw[len(op) :]
            continue
        if raw.strip(LINE) or not raw:
            tokens.append(_Token(raw, line, False))
        line += raw.count("\n") + raw.count(LINE)
    return tokens


def _shown(token: _Token | None) -> str:
    if token is None:
        return "end of file unexpected"
    return "newline unexpected" if token.value == "\n" else f'"{token.value}" unexpected'


def is_assignment(word: str) -> bool:
    return bool(re.match(r"[A-Za-z_][A-Za-z0-9_]*=", word))


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.k = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.k] if self.k < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.k]
        self.k += 1
        return token

    def is_op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token.op and token.value in ops

    def newlines(self) -> None:
        while self.is_op("\n"):
            self.k += 1

    def error(self) -> ShellSyntaxError:
        token = self.peek()
        last = self.tokens[-1].line if self.tokens else 1
        return ShellSyntaxError(_shown(token), token.line if token else last)

    def program(self) -> list[AndOr]:
        items: list[AndOr] = []
        self.newlines()
        while self.peek() is not None:
            items.append(self.and_or())
            token = self.peek()
            if token is None:
                break
            if token.value == "&":
                raise Unsupported("background jobs (&)", token.line)
            if token.value not in (";", "\n"):
                raise self.error()
            self.k += 1
            self.newlines()
        return items

    def and_or(self) -> AndOr:
        item = AndOr(self.pipeline())
        while self.is_op("&&", "||"):
            op = self.take().value
            self.newlines()
            item.rest.append((op, self.pipeline()))
        return item

    def pipeline(self) -> Pipeline:
        negate = False
        token = self.peek()
        if token is not None and not token.op and token.value == "!":
            self.k += 1
            negate = True
        commands = [self.simple()]
        while self.is_op("|"):
            self.k += 1
            self.newlines()
            commands.append(self.simple())
        return Pipeline(commands, negate)

    def simple(self) -> Simple:
        first = self.peek()
        command = Simple([], [], [], first.line if first else 1)
        while (token := self.peek()) is not None:
            if token.op and token.value == "(":
                raise Unsupported("subshells and functions ( ... )", token.line)
            if token.op and token.value in REDIRECTIONS:
                command.redirects.append(self.redirect(1 if token.value[0] == ">" else 0))
            elif token.op:
                break
            elif token.value.endswith(IO) and token.value[:-1].isdigit() and self.k + 1 < len(self.tokens):
                self.k += 1
                command.redirects.append(self.redirect(int(token.value[:-1])))
            elif not command.words and is_assignment(token.value):
                command.assigns.append(self.take().value)
            else:
                if not command.words and token.value in RESERVED:
                    raise Unsupported(f"'{token.value}' (if, for, while, case and {{ }} blocks)", token.line)
                command.words.append(self.take().value)
        if not (command.words or command.assigns or command.redirects):
            raise self.error()
        return command

    def redirect(self, fd: int) -> Redirect:
        op = self.take().value
        target = self.peek()
        if target is None or target.op:
            raise self.error()
        self.k += 1
        return Redirect(fd, op, target.value)


def parse(script: str) -> Script:
    """The script's and-or lists, or `ShellSyntaxError` / `Unsupported` before anything runs."""
    marker = _Marker(script)
    text = marker.mark()
    try:
        tokens = _tokens(text)
    except ValueError as exc:  # shlex's "No closing quotation": the marker has already caught these
        raise ShellSyntaxError("Unterminated quoted string", marker.line) from exc
    return Script(_Parser(tokens).program(), marker.table)
