"""The sandbox's text commands, as dash (echo, printf) and GNU coreutils/grep on Debian 12 behave: cat, head,
tail, wc, grep, sort, uniq, tee, seq, yes. They stream where the real ones do (`yes | head -n 1` ends)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal, InvalidOperation

import anyio

from mcp_cloudops.sandbox.shell_fs import FsError
from mcp_cloudops.sandbox.shell_io import OptionError, Proc, Stdin, getopt, shell_quote, usage_error

Command = Callable[[list[str], Proc], Awaitable[int]]


def _lines(data: bytes) -> list[bytes]:
    """Lines with their newlines; a last line without one stays as it is."""
    return re.findall(rb"[^\n]*\n|[^\n]+$", data)


async def _inputs(
    proc: Proc, program: str, names: list[str], message: str = "{program}: {name}: {error}"
) -> AsyncIterator[tuple[str, Stdin | None]]:
    """Each named input (stdin if none) as a stream; one that cannot be opened is reported (`message`, where
    `{quoted}` is the name as GNU quotes it) and given as None."""
    for name in names or ["-"]:
        try:
            node = proc.fs.get(proc.path(name)) if name != "-" else None
            if node is not None and node.is_dir:
                raise FsError(21)
            yield name, proc.open(name)
        except FsError as error:
            text = message.format(program=program, name=name, quoted=shell_quote(name), error=error)
            await proc.err(text + "\n")
            yield name, None


# --------------------------------------------------------------------------------------------
# echo, printf (dash builtins)
# --------------------------------------------------------------------------------------------

_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(text: str, *, octal: str) -> tuple[str, bool]:
    """Backslash escapes; `octal` is the pattern of an octal escape's digits. True if `\\c` stopped the output."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 == len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "c":
            return "".join(out), True
        if match := re.match(octal, text[i + 1 :]):
            byte = int(match[1] or "0", 8) & 0xFF
            out.append(chr(byte) if byte < 0x80 else chr(0xDC00 + byte))  # a raw byte, kept by surrogateescape
            i += 1 + len(match[0])
            continue
        out.append(_ESCAPES.get(nxt, "\\" + nxt))
        i += 2
    return "".join(out), False


async def _echo(args: list[str], proc: Proc) -> int:
    newline = args[:1] != ["-n"]
    text, stopped = _unescape(" ".join(args[0 if newline else 1 :]), octal=r"0([0-7]{0,3})")
    await proc.out(text + ("\n" if newline and not stopped else ""))
    return 0


_DIRECTIVE = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])?")


def _number(text: str, float_ok: bool) -> tuple[float | int, str]:
    """printf's number from an argument, and the error dash reports for it ("" if none)."""
    if text[:1] in ("'", '"'):
        return (ord(text[1]) if len(text) > 1 else 0), ""
    match = re.match(
        r"\s*[-+]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)" if not float_ok else r"\s*[-+]?[\d.]+(?:[eE][-+]?\d+)?", text
    )
    if match is None or not match[0].strip():
        return 0, f"{text}: expected numeric value" if text else ""
    number: float | int
    try:
        number = float(match[0]) if float_ok else int(match[0], 0 if not re.fullmatch(r"\s*[-+]?0\d+", match[0]) else 8)
    except ValueError:
        return 0, f"{text}: expected numeric value"
    return number, "" if match.end() == len(text) else f"{text}: not completely converted"


async def _printf(args: list[str], proc: Proc) -> int:
    if not args:
        await proc.err(f"{proc.where}printf: usage: printf format [arg ...]\n")
        return 2
    args = args[1:] if args[:1] == ["--"] and len(args) > 1 else args
    fmt, values = args[0], args[1:]
    status = 0
    while True:
        used = 0
        out: list[str] = []
        pos = 0
        for match in _DIRECTIVE.finditer(fmt):
            out.append(_unescape(fmt[pos : match.start()], octal=r"([0-7]{1,3})")[0])
            pos = match.end()
            flags, width, precision, conversion = match.groups()
            if conversion == "%" and match[0] == "%%":
                out.append("%")
                continue
            if conversion is None or conversion not in "diouxXcsbeEfFgG":
                await proc.out("".join(out))
                await proc.err(f"{proc.where}printf: {match[0]}: invalid directive\n")
                return 2
            spec = [flags]
            for part in (width, precision):
                if part == "*":
                    arg = values[used] if used < len(values) else ""
                    used += 1
                    number, problem = _number(arg, False)
                    part = str(int(number))
                    status = 1 if problem else status
                spec.append(part or "")
            arg = values[used] if used < len(values) else None
            used += 1
            text, problem, stopped = _convert(conversion, arg, spec[0], spec[1], precision is not None, spec[2])
            out.append(text)
            if problem:
                await proc.out("".join(out))
                out = []
                await proc.err(f"{proc.where}printf: {problem}\n")
                status = 1
            if stopped:
                await proc.out("".join(out))
                return status
        out.append(_unescape(fmt[pos:], octal=r"([0-7]{1,3})")[0])
        await proc.out("".join(out))
        if used == 0 or used >= len(values):
            return status
        values = values[used:]


def _convert(
    conversion: str, arg: str | None, flags: str, width: str, dotted: bool, precision: str
) -> tuple[str, str, bool]:
    """One printf directive: its text, dash's complaint about the argument ("" if none), whether `\\c` stopped it."""
    spec = "%" + flags + width + ("." + precision if dotted else "")
    if conversion in "sb":
        text, stopped = (arg or "", False) if conversion == "s" else _unescape(arg or "", octal=r"0?([0-7]{1,3})")
        return (spec + "s") % text, "", stopped
    if conversion == "c":
        return (spec.split(".")[0] + "s") % (arg or "")[:1], "", False
    number, problem = _number(arg or "", conversion in "eEfFgG")
    if conversion in "diu":
        return (spec + "d") % int(number), problem, False
    if conversion == "o" and "#" in flags:
        return (spec.replace("#", "") + "s") % ("0" + format(int(number), "o")), problem, False
    if conversion in "oxX":
        return (spec + conversion) % int(number), problem, False
    return (spec + conversion) % float(number), problem, False


# --------------------------------------------------------------------------------------------
# cat, tee
# --------------------------------------------------------------------------------------------


async def _cat(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "nbEsTAuv", {"number": "n", "number-nonblank": "b", "show-ends": "E"})
    except OptionError as error:
        return await usage_error(proc, "cat", error)
    flags = {flag for flag, _ in options}
    status = 0
    count = 0
    async for _name, stream in _inputs(proc, "cat", names):
        if stream is None:
            status = 1
            continue
        if not flags & {"n", "b", "E", "T", "A"}:
            while (chunk := await stream.read()) is not None:
                await proc.write(1, chunk)
            continue
        for line in _lines(await stream.read_all()):
            body, end = (line[:-1], b"\n") if line.endswith(b"\n") else (line, b"")
            if "T" in flags or "A" in flags:
                body = body.replace(b"\t", b"^I")
            if "E" in flags or "A" in flags:
                end = b"$" + end if end else end
            if "b" in flags and not body:
                await proc.write(1, body + end)
                continue
            if "n" in flags or "b" in flags:
                count += 1
                body = f"{count:6d}\t".encode() + body
            await proc.write(1, body + end)
    return status


async def _tee(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "ai", {"append": "a"})
    except OptionError as error:
        return await usage_error(proc, "tee", error)
    append = any(flag == "a" for flag, _ in options)
    status = 0
    targets: list[str] = []
    for name in names:
        path = proc.path(name)
        try:
            proc.fs.write(path, b"", proc.user, append=append)
            targets.append(path)
        except FsError as error:
            status = await proc.fail("tee", name, error)
    while (chunk := await proc.stdin.read()) is not None:
        await proc.write(1, chunk)
        for path in targets:
            if proc.fs.get(path) is not None:
                proc.fs.write(path, chunk, proc.user, append=True)
    return status


# --------------------------------------------------------------------------------------------
# head, tail
# --------------------------------------------------------------------------------------------

_SUFFIXES = {"": 1, "b": 512, "k": 1024, "K": 1024, "kB": 1000, "M": 1 << 20, "MB": 10**6, "G": 1 << 30}


def _count(text: str) -> int | None:
    match = re.fullmatch(r"([-+]?\d+)(|b|k|K|kB|M|MB|G)", text)
    return int(match[1]) * _SUFFIXES[match[2]] if match else None


def _numeric_option(args: list[str]) -> list[str]:
    """`head -5` is `head -n 5` (the obsolete form, first argument only)."""
    return [f"-n{args[0][1:]}", *args[1:]] if args and re.fullmatch(r"-\d+", args[0]) else args


async def _head(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(_numeric_option(args), "n:c:qv", {"lines": "n", "bytes": "c", "quiet": "q"})
    except OptionError as error:
        return await usage_error(proc, "head", error)
    lines, size, headers = 10, None, len(names) > 1
    for flag, value in options:
        if flag in "nc":
            number = _count(value)
            if number is None:
                kind = "lines" if flag == "n" else "bytes"
                await proc.err(f"head: invalid number of {kind}: {proc.quote(value)}\n")
                return 1
            lines, size = (number, None) if flag == "n" else (lines, number)
        headers = {"q": False, "v": True}.get(flag, headers)

    async def each(stream: Stdin) -> None:
        if size is not None:
            await _head_bytes(stream, size, proc)
        elif lines < 0:
            kept = _lines(await stream.read_all())
            await proc.write(1, b"".join(kept[: len(kept) + lines]))
        else:
            await _head_lines(stream, lines, proc)

    return await _each_input(proc, "head", names, headers, each)


async def _head_lines(stream: Stdin, lines: int, proc: Proc) -> None:
    while lines > 0 and (chunk := await stream.read()) is not None:
        cut = 0
        while lines and (found := chunk.find(b"\n", cut)) >= 0:
            cut, lines = found + 1, lines - 1
        if lines:
            await proc.write(1, chunk)
        else:
            await proc.write(1, chunk[:cut])
            stream.unread(chunk[cut:])


async def _head_bytes(stream: Stdin, size: int, proc: Proc) -> None:
    if size < 0:
        data = await stream.read_all()
        await proc.write(1, data[: max(len(data) + size, 0)])
        return
    while size > 0 and (chunk := await stream.read()) is not None:
        await proc.write(1, chunk[:size])
        if len(chunk) > size:
            stream.unread(chunk[size:])
        size -= len(chunk)


async def _tail(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(
            _numeric_option(args), "n:c:qvfF", {"lines": "n", "bytes": "c", "follow": "f", "quiet": "q"}
        )
    except OptionError as error:
        return await usage_error(proc, "tail", error)
    count, unit, headers = "10", "n", len(names) > 1
    for flag, value in options:
        if flag in "fF":
            await proc.err("tail: the sandbox shell does not follow files (-f): its files change only when told to\n")
            return 1
        if flag in "nc":
            count, unit = value, flag
        headers = {"q": False, "v": True}.get(flag, headers)
    number = _count(count.lstrip("+"))
    if number is None:
        await proc.err(f"tail: invalid number of {'lines' if unit == 'n' else 'bytes'}: {proc.quote(count)}\n")
        return 1
    number = abs(number)

    async def each(stream: Stdin) -> None:
        data = await stream.read_all()
        if unit == "n":
            items = _lines(data)
            kept = (
                items[max(number - 1, 0) :] if count.startswith("+") else items[len(items) - number :] if number else []
            )
            await proc.write(1, b"".join(kept))
        else:
            await proc.write(
                1,
                data[max(number - 1, 0) :] if count.startswith("+") else data[len(data) - number :] if number else b"",
            )

    return await _each_input(proc, "tail", names, headers, each)


async def _each_input(
    proc: Proc, program: str, names: list[str], headers: bool, each: Callable[[Stdin], Awaitable[None]]
) -> int:
    """head's and tail's walk over their inputs: `each` on every one that opens, after a `==> name <==` header
    when asked; exit 1 if any could not be opened."""
    status, first = 0, True
    async for name, stream in _inputs(proc, program, names, "{program}: cannot open {quoted} for reading: {error}"):
        if stream is None:
            status = 1
            continue
        if headers:
            await proc.out(("" if first else "\n") + f"==> {'standard input' if name == '-' else name} <==\n")
        first = False
        await each(stream)
    return status


# --------------------------------------------------------------------------------------------
# wc
# --------------------------------------------------------------------------------------------


async def _wc(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "lwcmL", {"lines": "l", "words": "w", "bytes": "c", "chars": "m"})
    except OptionError as error:
        return await usage_error(proc, "wc", error)
    chosen = {flag for flag, _ in options} or {"l", "w", "c"}
    order = [flag for flag in "lwmcL" if flag in chosen]
    rows: list[tuple[list[int], str]] = []
    sizes: list[int | None] = []
    status = 0
    async for name, stream in _inputs(proc, "wc", names):
        if stream is None:
            status = 1
            continue
        sizes.append(stream.size)
        counts = await _count_stream(stream, chosen)
        rows.append(([counts[flag] for flag in order], "" if name == "-" and not names else name))
    if len(rows) > 1:
        rows.append(([sum(row[0][n] for row in rows) for n in range(len(order))], "total"))
    width = 1
    if not (len(sizes) == 1 and len(order) == 1):
        width = 7 if any(size is None for size in sizes) else 1
        width = max(width, len(str(sum(size or 0 for size in sizes))))
    for numbers, label in rows:
        line = " ".join(f"{n:>{width}}" for n in numbers)
        await proc.out(line + (f" {label}" if label else "") + "\n")
    return status


async def _count_stream(stream: Stdin, chosen: set[str]) -> dict[str, int]:
    """Lines, words and bytes as the input streams by; characters and the longest line need all of it."""
    counts = {"l": 0, "w": 0, "c": 0, "m": 0, "L": 0}
    if chosen & {"m", "L"}:
        data = await stream.read_all()
        text = data.decode(errors="replace")
        counts["m"], counts["L"] = len(text), max((len(line) for line in text.split("\n")), default=0)
        chunks: list[bytes] = [data]
    else:
        chunks = []
    in_word = False
    while chunks or (chunk := await stream.read()) is not None:
        data = chunks.pop() if chunks else chunk
        counts["l"] += data.count(b"\n")
        counts["c"] += len(data)
        words = data.split()
        counts["w"] += len(words) - (1 if in_word and words and not data[:1].isspace() else 0)
        in_word = bool(data) and not data[-1:].isspace()
    return counts


# --------------------------------------------------------------------------------------------
# grep
# --------------------------------------------------------------------------------------------

_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r"\s",
    "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f",
}


def _regex(pattern: str, extended: bool) -> str:
    """A POSIX basic (or extended) regular expression as Python's."""
    out: list[str] = []
    i = 0
    special_in_bre = {"(": "(", ")": ")", "{": "{", "}": "}", "|": "|", "+": "+", "?": "?"}
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            end = i + 1 + (pattern[i + 1 : i + 2] == "^")
            end += pattern[end : end + 1] == "]"
            while end < len(pattern) and pattern[end] != "]":
                end = pattern.find(":]", end) + 2 if pattern.startswith("[:", end) else end + 1
            inside = pattern[i + 1 : end]
            inside = re.sub(r"\[:(\w+):\]", lambda m: _POSIX_CLASSES.get(m[1], ""), inside.replace("\\", "\\\\"))
            out.append(f"[{inside}]")
            i = end + 1
            continue
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt in "<>":
                out.append(r"\b")
            elif not extended and nxt in special_in_bre:
                out.append(special_in_bre[nxt])
            else:
                out.append("\\" + nxt)
            i += 2
            continue
        if not extended and c in special_in_bre:
            out.append("\\" + c)
        elif c == "*" and (not out or out[-1] in ("(", "|", "^")):
            out.append(r"\*")
        else:
            out.append(c)
        i += 1
    return "".join(out)


async def _grep(args: list[str], proc: Proc) -> int:
    short = "EFGivcnqslLhHoxwrRe:m:A:B:C:"
    try:
        options, operands = getopt(
            args,
            short,
            {
                "extended-regexp": "E",
                "fixed-strings": "F",
                "ignore-case": "i",
                "invert-match": "v",
                "count": "c",
                "line-number": "n",
                "quiet": "q",
                "silent": "q",
                "files-with-matches": "l",
                "only-matching": "o",
                "word-regexp": "w",
                "line-regexp": "x",
                "recursive": "r",
                "regexp": "e",
                "max-count": "m",
            },
        )
    except OptionError as error:
        await proc.err(f"grep: {error}\nUsage: grep [OPTION]... PATTERNS [FILE]...\n")
        await proc.err("Try 'grep --help' for more information.\n")
        return 2
    flags = {flag for flag, _ in options}
    if flags & set("ABC"):
        await proc.err("grep: the sandbox shell does not show context lines (-A, -B, -C)\n")
        return 2
    patterns = [value for flag, value in options if flag == "e"]
    if not patterns:
        if not operands:
            await proc.err("Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n")
            return 2
        patterns = [operands.pop(0)]
    alternatives = [p for pattern in patterns for p in pattern.split("\n")]
    if "F" in flags:
        source = "|".join(re.escape(p) for p in alternatives)
    else:
        source = "|".join(f"(?:{_regex(p, 'E' in flags)})" for p in alternatives)
    if "w" in flags:
        source = rf"(?<!\w)(?:{source})(?!\w)"
    if "x" in flags:
        source = rf"^(?:{source})$"
    try:
        regex = re.compile(source, re.IGNORECASE if "i" in flags else 0)
    except re.error as error:
        unmatched = {"missing ), unterminated subpattern": "( or \\(", "unbalanced parenthesis": ") or \\)"}
        text = f"Unmatched {unmatched[error.msg]}" if error.msg in unmatched else "Invalid regular expression"
        await proc.err(f"grep: {text}\n")
        return 2
    limit = next((int(value) for flag, value in options if flag == "m" and value.isdigit()), None)
    names = _grep_files(operands, proc) if flags & {"r", "R"} else operands
    show_names = ("H" in flags or len(names) > 1 or bool(flags & {"r", "R"})) and "h" not in flags
    matched, status = False, 0
    for name in names or ["-"]:
        try:
            node = proc.fs.get(proc.path(name)) if name != "-" else None
            if node is not None and node.is_dir:
                if "s" not in flags:
                    await proc.err(f"grep: {name}: Is a directory\n")
                continue
            stream = proc.open(name)
        except FsError as error:
            if "s" not in flags:
                await proc.err(f"grep: {name}: {error}\n")
            status = 2
            continue
        label = "(standard input)" if name == "-" else name
        hits = 0
        number = 0
        async for raw in stream.lines():
            number += 1
            line = raw.decode(errors="surrogateescape").removesuffix("\n")
            found = regex.search(line)
            if bool(found) == ("v" in flags):
                continue
            hits += 1
            matched = True
            if "q" in flags:
                return 0
            if not flags & {"c", "l", "L"}:
                prefix = (f"{label}:" if show_names else "") + (f"{number}:" if "n" in flags else "")
                if "o" in flags and "v" not in flags:
                    await proc.out("".join(f"{prefix}{m[0]}\n" for m in regex.finditer(line) if m[0]))
                else:
                    await proc.out(f"{prefix}{line}\n")
            if limit is not None and hits >= limit:
                break
        if "c" in flags:
            await proc.out((f"{label}:" if show_names else "") + f"{hits}\n")
        if ("l" in flags and hits) or ("L" in flags and not hits):
            await proc.out(label + "\n")
    return status if status and not ("q" in flags and matched) else 0 if matched else 1


def _grep_files(operands: list[str], proc: Proc) -> list[str]:
    """`grep -r`: every regular file under each operand (the working directory, unprefixed, if none)."""
    names: list[str] = []
    for operand in operands or ["."]:
        path = proc.path(operand)
        node = proc.fs.get(path)
        if node is None or not node.is_dir:
            names.append(operand)
            continue
        prefix = path.rstrip("/") + "/"
        shown = "" if not operands else operand.rstrip("/") + "/"
        for found in sorted(p for p in proc.fs.nodes if p.startswith(prefix)):
            entry = proc.fs.nodes[found]
            if not entry.is_dir and not entry.device:
                names.append(shown + found[len(prefix) :])
    return names


# --------------------------------------------------------------------------------------------
# sort, uniq
# --------------------------------------------------------------------------------------------


def _numeric_key(text: str) -> Decimal:
    match = re.match(r"\s*(-?\d*\.?\d+|-?\d+\.?)", text)
    try:
        return Decimal(match[1]) if match else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


async def _sort(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(
            args,
            "rnufbk:t:o:sc",
            {"reverse": "r", "numeric-sort": "n", "unique": "u", "ignore-case": "f", "key": "k", "output": "o"},
        )
    except OptionError as error:
        return await usage_error(proc, "sort", error, 2)
    flags = {flag for flag, _ in options}
    separator = next((value for flag, value in options if flag == "t"), None)
    keys = [value for flag, value in options if flag == "k"]
    lines: list[str] = []
    async for _, stream in _inputs(proc, "sort", names, "sort: cannot read: {name}: {error}"):
        if stream is None:
            return 2
        data = (await stream.read_all()).decode(errors="surrogateescape")
        lines += data.split("\n")[:-1] if data.endswith("\n") else data.split("\n") if data else []

    def field(line: str) -> str:
        if not keys:
            return line
        spec = re.match(r"(\d+)(?:\.\d+)?[a-z]*(?:,(\d+))?", keys[0])
        start, end = (int(spec[1]), int(spec[2]) if spec[2] else None) if spec else (1, None)
        parts = line.split(separator) if separator else re.findall(r"\s*\S+", line)
        chosen = parts[start - 1 : end]
        return (separator or "").join(chosen).strip() if separator else "".join(chosen)

    def key(line: str) -> tuple[object, ...]:
        text = field(line)
        text = text.upper() if "f" in flags else text.lstrip() if "b" in flags else text
        return (_numeric_key(text),) if "n" in flags else (text,)

    def whole(line: str) -> tuple[object, ...]:
        return (*key(line), line) if "s" not in flags and "u" not in flags else key(line)

    ordered = sorted(lines, key=whole, reverse="r" in flags)
    if "u" in flags:
        unique: list[str] = []
        for line in ordered:
            if not unique or key(unique[-1]) != key(line):
                unique.append(line)
        ordered = unique
    text = "".join(line + "\n" for line in ordered)
    output = next((value for flag, value in options if flag == "o"), None)
    if output is not None:
        try:
            proc.fs.write(proc.path(output), text.encode(errors="surrogateescape"), proc.user)
        except FsError as error:
            await proc.err(f"sort: open failed: {output}: {error}\n")
            return 2
        return 0
    await proc.out(text)
    return 0


async def _uniq(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "cdui", {"count": "c", "repeated": "d", "unique": "u", "ignore-case": "i"})
    except OptionError as error:
        return await usage_error(proc, "uniq", error)
    flags = {flag for flag, _ in options}
    stream = proc.stdin
    if names and names[0] != "-":
        try:
            stream = proc.open(names[0])
        except FsError as error:
            return await proc.fail("uniq", names[0], error)
    data = (await stream.read_all()).decode(errors="surrogateescape")
    lines = data.split("\n")[:-1] if data.endswith("\n") else data.split("\n") if data else []
    groups: list[list[str]] = []
    for line in lines:
        same = groups and (groups[-1][0].lower() == line.lower() if "i" in flags else groups[-1][0] == line)
        groups[-1].append(line) if same else groups.append([line])
    out = []
    for group in groups:
        if ("d" in flags and len(group) < 2) or ("u" in flags and len(group) > 1):
            continue
        out.append((f"{len(group):7d} " if "c" in flags else "") + group[0] + "\n")
    await proc.out("".join(out))
    return 0


# --------------------------------------------------------------------------------------------
# seq, yes
# --------------------------------------------------------------------------------------------


async def _seq(args: list[str], proc: Proc) -> int:
    separator = "\n"
    while args and args[0].startswith("-s"):
        flag = args.pop(0)
        separator = flag[2:] or (args.pop(0) if args else "\n")
    if not 1 <= len(args) <= 3:
        text = "missing operand" if not args else f"extra operand {proc.quote(args[3])}"
        await proc.err(f"seq: {text}\nTry 'seq --help' for more information.\n")
        return 1
    numbers: list[Decimal] = []
    for arg in args:
        try:
            numbers.append(Decimal(arg))
        except InvalidOperation:
            await proc.err(f"seq: invalid floating point argument: {proc.quote(arg)}\n")
            await proc.err("Try 'seq --help' for more information.\n")
            return 1
    first, step, last = (
        (Decimal(1), Decimal(1), numbers[0])
        if len(numbers) == 1
        else (numbers[0], Decimal(1), numbers[1])
        if len(numbers) == 2
        else tuple(numbers)
    )
    if step == 0:
        await proc.err(f"seq: invalid Zero increment value: {proc.quote(args[1])}\n")
        return 1
    places = max((-n.as_tuple().exponent for n in (first, step) if isinstance(n.as_tuple().exponent, int)), default=0)
    places = max(places, 0)
    value, batch = first, []
    while (value <= last) if step > 0 else (value >= last):
        batch.append(f"{value:.{places}f}")
        value += step
        if len(batch) == 1000:
            await proc.out(separator.join(batch) + separator)
            batch = []
            await anyio.sleep(0)
    if batch:
        await proc.out(separator.join(batch) + "\n")
    return 0


async def _yes(args: list[str], proc: Proc) -> int:
    line = (" ".join(args) or "y") + "\n"
    chunk = (line * max(1, 2048 // len(line))).encode()
    while True:
        await proc.write(1, chunk)
        await anyio.sleep(0)


TEXT_COMMANDS: dict[str, Command] = {
    "echo": _echo,
    "printf": _printf,
    "cat": _cat,
    "tee": _tee,
    "head": _head,
    "tail": _tail,
    "wc": _wc,
    "grep": _grep,
    "sort": _sort,
    "uniq": _uniq,
    "seq": _seq,
    "yes": _yes,
}
