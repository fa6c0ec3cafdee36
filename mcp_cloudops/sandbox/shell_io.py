"""What a sandbox command runs with: its streams (stdin, pipes between pipeline stages, stdout/stderr through
`write`), its files, environment, working directory, user and image, and the clock `date` and `sleep` read."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from mcp_cloudops.sandbox.shell_fs import ROOT, FileSystem, FsError, User

Write = Callable[[int, bytes], Awaitable[None]]
"""write(stream, data): stream 1 is stdout, 2 is stderr."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PIPE_BUFFER = 1 << 16  # what a writer may get ahead of its reader, as a Linux pipe
READ_LIMIT = 8 << 20  # what a command that reads all its input (sort, wc) holds at most


class Stdin:
    """A process's standard input: chunks fed from a websocket, a file or a pipe; EOF once closed.
    `size` is the byte count when it is a regular file (what `wc` sizes its columns by), else None."""

    def __init__(self, size: int | None = None) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending = b""
        self._closed = False
        self._at_eof = False
        self.size = size

    @classmethod
    def empty(cls) -> Stdin:
        """A stdin already at EOF, like /dev/null."""
        stdin = cls()
        stdin.close()
        return stdin

    @classmethod
    def of(cls, data: bytes) -> Stdin:
        """A stdin reading a file's bytes, then EOF."""
        stdin = cls(len(data))
        stdin.feed(data)
        stdin.close()
        return stdin

    def feed(self, data: bytes) -> None:
        if not self._closed and data:
            self._queue.put_nowait(data)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def _next(self) -> bytes | None:
        data = await self._queue.get()
        if data is None:
            self._at_eof = True
        return data

    async def read(self) -> bytes | None:
        """The next chunk, or None at EOF."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._at_eof:
            return None
        return await self._next()

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

    async def read_all(self, limit: int = READ_LIMIT) -> bytes:
        """Everything up to EOF; more than `limit` bytes is refused as memory exhausted."""
        chunks: list[bytes] = []
        total = 0
        while (chunk := await self.read()) is not None:
            total += len(chunk)
            if total > limit:
                raise InputTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def lines(self, limit: int = READ_LIMIT) -> AsyncIterator[bytes]:
        """Each line with its newline (the last may have none), as it arrives; a line over `limit` bytes is
        refused as memory exhausted."""
        buffer = b""
        while (chunk := await self.read()) is not None:
            *complete, buffer = (buffer + chunk).split(b"\n")
            for line in complete:
                yield line + b"\n"
            if len(buffer) > limit:
                raise InputTooLarge
        if buffer:
            yield buffer

    def unread(self, data: bytes) -> None:
        """Put back what was read past the end of a line (`head` stops mid-chunk)."""
        self._pending = data + self._pending


class InputTooLarge(Exception):
    """A command that holds all its input (sort, tail) was given more than `READ_LIMIT` bytes."""


class Zeros(Stdin):
    """/dev/zero: NUL bytes for as long as anyone reads."""

    async def _next(self) -> bytes | None:
        await anyio.sleep(0)
        return bytes(4096)


class ReaderGone(Exception):
    """Written to a pipe whose reader has finished: the writer dies of SIGPIPE (exit 141)."""


class Pipe(Stdin):
    """A pipe between two pipeline stages: its writer waits while `PIPE_BUFFER` bytes are unread, and fails
    once the reader has finished (`hang_up`)."""

    def __init__(self) -> None:
        super().__init__()
        self._unread = 0
        self._drained = asyncio.Event()
        self.reader_gone = False

    async def put(self, data: bytes) -> None:
        while not self.reader_gone and self._unread >= PIPE_BUFFER:
            self._drained.clear()
            await self._drained.wait()
        if self.reader_gone:
            raise ReaderGone
        self._unread += len(data)
        self.feed(data)

    async def _next(self) -> bytes | None:
        data = await super()._next()
        if data:
            self._unread -= len(data)
            self._drained.set()
        return data

    def hang_up(self) -> None:
        self.reader_gone = True
        self._drained.set()


class ShellExit(Exception):
    """`exit N`: ends the script or shell it runs in."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def default_env() -> dict[str, str]:
    return {"PATH": DEFAULT_PATH, "HOME": "/root"}


@dataclass
class Proc:
    """The environment one command runs in: its streams, the instance's files (`fs`; a fresh tree for
    `hostname` if none is given, simulators pass the instance's own), the exec's environment, working directory
    and user, the `image` it claims to run (its programs' version flags, its service user, its PID 1), the clock
    `date` reads and the `sleep` it waits with. `where` is the prefix a shell builtin's errors carry ("sh: 3: "),
    empty outside a shell."""

    write: Write
    stdin: Stdin
    hostname: str = "sandbox"
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    fs: FileSystem = None  # type: ignore[assignment]  # set in __post_init__
    env: dict[str, str] = field(default_factory=default_env)
    cwd: str = "/root"
    user: User = ROOT
    image: str = ""
    clock: Callable[[], float] = time.time
    where: str = ""
    cluster: Mapping[str, Mapping[str, Sequence[str]]] | None = None  # kubectl's: namespace -> pod -> containers

    def __post_init__(self) -> None:
        if self.fs is None:
            self.fs = FileSystem(self.hostname, self.image, clock=self.clock)

    async def out(self, text: str) -> None:
        await self.write(1, text.encode(errors="surrogateescape"))

    async def err(self, text: str) -> None:
        await self.write(2, text.encode(errors="surrogateescape"))

    def path(self, name: str) -> str:
        """`name` made absolute against the working directory."""
        return FileSystem.resolve(self.cwd, name)

    def quote(self, text: str) -> str:
        """GNU's locale quoting (‘x’ under a UTF-8 locale, 'x' otherwise), as in "invalid number of lines"."""
        locale = self.env.get("LC_ALL") or self.env.get("LC_MESSAGES") or self.env.get("LANG") or ""
        return f"‘{text}’" if re.search(r"utf-?8", locale, re.IGNORECASE) else f"'{text}'"

    async def fail(self, program: str, name: str, error: FsError | str, status: int = 1) -> int:
        """`program: name: reason` on stderr; returns `status`."""
        await self.err(f"{program}: {name}: {error}\n")
        return status

    def open(self, name: str) -> Stdin:
        """A file to read as a stream (`-` and /dev/stdin are stdin); FsError if it cannot be read."""
        path = self.path(name)
        if name == "-" or path == "/dev/stdin":
            return self.stdin
        if path == "/dev/zero":
            return Zeros()
        return Stdin.of(self.fs.read(path, self.user))


def shell_quote(name: str) -> str:
    """GNU's shell-escape quoting of a file name in messages ("cannot access 'x'")."""
    return f'"{name}"' if "'" in name else f"'{name}'"


class OptionError(Exception):
    """A command line GNU getopt refuses: the message (e.g. "invalid option -- 'z'") and the usage hint."""


def getopt(args: list[str], short: str, long: dict[str, str] | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """GNU-style options: anywhere before `--`, clustered (`-la`), an argument attached or next (`-n5`, `-n 5`);
    `short` as getopt's ("n:c:qv"); `long` maps a long name to its short letter (a unique prefix is enough)."""
    long = long or {}
    options: list[tuple[str, str]] = []
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            operands += args[i:]
            break
        if arg.startswith("--"):
            name, equals, value = arg[2:].partition("=")
            matches = [n for n in long if n == name] or [n for n in long if n.startswith(name)]
            if len(matches) != 1:
                kind = "unrecognized" if not matches else "ambiguous"
                raise OptionError(f"{kind} option '{arg}'")
            letter = long[matches[0]]
            if f"{letter}:" in short and not equals:
                if i >= len(args):
                    raise OptionError(f"option '--{matches[0]}' requires an argument")
                value = args[i]
                i += 1
            options.append((letter, value))
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                letter = arg[j]
                if letter not in short.replace(":", ""):
                    raise OptionError(f"invalid option -- '{letter}'")
                if f"{letter}:" in short:
                    value = arg[j + 1 :]
                    if not value:
                        if i >= len(args):
                            raise OptionError(f"option requires an argument -- '{letter}'")
                        value = args[i]
                        i += 1
                    options.append((letter, value))
                    break
                options.append((letter, ""))
                j += 1
        else:
            operands.append(arg)
    return options, operands


async def usage_error(proc: Proc, program: str, error: OptionError, status: int = 1) -> int:
    await proc.err(f"{program}: {error}\nTry '{program} --help' for more information.\n")
    return status
