"""The sandbox's file commands on the instance's own files, as GNU coreutils (Debian 12) and dash's `test`
behave: ls, mkdir, rm, rmdir, touch, cp, mv, chmod, basename, dirname, pwd, test and [."""

from __future__ import annotations

import math
import posixpath
import re
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp_cloudops.sandbox.shell_fs import FileSystem, FsError, Node
from mcp_cloudops.sandbox.shell_io import OptionError, Proc, getopt, shell_quote, usage_error

Command = Callable[[list[str], Proc], Awaitable[int]]


def zone(proc: Proc) -> ZoneInfo | type[UTC]:
    """The TZ the command sees (containers' /etc/localtime is UTC)."""
    name = proc.env.get("TZ", "").lstrip(":")
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


# --------------------------------------------------------------------------------------------
# ls
# --------------------------------------------------------------------------------------------


def _mode(node: Node) -> str:
    kind = "c" if node.device else "d" if node.is_dir else "-"
    return kind + stat.filemode(node.mode)[1:]


def _human(size: int) -> str:
    """`ls -h`: 1023, 1.0K, 4.9K, 12K, 1.5M (rounded up, as GNU does)."""
    if size < 1024:
        return str(size)
    value = float(size)
    for unit in "KMGTP":
        value /= 1024
        if value < 1024 or unit == "P":
            tenths = math.ceil(value * 10) / 10
            return f"{tenths:.1f}{unit}" if tenths < 10 else f"{math.ceil(value)}{unit}"
    raise AssertionError


async def _ls(args: list[str], proc: Proc) -> int:
    try:
        options, operands = getopt(
            args, "aAl1dhrtSnFRs", {"all": "a", "almost-all": "A", "directory": "d", "recursive": "R"}
        )
    except OptionError as error:
        return await usage_error(proc, "ls", error, 2)
    flags = {flag for flag, _ in options}
    fs, status = proc.fs, 0
    files: list[tuple[str, str]] = []
    dirs: list[tuple[str, str]] = []
    for operand in operands or ["."]:
        path = proc.path(operand)
        try:
            node = fs.lookup(path, proc.user)
        except FsError as error:
            await proc.err(f"ls: cannot access {shell_quote(operand)}: {error}\n")
            status = 2
            continue
        (dirs if node.is_dir and "d" not in flags else files).append((operand, path))
    blocks: list[str] = []
    if files:
        blocks.append(_listing(_sorted(files, flags, fs), flags, proc, total=False))
    queue = sorted(dirs, key=lambda d: d[0], reverse="r" in flags)
    while queue:
        operand, path = queue.pop(0)
        try:
            names = fs.listdir(path, proc.user)
        except FsError as error:
            await proc.err(f"ls: cannot open directory {shell_quote(operand)}: {error}\n")
            status = 2
            continue
        if "a" in flags:
            names = [".", "..", *names]
        elif "A" not in flags:
            names = [n for n in names if not n.startswith(".")]
        entries = _sorted([(n, FileSystem.resolve(path, n)) for n in names], flags, fs)
        header = f"{operand}:\n" if len(operands) > 1 or status or "R" in flags else ""
        blocks.append(header + _listing(entries, flags, proc, total=True))
        if "R" in flags:  # then each subdirectory, depth first
            inside = [
                (f"{operand.rstrip('/')}/{n}", p) for n, p in entries if n not in (".", "..") and fs.nodes[p].is_dir
            ]
            queue[:0] = inside
    await proc.out("\n".join(blocks))
    return status


def _sorted(entries: list[tuple[str, str]], flags: set[str], fs: FileSystem) -> list[tuple[str, str]]:
    """(shown name, path) pairs in ls's order: by name, or newest (-t) or largest (-S) first; -r reverses."""
    if "t" in flags:
        entries = sorted(entries, key=lambda e: (-fs.nodes[e[1]].mtime, e[0]))
    elif "S" in flags:
        entries = sorted(entries, key=lambda e: (-fs.nodes[e[1]].size, e[0]))
    else:
        entries = sorted(entries, key=lambda e: e[0])
    return entries[::-1] if "r" in flags else entries


def _listing(entries: list[tuple[str, str]], flags: set[str], proc: Proc, *, total: bool) -> str:
    fs = proc.fs
    nodes = [(name, path, fs.nodes[path]) for name, path in entries]

    def suffix(node: Node) -> str:
        return ("/" if node.is_dir else "*" if node.mode & 0o111 else "") if "F" in flags else ""

    sizes = [str(-(-n.size // 4096) * 4 if not n.device else 0) for _, _, n in nodes]
    width = max(map(len, sizes), default=0)
    sized = [f"{size:>{width}} " if "s" in flags else "" for size in sizes]
    blocks = sum(int(size) for size in sizes)
    shown = _human(blocks * 1024) if "h" in flags and blocks else str(blocks)
    head = f"total {shown}\n" if total and flags & {"l", "n", "s"} else ""
    if "l" not in flags and "n" not in flags:
        return head + "".join(
            f"{size}{name}{suffix(node)}\n" for size, (name, _, node) in zip(sized, nodes, strict=True)
        )
    now = datetime.fromtimestamp(proc.clock(), zone(proc))
    rows = []
    for name, path, node in nodes:
        owner = str(node.uid) if "n" in flags else (fs.user_of(node.uid).name or str(node.uid))
        group = str(node.gid) if "n" in flags else (fs.group_name(node.gid) or str(node.gid))
        subdirs = sum(1 for p, n in fs.nodes.items() if n.is_dir and p != "/" and posixpath.dirname(p) == path)
        links = 2 + subdirs if node.is_dir else 1
        size = {"null": "1, 3", "zero": "1, 5"}.get(node.device) or (
            _human(node.size) if "h" in flags else str(node.size)
        )
        when = datetime.fromtimestamp(node.mtime, zone(proc))
        recent = abs((now - when).days) < 182
        date = f"{when:%b} {when.day:2d} " + (f"{when:%H:%M}" if recent else f" {when.year}")
        rows.append((_mode(node), str(links), owner, group, size, date, name + suffix(node)))
    widths = [max((len(row[n]) for row in rows), default=0) for n in range(5)]
    lines = [
        f"{s}{r[0]} {r[1]:>{widths[1]}} {r[2]:<{widths[2]}} {r[3]:<{widths[3]}} {r[4]:>{widths[4]}} {r[5]} {r[6]}\n"
        for s, r in zip(sized, rows, strict=True)
    ]
    return head + "".join(lines)


# --------------------------------------------------------------------------------------------
# mkdir, rmdir, rm, touch
# --------------------------------------------------------------------------------------------


async def _mkdir(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "pvm:", {"parents": "p", "verbose": "v", "mode": "m"})
    except OptionError as error:
        return await usage_error(proc, "mkdir", error)
    if not names:
        return await usage_error(proc, "mkdir", OptionError("missing operand"))
    flags = {flag for flag, _ in options}
    mode = next((int(value, 8) for flag, value in options if flag == "m" and re.fullmatch(r"[0-7]+", value)), 0o755)
    status = 0
    for name in names:
        try:
            made = proc.fs.mkdir(proc.path(name), proc.user, parents="p" in flags, mode=mode)
            if "v" in flags:  # each one as it was named: the operand's own spelling for its parents
                shown = [name[: len(name) - (len(proc.path(name)) - len(path))] for path in made]
                await proc.out("".join(f"mkdir: created directory {shell_quote(s)}\n" for s in shown))
        except FsError as error:
            await proc.err(f"mkdir: cannot create directory {proc.quote(name)}: {error}\n")
            status = 1
    return status


async def _rmdir(args: list[str], proc: Proc) -> int:
    try:
        _, names = getopt(args, "pv", {"parents": "p", "verbose": "v"})
    except OptionError as error:
        return await usage_error(proc, "rmdir", error)
    if not names:
        return await usage_error(proc, "rmdir", OptionError("missing operand"))
    status = 0
    for name in names:
        try:
            proc.fs.remove(proc.path(name), proc.user, directory=True)
        except FsError as error:
            await proc.err(f"rmdir: failed to remove {shell_quote(name)}: {error}\n")
            status = 1
    return status


async def _rm(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "frRidv", {"force": "f", "recursive": "r", "dir": "d", "verbose": "v"})
    except OptionError as error:
        return await usage_error(proc, "rm", error)
    flags = {flag for flag, _ in options}
    if not names:
        return 0 if "f" in flags else await usage_error(proc, "rm", OptionError("missing operand"))
    recursive = bool(flags & {"r", "R"})
    status = 0
    for name in names:
        path = proc.path(name)
        if path == "/" and recursive:
            await proc.err("rm: it is dangerous to operate recursively on '/'\n")
            await proc.err("rm: use --no-preserve-root to override this failsafe\n")
            status = 1
            continue
        try:
            node = proc.fs.lookup(path, proc.user)
            empty_dir = node.is_dir and "d" in flags and not proc.fs.listdir(path, proc.user)
            proc.fs.remove(path, proc.user, recursive=recursive, directory=bool(empty_dir))
            if "v" in flags:
                await proc.out(f"removed {'directory ' if node.is_dir else ''}{shell_quote(name)}\n")
        except FsError as error:
            if "f" in flags and error.code == 2:
                continue
            await proc.err(f"rm: cannot remove {shell_quote(name)}: {error}\n")
            status = 1
    return status


async def _touch(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "acmd:t:", {"no-create": "c", "date": "d"})
    except OptionError as error:
        return await usage_error(proc, "touch", error)
    if not names:
        return await usage_error(proc, "touch", OptionError("missing file operand"))
    create = not any(flag == "c" for flag, _ in options)
    status = 0
    for name in names:
        path = proc.path(name)
        try:
            if create or proc.fs.get(path) is not None:
                proc.fs.touch(path, proc.user)
        except FsError as error:
            await proc.err(f"touch: cannot touch {shell_quote(name)}: {error}\n")
            status = 1
    return status


# --------------------------------------------------------------------------------------------
# cp, mv, chmod
# --------------------------------------------------------------------------------------------


def _destination(proc: Proc, target: str) -> tuple[str, bool]:
    """Where sources go: into `target` if it is a directory (then True), else `target` itself."""
    path = proc.path(target)
    node = proc.fs.get(path)
    return path, bool(node is not None and node.is_dir)


async def _operands(proc: Proc, command: str, names: list[str]) -> tuple[list[str], str, str, bool] | int:
    """cp's and mv's operands: the sources, the target as given and as a path, and whether the sources go
    into it (a directory); or the exit status once GNU's message for a missing or wrong target is written."""
    if len(names) < 2:
        text = (
            "missing file operand" if not names else f"missing destination file operand after {shell_quote(names[0])}"
        )
        return await usage_error(proc, command, OptionError(text))
    *sources, target = names
    target_path, into = _destination(proc, target)
    if len(sources) > 1 and not into:
        reason = ": No such file or directory" if proc.fs.get(target_path) is None else " is not a directory"
        await proc.err(f"{command}: target {shell_quote(target)}{reason}\n")
        return 1
    return sources, target, target_path, into


async def _cp(args: list[str], proc: Proc) -> int:
    try:
        options, names = getopt(args, "rRafpvn", {"recursive": "r", "archive": "a", "force": "f"})
    except OptionError as error:
        return await usage_error(proc, "cp", error)
    flags = {flag for flag, _ in options}
    operands = await _operands(proc, "cp", names)
    if isinstance(operands, int):
        return operands
    sources, target, target_path, into = operands
    status = 0
    for source in sources:
        path = proc.path(source)
        destination = posixpath.join(target_path, posixpath.basename(path)) if into else target_path
        try:
            node = proc.fs.lookup(path, proc.user)
        except FsError as error:
            await proc.err(f"cp: cannot stat {shell_quote(source)}: {error}\n")
            status = 1
            continue
        if node.is_dir and not flags & {"r", "R", "a"}:
            await proc.err(f"cp: -r not specified; omitting directory {shell_quote(source)}\n")
            status = 1
            continue
        if destination == path:
            await proc.err(f"cp: {shell_quote(source)} and {shell_quote(target)} are the same file\n")
            status = 1
            continue
        try:
            _copy(proc, path, destination)
        except FsError as error:
            await proc.err(f"cp: cannot create regular file {shell_quote(target)}: {error}\n")
            status = 1
    return status


def _copy(proc: Proc, source: str, destination: str) -> None:
    node = proc.fs.lookup(source, proc.user)
    if not node.is_dir:
        proc.fs.write(destination, proc.fs.read(source, proc.user), proc.user)
        return
    if proc.fs.get(destination) is None:
        proc.fs.mkdir(destination, proc.user, mode=node.mode)
    for name in proc.fs.listdir(source, proc.user):
        _copy(proc, posixpath.join(source, name), posixpath.join(destination, name))


async def _mv(args: list[str], proc: Proc) -> int:
    try:
        _, names = getopt(args, "fivn", {"force": "f", "verbose": "v"})
    except OptionError as error:
        return await usage_error(proc, "mv", error)
    operands = await _operands(proc, "mv", names)
    if isinstance(operands, int):
        return operands
    sources, target, target_path, into = operands
    status = 0
    for source in sources:
        path = proc.path(source)
        destination = posixpath.join(target_path, posixpath.basename(path)) if into else target_path
        try:
            proc.fs.lookup(path, proc.user)
        except FsError as error:
            await proc.err(f"mv: cannot stat {shell_quote(source)}: {error}\n")
            status = 1
            continue
        if destination == path:
            await proc.err(f"mv: {shell_quote(source)} and {shell_quote(target)} are the same file\n")
            status = 1
            continue
        try:
            proc.fs.move(path, destination, proc.user)
        except FsError as error:
            await proc.err(f"mv: cannot move {shell_quote(source)} to {shell_quote(target)}: {error}\n")
            status = 1
    return status


def _symbolic_mode(spec: str, mode: int, is_dir: bool) -> int | None:
    for clause in spec.split(","):
        match = re.fullmatch(r"([ugoa]*)([-+=])([rwxXst]*)", clause)
        if match is None:
            return None
        who = match[1] or "a"
        bits = 0
        for perm in match[3]:
            value = {"r": 4, "w": 2, "x": 1, "X": 1 if is_dir or mode & 0o111 else 0}.get(perm, 0)
            for target, shift in (("u", 6), ("g", 3), ("o", 0)):
                if target in who or "a" in who:
                    bits |= value << shift
        if match[2] == "+":
            mode |= bits
        elif match[2] == "-":
            mode &= ~bits
        else:
            mask = sum(7 << shift for target, shift in (("u", 6), ("g", 3), ("o", 0)) if target in who or "a" in who)
            mode = (mode & ~mask) | bits
    return mode


async def _chmod(args: list[str], proc: Proc) -> int:
    recursive = "-R" in args
    args = [a for a in args if a not in ("-R", "-v", "-f")]
    if len(args) < 2:
        text = "missing operand" if not args else f"missing operand after {proc.quote(args[0])}"
        return await usage_error(proc, "chmod", OptionError(text))
    spec, *names = args
    status = 0
    for name in names:
        path = proc.path(name)
        paths = [path] + ([p for p in proc.fs.nodes if p.startswith(path.rstrip("/") + "/")] if recursive else [])
        for each in paths:
            try:
                node = proc.fs.lookup(each, proc.user)
            except FsError as error:
                await proc.err(f"chmod: cannot access {shell_quote(name)}: {error}\n")
                status = 1
                break
            mode = int(spec, 8) if re.fullmatch(r"[0-7]{1,4}", spec) else _symbolic_mode(spec, node.mode, node.is_dir)
            if mode is None:
                await proc.err(f"chmod: invalid mode: {proc.quote(spec)}\nTry 'chmod --help' for more information.\n")
                return 1
            try:
                proc.fs.chmod(each, mode, proc.user)
            except FsError as error:
                await proc.err(f"chmod: changing permissions of {shell_quote(name)}: {error}\n")
                status = 1
    return status


# --------------------------------------------------------------------------------------------
# basename, dirname, pwd
# --------------------------------------------------------------------------------------------


async def _basename(args: list[str], proc: Proc) -> int:
    if not args:
        return await usage_error(proc, "basename", OptionError("missing operand"))
    name = args[0].rstrip("/") or ("/" if args[0] else "")
    base = name.rsplit("/", 1)[-1] if name != "/" else "/"
    if len(args) > 1 and base.endswith(args[1]) and base != args[1]:
        base = base[: -len(args[1])]
    await proc.out(base + "\n")
    return 0


async def _dirname(args: list[str], proc: Proc) -> int:
    if not args:
        return await usage_error(proc, "dirname", OptionError("missing operand"))
    for arg in args:
        trimmed = arg.rstrip("/")
        if not trimmed:
            head = "/" if arg else "."
        else:
            head = (trimmed.rsplit("/", 1)[0].rstrip("/") or "/") if "/" in trimmed else "."
        await proc.out(head + "\n")
    return 0


async def _pwd(args: list[str], proc: Proc) -> int:
    await proc.out(proc.cwd + "\n")
    return 0


# --------------------------------------------------------------------------------------------
# test and [ (dash's builtin)
# --------------------------------------------------------------------------------------------

_UNARY = {f"-{c}" for c in "rwxefdcbpugkstznhOGLS"}
_BINARY = {"=", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef"}
_OPERATORS = _UNARY | _BINARY | {"!", "-a", "-o", "(", ")"}


class _TestError(Exception):
    """dash's `syntax(op, message)`: "op: message" (or the message alone)."""


def _integer(text: str) -> int:
    if not re.fullmatch(r"\s*[-+]?\d+", text):
        raise _TestError(f"Illegal number: {text}")
    return int(text)


def _unary(op: str, operand: str, proc: Proc) -> bool:
    if op in ("-z", "-n"):
        return (operand == "") == (op == "-z")
    try:
        node = proc.fs.lookup(proc.path(operand), proc.user) if operand else None
    except FsError:
        node = None
    if node is None or op in ("-t", "-h", "-L", "-S", "-p", "-b"):
        return False
    checks = {
        "-e": True,
        "-f": not node.is_dir and not node.device,
        "-d": node.is_dir,
        "-c": bool(node.device),
        "-s": node.size > 0 and not node.device,
        "-r": proc.fs.allowed(node, proc.user, 4),
        "-w": proc.fs.allowed(node, proc.user, 2),
        "-x": proc.fs.allowed(node, proc.user, 1),
        "-k": bool(node.mode & 0o1000),
        "-u": bool(node.mode & 0o4000),
        "-g": bool(node.mode & 0o2000),
        "-O": node.uid == proc.user.uid,
        "-G": node.gid == proc.user.gid,
    }
    return checks[op]


def _binary(left: str, op: str, right: str) -> bool:
    if op in ("=", "!="):
        return (left == right) == (op == "=")
    if op in ("<", ">"):
        return left < right if op == "<" else left > right
    if op in ("-nt", "-ot", "-ef"):
        return False
    a, b = _integer(left), _integer(right)
    return {"-eq": a == b, "-ne": a != b, "-lt": a < b, "-le": a <= b, "-gt": a > b, "-ge": a >= b}[op]


class _Test:
    """dash's test(1) (src/bltin/test.c): POSIX's rules for 3 and 4 arguments, then its -o/-a/!/( ) grammar,
    tokens looked at one ahead as dash does, so its errors name the same token."""

    def __init__(self, args: list[str], proc: Proc) -> None:
        self.words: list[str | None] = [*args, None, None]
        self.proc = proc
        self.k = 0
        self.op: str | None = None

    def run(self) -> bool:
        args = [w for w in self.words if w is not None]
        result = True
        while True:
            if not args:
                return not result
            if len(args) == 3 and args[1] in _BINARY:
                self.words, self.k = [*args, None, None], 0
                result = result == self.oexpr("operand")
                break
            if len(args) in (3, 4) and args[0] == "(" and args[-1] == ")":
                args = args[1:-1]
            elif len(args) in (3, 4) and args[0] == "!":
                result, args = not result, args[1:]
                continue
            self.words, self.k = [*args, None, None], 0
            result = result == self.oexpr(self.lex(0))
            break
        if self.words[self.k] is not None and self.words[self.k + 1] is not None:
            raise _TestError(f"{self.words[self.k]}: unexpected operator")
        return result

    def lex(self, k: int) -> str:
        """The kind of word k: an operator's text, "operand", or "end"."""
        word = self.words[k] if k < len(self.words) else None
        if word is None:
            self.op = None
            return "end"
        after = self.words[k + 1]
        operand = word in _UNARY and (after is None or (self.words[k + 2] is not None and after in _BINARY))
        if word in _OPERATORS and not operand and not (word == "(" and self.words[k + 1] is None):
            self.op = word
            return word
        self.op = None
        return "operand"

    def oexpr(self, kind: str) -> bool:
        result = False
        while True:
            result = self.aexpr(kind) or result
            if self.lex(self.k + 1) != "-o":
                return result
            self.k += 2
            kind = self.lex(self.k)

    def aexpr(self, kind: str) -> bool:
        result = True
        while True:
            result = self.nexpr(kind) and result
            if self.lex(self.k + 1) != "-a":
                return result
            self.k += 2
            kind = self.lex(self.k)

    def nexpr(self, kind: str) -> bool:
        if kind == "!":
            self.k += 1
            return not self.nexpr(self.lex(self.k))
        return self.primary(kind)

    def primary(self, kind: str) -> bool:
        if kind == "end":
            return False
        if kind == "(":
            self.k += 1
            inner = self.lex(self.k)
            if inner == ")":
                return False
            result = self.oexpr(inner)
            self.k += 1
            if self.lex(self.k) != ")":
                raise _TestError("closing paren expected")
            return result
        word = self.words[self.k] or ""
        if kind in _UNARY:
            self.k += 1
            operand = self.words[self.k]
            if operand is None:
                raise _TestError(f"{kind}: argument expected")
            return _unary(kind, operand, self.proc)
        if self.lex(self.k + 1) in _BINARY:
            self.k += 1
            op = self.words[self.k] or ""
            self.k += 1
            right = self.words[self.k]
            if right is None:
                raise _TestError(f"{op}: argument expected")
            return _binary(word, op, right)
        return word != ""


async def _test(args: list[str], proc: Proc, name: str = "test") -> int:
    try:
        return 0 if _Test(args, proc).run() else 1
    except _TestError as error:
        await proc.err(f"{proc.where}{name}: {error}\n")
        return 2


async def _bracket(args: list[str], proc: Proc) -> int:
    if args[-1:] != ["]"]:
        await proc.err(f"{proc.where}[: missing ]\n")
        return 2
    return await _test(args[:-1], proc, "[")


FILE_COMMANDS: dict[str, Command] = {
    "ls": _ls,
    "mkdir": _mkdir,
    "rmdir": _rmdir,
    "rm": _rm,
    "touch": _touch,
    "cp": _cp,
    "mv": _mv,
    "chmod": _chmod,
    "basename": _basename,
    "dirname": _dirname,
    "pwd": _pwd,
    "test": _test,
    "[": _bracket,
}
