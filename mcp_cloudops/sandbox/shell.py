"""A deterministic stand-in for a container's shell, so sandbox exec/attach sessions have real output."""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

Write = Callable[[int, bytes], Awaitable[None]]
"""write(stream, data): stream 1 is stdout, 2 is stderr."""


class Stdin:
    """A process's standard input: chunks fed from a websocket; EOF once closed."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending = b""
        self._closed = False
        self._at_eof = False

    @classmethod
    def empty(cls) -> Stdin:
        """A stdin already at EOF, like /dev/null."""
        stdin = cls()
        stdin.close()
        return stdin

    def feed(self, data: bytes) -> None:
        if not self._closed and data:
            self._queue.put_nowait(data)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def read(self) -> bytes | None:
        """The next chunk, or None at EOF."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._at_eof:
            return None
        data = await self._queue.get()
        if data is None:
            self._at_eof = True
        return data

    async def readline(self) -> bytes | None:
        """The next line without its terminator (\\n, \\r or \\r\\n, as a TTY would take it)."""
        buffer = b""
        while True:
            match = re.search(rb"\r\n|\r|\n", buffer)
            if match:
                self._pending = buffer[match.end() :] + self._pending
                return buffer[: match.start()]
            chunk = await self.read()
            if chunk is None:
                return buffer or None
            buffer += chunk


class ShellExit(Exception):
    """`exit N`: ends the script or shell it runs in."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Proc:
    """The environment one command runs in."""

    write: Write
    stdin: Stdin
    hostname: str = "sandbox"
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    async def out(self, text: str) -> None:
        await self.write(1, text.encode())

    async def err(self, text: str) -> None:
        await self.write(2, text.encode())


_LS = "bin\netc\nhome\nroot\ntmp\nusr\nvar\n"
_OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
_KUBECTL = {
    "pods": "NAME    READY   STATUS    RESTARTS   AGE\n"
    "web-0   1/1     Running   0          3d\n"
    "web-1   1/1     Running   0          3d\n",
    "namespaces": "NAME              STATUS   AGE\ndefault           Active   30d\nkube-system       Active   30d\n",
    "nodes": "NAME      STATUS   ROLES           AGE   VERSION\nsandbox   Ready    control-plane   30d   v1.30.0\n",
}
_KUBECTL_ALIASES = {"pod": "pods", "po": "pods", "ns": "namespaces", "namespace": "namespaces", "node": "nodes"}


def _parse_int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


async def _echo(args: list[str], proc: Proc) -> int:
    await proc.out(" ".join(args) + "\n")
    return 0


async def _true(args: list[str], proc: Proc) -> int:
    return 0


async def _false(args: list[str], proc: Proc) -> int:
    return 1


async def _exit(args: list[str], proc: Proc) -> int:
    code = _parse_int(args[0]) if args else 0
    raise ShellExit(2 if code is None else code & 0xFF)


async def _uname(args: list[str], proc: Proc) -> int:
    if "-a" in args:
        await proc.out(f"Linux {proc.hostname} 6.1.0-sandbox #1 SMP PREEMPT_DYNAMIC x86_64 GNU/Linux\n")
    elif "-r" in args:
        await proc.out("6.1.0-sandbox\n")
    elif "-n" in args:
        await proc.out(proc.hostname + "\n")
    else:
        await proc.out("Linux\n")
    return 0


async def _hostname(args: list[str], proc: Proc) -> int:
    await proc.out(proc.hostname + "\n")
    return 0


async def _ls(args: list[str], proc: Proc) -> int:
    await proc.out(_LS)
    return 0


async def _pwd(args: list[str], proc: Proc) -> int:
    await proc.out("/root\n")
    return 0


async def _whoami(args: list[str], proc: Proc) -> int:
    await proc.out("root\n")
    return 0


async def _cat(args: list[str], proc: Proc) -> int:
    files = {"/etc/hostname": proc.hostname + "\n", "/etc/os-release": _OS_RELEASE}
    if not args or args == ["-"]:
        while (chunk := await proc.stdin.read()) is not None:
            await proc.write(1, chunk)
        return 0
    status = 0
    for name in args:
        if name in files:
            await proc.out(files[name])
        else:
            await proc.err(f"cat: {name}: No such file or directory\n")
            status = 1
    return status


async def _seq(args: list[str], proc: Proc) -> int:
    numbers = [_parse_int(arg) for arg in args]
    if not 1 <= len(args) <= 2:
        await proc.err("seq: missing operand\n" if not args else f"seq: extra operand '{args[2]}'\n")
        return 1
    for arg, number in zip(args, numbers, strict=True):
        if number is None:
            await proc.err(f"seq: invalid floating point argument: '{arg}'\n")
            return 1
    first, last = (1, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])
    for start in range(first or 0, (last or 0) + 1, 1000):
        await proc.out("".join(f"{n}\n" for n in range(start, min(start + 1000, (last or 0) + 1))))
        await anyio.sleep(0)
    return 0


async def _sleep(args: list[str], proc: Proc) -> int:
    try:
        seconds = float(args[0].removesuffix("s"))
    except (IndexError, ValueError):
        await proc.err(f"sleep: invalid time interval '{args[0] if args else ''}'\n")
        return 1
    await proc.sleep(seconds)
    return 0


async def _yes(args: list[str], proc: Proc) -> int:
    line = (" ".join(args) or "y") + "\n"
    chunk = (line * max(1, 2048 // len(line))).encode()
    while True:
        await proc.write(1, chunk)
        await anyio.sleep(0)


async def _kubectl(args: list[str], proc: Proc) -> int:
    words = [arg for arg in args if not arg.startswith("-")]
    if words[:1] == ["version"]:
        await proc.out("Client Version: v1.30.0\nServer Version: v1.30.0\n")
        return 0
    if words[:1] == ["get"] and len(words) >= 2:
        kind = _KUBECTL_ALIASES.get(words[1], words[1])
        if kind in _KUBECTL:
            await proc.out(_KUBECTL[kind])
            return 0
        await proc.err(f'error: the server doesn\'t have a resource type "{words[1]}"\n')
        return 1
    await proc.err(f'error: unknown command "{" ".join(words)}" for "kubectl"\n')
    return 1


async def _sh(args: list[str], proc: Proc) -> int:
    if args[:1] == ["-c"]:
        if len(args) < 2:
            await proc.err("sh: 0: -c requires an argument\n")
            return 2
        return await run_script(args[1], proc)
    if args:
        await proc.err(f"sh: 0: cannot open {args[0]}: No such file\n")
        return 2
    return await run_shell(proc)


COMMANDS: dict[str, Callable[[list[str], Proc], Awaitable[int]]] = {
    "echo": _echo,
    "true": _true,
    "false": _false,
    "exit": _exit,
    "uname": _uname,
    "hostname": _hostname,
    "ls": _ls,
    "pwd": _pwd,
    "whoami": _whoami,
    "cat": _cat,
    "seq": _seq,
    "sleep": _sleep,
    "yes": _yes,
    "kubectl": _kubectl,
    "sh": _sh,
    "bash": _sh,
}


def is_known(program: str) -> bool:
    """Whether the interpreter has `program` (a path like /bin/echo counts as echo)."""
    return program.rsplit("/", 1)[-1] in COMMANDS


async def _run_one(argv: Sequence[str], proc: Proc) -> int:
    if not argv:
        return 0
    command = COMMANDS.get(argv[0].rsplit("/", 1)[-1])
    if command is None:
        await proc.err(f"sh: {argv[0]}: not found\n")
        return 127
    return await command(list(argv[1:]), proc)


async def run_command(argv: Sequence[str], proc: Proc) -> int:
    """Run one command (no shell parsing); returns its exit code."""
    try:
        return await _run_one(argv, proc)
    except ShellExit as done:
        return done.code


async def run_script(script: str, proc: Proc) -> int:
    """Run `sh -c SCRIPT`: words, quotes, the separators `;`, `&&`, `||` (pipes run in sequence), and
    `>&2` / `2>&1` moving one command's output between stdout and stderr."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|>")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        await proc.err("sh: syntax error: unterminated quoted string\n")
        return 2
    status, words, separator, moves = 0, [], ";", {}
    tokens = [*tokens, ";"]
    for index, token in enumerate(tokens):
        if token == ">&" or (index and tokens[index - 1] == ">&"):
            if token != ">&":  # the target of `[N]>&M`: N (default 1) now writes to M
                source = int(words.pop()) if words and words[-1] in ("1", "2") else 1
                moves[source] = int(token) if token in ("1", "2") else source
            continue
        if token.strip(";&|"):
            words.append(token)
            continue
        if words and not (separator == "&&" and status) and not (separator == "||" and not status):
            status = await _run_one(words, _redirected(proc, moves))
        words, separator, moves = [], token, {}
    return status


def _redirected(proc: Proc, moves: dict[int, int]) -> Proc:
    if not moves:
        return proc

    async def write(stream: int, data: bytes) -> None:
        await proc.write(moves.get(stream, stream), data)

    return Proc(write, proc.stdin, proc.hostname, proc.sleep)


async def run_shell(proc: Proc, prompt: str = "") -> int:
    """An interactive shell: one line of stdin at a time, until EOF or `exit`."""
    status = 0
    while True:
        if prompt:
            await proc.out(prompt)
        line = await proc.stdin.readline()
        if line is None:
            return status
        try:
            status = await run_script(line.decode(errors="replace"), proc)
        except ShellExit as done:
            return done.code
