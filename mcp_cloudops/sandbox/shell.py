"""The sandbox's stand-in for a container's `/bin/sh` (Debian's dash), so exec/attach sessions do what they say.

It runs what `shell_parse` accepts: simple commands with `VAR=value` prefixes, `;` `&&` `||` `|` `!`, the
redirections `>` `>>` `<` `<<` `2>` `2>&1` `>&2`, quoting, parameters, `~` and pathname patterns, against the
instance's own files (`shell_fs`) with its environment, working directory and user. The commands are in
`shell_text`, `shell_files` and `shell_system`; anything else exits 127 and says what the sandbox has. Nothing
is pretended: a construct it cannot run is refused with exit 2, never half-done. Error texts follow dash and
GNU coreutils (Debian 12) word for word.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence

import anyio

from mcp_cloudops.sandbox.shell_expand import ExpansionError, fields, here_document, single
from mcp_cloudops.sandbox.shell_files import FILE_COMMANDS
from mcp_cloudops.sandbox.shell_fs import FileSystem, FsError, User
from mcp_cloudops.sandbox.shell_io import (
    InputTooLarge,
    Pipe,
    Proc,
    ReaderGone,
    ShellExit,
    Stdin,
    Write,
    Zeros,
    shell_quote,
)
from mcp_cloudops.sandbox.shell_parse import (
    TABLE_BASE,
    AndOr,
    HereDoc,
    Param,
    Pipeline,
    Redirect,
    ShellSyntaxError,
    Simple,
    Unsupported,
    parse,
)
from mcp_cloudops.sandbox.shell_system import SYSTEM_COMMANDS, image_program, version_line
from mcp_cloudops.sandbox.shell_text import TEXT_COMMANDS

__all__ = ["COMMANDS", "Proc", "ShellExit", "Stdin", "Write", "is_known", "run_command", "run_script", "run_shell"]

Command = Callable[[list[str], Proc], Awaitable[int]]
Builtin = Callable[["Shell", list[str], Proc], Awaitable[int]]
_SPECIAL_BUILTINS = frozenset({":", ".", "eval", "exec", "exit", "export", "set", "shift", "unset"})
_UNSUPPORTED_BUILTINS = frozenset(
    {"trap", "read", "alias", "unalias", "ulimit", "getopts", "local", "return", "break", "continue", "times"}
    | {"hash", "readonly", "jobs", "fg", "bg", "kill"}
)
_SPECIAL_PARAMETERS = frozenset("?#$0@*-")


class Shell:
    """One shell process: variables (all of them, `exported` naming the environment), working directory,
    options (`e`, `u`, `x`), positional parameters, the last status and the line being run."""

    def __init__(self, proc: Proc, name: str = "sh", args: Sequence[str] = (), options: str = "") -> None:
        self.proc = proc
        self.vars = dict(proc.env)
        self.exported = set(proc.env)
        self.cwd = proc.cwd
        self.vars["PWD"] = self.cwd
        self.exported.add("PWD")
        self.name = name
        self.args = list(args)
        self.options = set(options)
        self.status = 0
        self.line = 1
        self.table: list[Param | HereDoc] = []
        self.pid = 7

    # -- state -----------------------------------------------------------------------------

    def lookup(self, name: str) -> str | None:
        """A parameter's value; None when unset. "$@" comes NUL-separated: one field per argument."""
        if name in _SPECIAL_PARAMETERS:
            return {
                "?": str(self.status),
                "#": str(len(self.args)),
                "$": str(self.pid),
                "0": self.name,
                "@": "\x00".join(self.args),
                "*": " ".join(self.args),
                "-": "".join(sorted(self.options)),
            }[name]
        if name.isdigit():
            n = int(name)
            return self.args[n - 1] if 0 < n <= len(self.args) else None
        return self.vars.get(name)

    def assign(self, name: str, value: str) -> None:
        self.vars[name] = value

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {name: self.vars[name] for name in self.vars if name in self.exported}
        return env | (extra or {})

    def subshell(self) -> Shell:
        """A copy for a pipeline stage: what it changes (cd, variables, exit) stays in it."""
        copy = Shell.__new__(Shell)
        copy.__dict__ = dict(self.__dict__)
        copy.vars, copy.exported, copy.options, copy.args = (
            dict(self.vars),
            set(self.exported),
            set(self.options),
            list(self.args),
        )
        return copy

    @property
    def where(self) -> str:
        return f"{self.name}: {self.line}: "

    # -- running ---------------------------------------------------------------------------

    async def run(self, script: str, first_line: int = 1) -> int:
        """Parse the whole script, then run it; a syntax error or unsupported construct runs nothing (exit 2)."""
        saved = self.table
        try:
            parsed = parse(script)
        except ShellSyntaxError as error:
            self.line = first_line + error.line - 1
            await self.proc.err(f"{self.where}Syntax error: {error.message}\n")
            self.status = 2
            return 2
        except Unsupported as error:
            self.line = first_line + error.line - 1
            await self.proc.err(_unsupported(self.where, error.construct))
            self.status = 2
            return 2
        self.table = parsed.table
        try:
            for item in parsed.items:
                await self.and_or(item, self.proc, first_line)
        finally:
            self.table = saved
        return self.status

    async def and_or(self, item: AndOr, proc: Proc, first_line: int = 1) -> int:
        status = await self.pipeline(item.first, proc, first_line)
        last = item.first
        for op, pipeline in item.rest:
            if (op == "&&") == (status == 0):
                status = await self.pipeline(pipeline, proc, first_line)
                last = pipeline
        final = item.rest[-1][1] if item.rest else item.first
        if status and "e" in self.options and last is final and not last.negate:
            raise ShellExit(status)
        return status

    async def pipeline(self, pipeline: Pipeline, proc: Proc, first_line: int) -> int:
        if len(pipeline.commands) == 1:
            status = await self.simple(pipeline.commands[0], proc, first_line)
        else:
            status = await self._stages(pipeline.commands, proc, first_line)
        self.status = (0 if status else 1) if pipeline.negate else status
        return self.status

    async def _stages(self, commands: list[Simple], proc: Proc, first_line: int) -> int:
        """Every stage runs at once in a subshell, each one's stdout feeding the next one's stdin."""
        pipes = [Pipe() for _ in commands[1:]]
        statuses = [0] * len(commands)

        async def stage(n: int) -> None:
            out = pipes[n] if n < len(pipes) else None

            async def write(stream: int, data: bytes) -> None:
                await (out.put(data) if stream == 1 and out is not None else proc.write(stream, data))

            staged = dataclasses.replace(proc, write=write, stdin=pipes[n - 1] if n else proc.stdin)
            try:
                statuses[n] = await self.subshell().simple(commands[n], staged, first_line)
            except ReaderGone:
                statuses[n] = 141
            except ShellExit as done:
                statuses[n] = done.code
            finally:
                if out is not None:
                    out.close()
                if n:
                    pipes[n - 1].hang_up()

        async with anyio.create_task_group() as tg:
            for n in range(len(commands)):
                tg.start_soon(stage, n)
        return statuses[-1]

    async def simple(self, command: Simple, proc: Proc, first_line: int = 1) -> int:
        self.line = first_line + command.line - 1
        before: dict[str, str | None] = {}  # what the assignments replaced
        assigns: list[tuple[str, str]] = []
        try:
            argv = [field for word in command.words for field in fields(word, self)]
            for word in command.assigns:  # in order, each one seeing those before it
                key, _, raw = word.partition("=")
                assigns.append((key, single(raw, self)))
                before.setdefault(key, self.vars.get(key))
                self.vars[key] = assigns[-1][1]
        except ExpansionError as error:
            await proc.err(f"{self.where}{error}\n")
            raise ShellExit(2) from error
        except Unsupported as error:
            await proc.err(_unsupported(self.where, error.construct))
            raise ShellExit(2) from error
        special = not argv or argv[0] in _SPECIAL_BUILTINS
        if not special:  # a command's own assignments are for its environment only
            for key, old in before.items():
                if old is None:
                    del self.vars[key]
                else:
                    self.vars[key] = old
        if "x" in self.options:
            await proc.err("+ " + " ".join([f"{k}={v}" for k, v in assigns] + argv) + "\n")
        streams = _Streams(proc)
        if not await self._redirect(command.redirects, streams):
            self.status = 2
            return 2
        if not argv:
            return 0
        child = dataclasses.replace(
            proc,
            write=streams.write,
            stdin=streams.stdin,
            env=self.environ(None if special else dict(assigns)),
            cwd=self.cwd,
            where=self.where,
        )
        return await self.execute(argv, child)

    async def execute(self, argv: list[str], proc: Proc, *, direct: bool = False) -> int:
        """Run a command (a builtin, a known program, a script file); a write error or a full input becomes a
        status. `direct`: an exec's own command, which no shell runs."""
        name = argv[0]
        try:
            if name in BUILTINS:
                return await BUILTINS[name](self, argv[1:], proc)
            if name in _UNSUPPORTED_BUILTINS and not direct:
                await proc.err(_unsupported(proc.where, f"the builtin {name}"))
                return 2
            return await _program(argv, proc, None if direct else self.name)
        except FsError as error:
            await _say(proc, f"{name.rsplit('/', 1)[-1]}: write error: {error}\n")
            return 1
        except InputTooLarge:
            await _say(proc, f"{name.rsplit('/', 1)[-1]}: memory exhausted\n")
            return 2

    async def _redirect(self, redirects: list[Redirect], streams: _Streams) -> bool:
        """Open the redirections in order; False (having said why, as dash does) if one cannot be."""
        fs, user = self.proc.fs, self.proc.user
        for redirect in redirects:
            if redirect.op == "<<":
                entry = self.table[ord(redirect.target[0]) - TABLE_BASE]
                assert isinstance(entry, HereDoc)
                streams.stdin = Stdin.of(here_document(entry, self).encode(errors="surrogateescape"))
                streams.stdin.size = None  # dash hands a here-document over through a pipe
                continue
            target = single(redirect.target, self)
            if redirect.fd > 2:
                await self.proc.err(_unsupported(self.where, f"file descriptor {redirect.fd}"))
                return False
            if redirect.op in (">&", "<&"):
                if target == "-" or not target.isdigit() or int(target) > 2:
                    await streams.err(_unsupported(self.where, f"{redirect.op}{target}"))
                    return False
                if redirect.fd == 0 or int(target) == 0:
                    continue
                streams.out[redirect.fd] = streams.out[int(target)]
                continue
            path = FileSystem.resolve(self.cwd, target)
            device = {"/dev/stdout": 1, "/dev/stderr": 2}.get(path)
            if redirect.op in ("<", "<>"):
                if path == "/dev/zero":
                    streams.stdin = Zeros()
                    continue
                if path == "/dev/stdin":
                    continue
                try:
                    streams.stdin = Stdin.of(b"" if path == "/dev/null" else fs.read(path, user))
                except FsError as error:
                    reason = "No such file" if error.code == 2 else str(error)
                    await streams.err(f"{self.where}cannot open {target}: {reason}\n")
                    return False
                continue
            if device is not None:
                streams.out[redirect.fd] = streams.out[device]
                continue
            try:
                fs.write(path, b"", user, append=redirect.op == ">>")
            except FsError as error:
                reason = "Directory nonexistent" if error.code == 2 else str(error)
                await streams.err(f"{self.where}cannot create {target}: {reason}\n")
                return False
            streams.out[redirect.fd] = _file_sink(fs, path, user)
        return True


class _Streams:
    """A command's stdin and where its fds 1 and 2 go, as its redirections leave them."""

    def __init__(self, proc: Proc) -> None:
        self.stdin = proc.stdin
        self.out: dict[int, Callable[[bytes], Awaitable[None]]] = {
            1: lambda data: proc.write(1, data),
            2: lambda data: proc.write(2, data),
        }

    async def write(self, stream: int, data: bytes) -> None:
        await self.out[stream if stream in self.out else 1](data)

    async def err(self, text: str) -> None:
        await self.out[2](text.encode())


def _file_sink(fs: FileSystem, path: str, user: User) -> Callable[[bytes], Awaitable[None]]:
    async def sink(data: bytes) -> None:
        if fs.get(path) is not None:  # removed meanwhile: the data goes nowhere
            fs.write(path, data, user, append=True)

    return sink


def _unsupported(where: str, construct: str) -> str:
    return (
        f"{where}the sandbox shell does not support {construct}; it runs simple commands joined by "
        "; && || |, with redirections, quotes, $VARS and * patterns\n"
    )


async def _say(proc: Proc, text: str) -> None:
    """An error message that may itself have nowhere to go (stderr into a full filesystem)."""
    with contextlib.suppress(FsError):
        await proc.err(text)


# --------------------------------------------------------------------------------------------
# Programs: what a name runs
# --------------------------------------------------------------------------------------------


async def _program(argv: list[str], proc: Proc, shell_name: str | None) -> int:
    """A program by name or path; `shell_name` None means no shell is running it (a direct exec)."""
    name = argv[0]
    base = name.rsplit("/", 1)[-1]
    if "/" in name:
        path = proc.path(name)
        node = proc.fs.get(path)
        if node is not None and not node.is_dir and not node.device:
            return await _script_file(argv, path, proc)
        if node is not None or (base not in COMMANDS and not image_program(proc.image, base)):
            reason = "Permission denied" if node is not None else "not found"
            return await _missing(proc, name, shell_name, reason, 126 if node is not None else 127)
    if base in COMMANDS:
        if argv[1:] == ["--version"] and (line := version_line(base)):
            await proc.out(line + "\n")
            return 0
        return await COMMANDS[base](argv[1:], proc)
    program = image_program(proc.image, base)
    if program is not None:
        return await program(argv[1:], proc)
    return await _missing(proc, name, shell_name, "not found", 127)


async def _missing(proc: Proc, name: str, shell_name: str | None, reason: str, status: int) -> int:
    if shell_name is None:
        await proc.err(f"sh: {name}: {reason}\n")  # an exec of a program the instance lacks
        return status
    await proc.err(f"{proc.where}{name}: {reason}\n")
    if status == 127:
        await proc.err(f"{proc.where}{name}: not simulated by the sandbox shell, which has: {_inventory()}\n")
    return status


def _inventory() -> str:
    return ", ".join(sorted(set(COMMANDS) | set(BUILTINS)))


async def _script_file(argv: list[str], path: str, proc: Proc) -> int:
    """An executable file: a shell script (no #!, or #! naming sh, dash or bash) runs; anything else cannot."""
    node = proc.fs.lookup(path, proc.user)
    if not proc.fs.allowed(node, proc.user, 1):
        return await _missing(proc, argv[0], "sh", "Permission denied", 126)
    source = proc.fs.read(path, proc.user).decode(errors="surrogateescape")
    interpreter = re.match(r"#!\s*(\S+)(?:\s+(\S+))?", source)
    if interpreter:
        program = interpreter[1].rsplit("/", 1)[-1]
        program = (interpreter[2] or "") if program == "env" else program
        if program not in ("sh", "dash", "bash"):
            await proc.err(_unsupported(proc.where, f"running {program} scripts ({argv[0]})"))
            return 126
    return await _nested(Shell(proc, argv[0], argv[1:]), source)


async def _nested(shell: Shell, script: str) -> int:
    try:
        return await shell.run(script)
    except ShellExit as done:
        return done.code


# --------------------------------------------------------------------------------------------
# Commands that run other commands: sh, env, command, which, type
# --------------------------------------------------------------------------------------------


async def _sh(args: list[str], proc: Proc) -> int:
    """`sh -c SCRIPT [NAME [ARG...]]`, `sh FILE [ARG...]`, or `sh` reading commands from stdin."""
    if args[:1] and args[0].startswith("--") and args[0] != "--":
        await proc.err("sh: 0: Illegal option --\n")
        return 2
    options = ""
    while args and re.fullmatch(r"[-+][a-z]+", args[0]) and args[0] not in ("-", "+"):
        flags = args.pop(0)[1:]
        if bad := set(flags) - set("ceuxlsi"):
            await proc.err(f"sh: 0: Illegal option -{sorted(bad)[0]}\n")
            return 2
        options += flags
    if args[:1] == ["--"]:
        args = args[1:]
    if "c" in options:
        if not args:
            await proc.err("sh: 0: -c requires an argument\n")
            return 2
        name = args[1] if len(args) > 1 else "sh"
        return await _nested(Shell(proc, name, args[2:], _flags(options)), args[0])
    if args and "s" not in options:
        try:
            source = proc.fs.read(proc.path(args[0]), proc.user)
        except FsError:
            await proc.err(f"sh: 0: cannot open {args[0]}: No such file\n")
            return 2
        return await _nested(Shell(proc, args[0], args[1:], _flags(options)), source.decode(errors="surrogateescape"))
    return await run_shell(proc, shell=Shell(proc, "sh", args, _flags(options)))


def _flags(options: str) -> str:
    return "".join(sorted(set(options) & set("eux")))


async def _env(args: list[str], proc: Proc) -> int:
    env = dict(proc.env)
    while args and args[0].startswith("-") and args[0] != "-":
        flag = args.pop(0)
        if flag in ("-i", "--ignore-environment"):
            env = {}
        elif flag in ("-u", "--unset") and args:
            env.pop(args.pop(0), None)
        elif flag == "--":
            break
        else:
            await proc.err(f"env: invalid option -- '{flag.lstrip('-')[:1]}'\nTry 'env --help' for more information.\n")
            return 125
    while args and "=" in args[0] and not args[0].startswith("="):
        key, _, value = args.pop(0).partition("=")
        env[key] = value
    if not args:
        await proc.out("".join(f"{key}={value}\n" for key, value in env.items()))
        return 0
    if not is_known(args[0], proc.image) and proc.fs.get(proc.path(args[0])) is None:
        await proc.err(f"env: {proc.quote(args[0])}: No such file or directory\n")
        return 127
    return await _program(args, dataclasses.replace(proc, env=env, where=""), "sh")


async def _command(shell: Shell, args: list[str], proc: Proc) -> int:
    if args[:1] in (["-v"], ["-V"]):  # dash looks at the first name only
        kind = _kind(args[1], proc) if len(args) > 1 else ""
        if not kind:
            return 127
        shown = args[1] if args[0] == "-v" and kind == "builtin" else kind if args[0] == "-v" else ""
        await proc.out((shown or f"{args[1]} is {'a shell builtin' if kind == 'builtin' else kind}") + "\n")
        return 0
    if not args:
        return 0
    return await shell.execute(args, proc)


_DASH_BUILTINS = frozenset({"echo", "printf", "test", "[", "pwd", "true", "false"})


def _kind(name: str, proc: Proc) -> str:
    """ "builtin", a program's path, or "" for a name the sandbox does not have."""
    if name in BUILTINS or name in _UNSUPPORTED_BUILTINS or name in _DASH_BUILTINS:
        return "builtin"
    if "/" in name:
        node = proc.fs.get(proc.path(name))
        return name if node is not None and not node.is_dir else ""
    if name in COMMANDS or image_program(proc.image, name):
        return f"/usr/bin/{name}"
    return ""


async def _type(shell: Shell, args: list[str], proc: Proc) -> int:
    status = 0
    for name in args:
        kind = _kind(name, proc)
        if kind == "builtin":
            special = "special " if name in _SPECIAL_BUILTINS else ""
            await proc.out(f"{name} is a {special}shell builtin\n")
        elif kind:
            await proc.out(f"{name} is {kind}\n")
        else:
            await proc.out(f"{name}: not found\n")
            status = 127
    return status


async def _which(args: list[str], proc: Proc) -> int:
    status = 1 if not args else 0
    for name in (a for a in args if not a.startswith("-")):
        kind = _kind(name, proc)
        if kind and kind != "builtin":
            await proc.out(kind + "\n")
        else:
            status = 1
    return status


# --------------------------------------------------------------------------------------------
# Builtins that change the shell itself
# --------------------------------------------------------------------------------------------


async def _cd(shell: Shell, args: list[str], proc: Proc) -> int:
    args = [a for a in args if a not in ("-L", "-P")]
    target = args[0] if args else shell.lookup("HOME") or "/"
    show = target == "-"
    if show:
        target = shell.lookup("OLDPWD") or shell.cwd
    path = FileSystem.resolve(shell.cwd, target)
    try:
        node = proc.fs.lookup(path, proc.user)
        if not node.is_dir or not proc.fs.allowed(node, proc.user, 1):
            raise FsError(20)
    except FsError:
        await proc.err(f"{proc.where}cd: can't cd to {target}\n")
        return 2
    shell.vars["OLDPWD"], shell.cwd = shell.cwd, path
    shell.vars["PWD"] = path
    shell.exported |= {"OLDPWD", "PWD"}
    if show:
        await proc.out(path + "\n")
    return 0


async def _export(shell: Shell, args: list[str], proc: Proc) -> int:
    if not args or args == ["-p"]:
        lines = [f"export {name}={shell_quote(shell.vars[name])}" for name in sorted(shell.exported & set(shell.vars))]
        await proc.out("".join(line + "\n" for line in lines))
        return 0
    for arg in args:
        name, equals, value = arg.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            await proc.err(f"{proc.where}export: {arg}: bad variable name\n")
            raise ShellExit(2)
        if equals:
            shell.vars[name] = value
        shell.exported.add(name)
    return 0


async def _unset(shell: Shell, args: list[str], proc: Proc) -> int:
    for name in (a for a in args if a not in ("-v", "-f")):
        shell.vars.pop(name, None)
        shell.exported.discard(name)
    return 0


_SET_NAMES = {"errexit": "e", "nounset": "u", "xtrace": "x"}


async def _set(shell: Shell, args: list[str], proc: Proc) -> int:
    if not args:
        await proc.out("".join(f"{k}={shell_quote(v)}\n" for k, v in sorted(shell.vars.items())))
        return 0
    while args:
        arg = args.pop(0)
        if arg == "--":
            shell.args = args
            return 0
        if arg[:1] not in ("-", "+") or len(arg) < 2:
            shell.args = [arg, *args]
            return 0
        on = arg[0] == "-"
        if arg[1:] == "o":
            option = args.pop(0) if args else ""
            flags = _SET_NAMES.get(option, "")
            if not flags:
                await proc.err(f"{proc.where}set: Illegal option -o {option}\n")
                raise ShellExit(2)
        else:
            flags = arg[1:]
            if bad := [f for f in flags if f not in "euxfvnC"]:
                await proc.err(f"{proc.where}set: Illegal option {arg[0]}{bad[0]}\n")
                raise ShellExit(2)
        shell.options = shell.options | set(flags) if on else shell.options - set(flags)
    return 0


async def _shift(shell: Shell, args: list[str], proc: Proc) -> int:
    n = int(args[0]) if args and args[0].isdigit() else 1
    if n > len(shell.args):
        await proc.err(f"{proc.where}shift: can't shift that many\n")
        raise ShellExit(2)
    shell.args = shell.args[n:]
    return 0


async def _exit(shell: Shell, args: list[str], proc: Proc) -> int:
    if not args:
        raise ShellExit(shell.status)
    if not re.fullmatch(r"\d+", args[0]):
        await proc.err(f"{proc.where}exit: Illegal number: {args[0]}\n")
        raise ShellExit(2)
    raise ShellExit(int(args[0]) & 0xFF)


async def _colon(shell: Shell, args: list[str], proc: Proc) -> int:
    """`:`, and `wait` (there are never background jobs to wait for)."""
    return 0


async def _umask(shell: Shell, args: list[str], proc: Proc) -> int:
    if args:
        await proc.err(_unsupported(proc.where, "changing the umask (files are made 0644, directories 0755)"))
        return 2
    await proc.out("0022\n")
    return 0


async def _eval(shell: Shell, args: list[str], proc: Proc) -> int:
    return await shell.run(" ".join(args), shell.line)


async def _dot(shell: Shell, args: list[str], proc: Proc) -> int:
    if not args:
        return 0
    try:
        source = proc.fs.read(proc.path(args[0]), proc.user)
    except FsError:
        await proc.err(f"{proc.where}.: cannot open {args[0]}: No such file\n")
        raise ShellExit(2) from None
    return await shell.run(source.decode(errors="surrogateescape"))


async def _exec(shell: Shell, args: list[str], proc: Proc) -> int:
    if not args:
        await proc.err(_unsupported(proc.where, "exec with redirections only (a lasting redirection)"))
        return 2
    raise ShellExit(await shell.execute(args, proc))


BUILTINS: dict[str, Builtin] = {
    ":": _colon,
    ".": _dot,
    "cd": _cd,
    "command": _command,
    "eval": _eval,
    "exec": _exec,
    "exit": _exit,
    "export": _export,
    "set": _set,
    "shift": _shift,
    "type": _type,
    "umask": _umask,
    "unset": _unset,
    "wait": _colon,
}

COMMANDS: dict[str, Command] = {
    **TEXT_COMMANDS,
    **FILE_COMMANDS,
    **SYSTEM_COMMANDS,
    "sh": _sh,
    "bash": _sh,
    "dash": _sh,
    "env": _env,
    "which": _which,
}


def is_known(program: str, image: str = "") -> bool:
    """Whether an instance of `image` has the program (a path like /bin/echo counts as echo); shell builtins
    such as cd are not programs."""
    base = program.rsplit("/", 1)[-1]
    return base in COMMANDS or image_program(image, base) is not None


async def run_command(argv: Sequence[str], proc: Proc) -> int:
    """Run one command as an exec does (no shell parsing); returns its exit code. A builtin's name (`exit 3`)
    still does what the builtin does."""
    if not argv:
        return 0
    try:
        return await Shell(proc).execute(list(argv), proc, direct=True)
    except ShellExit as done:
        return done.code


async def run_script(script: str, proc: Proc) -> int:
    """Run `sh -c SCRIPT`; returns its exit status."""
    return await _nested(Shell(proc), script)


async def run_shell(proc: Proc, prompt: str = "", *, shell: Shell | None = None) -> int:
    """An interactive shell: one line of stdin at a time (state kept between lines), until EOF or `exit`."""
    shell = shell or Shell(proc)
    line = 0
    while True:
        if prompt:
            await proc.out(prompt)
        text = await proc.stdin.readline()
        if text is None:
            return shell.status
        line += 1
        try:
            await shell.run(text.decode(errors="surrogateescape"), line)
        except ShellExit as done:
            return done.code
