"""The sandbox shell, driven directly: each command's output and exit code, scripts, the interactive
shell, and bounded runs of the commands that never end (`yes`) or wait (`sleep`); each instance's files
(kept between execs, bounded), an exec's environment, working directory and user, what the grammar refuses,
and the same through the Incus and Portainer simulators. tests/test_sandbox_shell_vs_sh.py compares scripts
with a real /bin/sh."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.incus import IncusSimulator
from mcp_cloudops.sandbox.portainer import PortainerSimulator
from mcp_cloudops.sandbox.runner import run_sandbox
from mcp_cloudops.sandbox.shell import COMMANDS, Proc, Stdin, is_known, run_command, run_script, run_shell
from mcp_cloudops.sandbox.shell_fs import FileSystem, User

pytestmark = pytest.mark.anyio


class Enough(Exception):
    """Raised by the writer once it has seen `limit` bytes, to stop an endless command."""


class Captured:
    """A Proc wired to in-memory stdout/stderr, with a fake clock for `sleep`."""

    def __init__(
        self, stdin: bytes | None = None, *, limit: int | None = None, hostname: str = "box", **options: Any
    ) -> None:
        self.stdout = b""
        self.stderr = b""
        self.writes: list[tuple[int, bytes]] = []
        self.slept: list[float] = []
        self.limit = limit
        feed = Stdin()
        if stdin is None:
            feed.close()
        else:
            feed.feed(stdin)
            feed.close()
        self.proc = Proc(self.write, feed, hostname, self.sleep, **options)

    async def write(self, stream: int, data: bytes) -> None:
        self.writes.append((stream, data))
        if stream == 1:
            self.stdout += data
        else:
            self.stderr += data
        if self.limit is not None and len(self.stdout) >= self.limit:
            raise Enough

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def run(argv: Sequence[str], stdin: bytes | None = None, **options: Any) -> tuple[int, str, str]:
    """Run one command; returns (exit code, stdout, stderr). `options` go to the Proc (fs, env, cwd, user...)."""
    captured = Captured(stdin, **options)
    with anyio.fail_after(5):
        code = await run_command(argv, captured.proc)
    return code, captured.stdout.decode(), captured.stderr.decode()


async def script(text: str, stdin: bytes | None = None, **options: Any) -> tuple[int, str, str]:
    return await run(["sh", "-c", text], stdin, **options)


# --------------------------------------------------------------------------------------------
# One command at a time
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "stdout"),
    [
        (["echo"], 0, "\n"),
        (["echo", "hello", "world"], 0, "hello world\n"),
        (["true"], 0, ""),
        (["true", "ignored"], 0, ""),
        (["false"], 1, ""),
        (["uname"], 0, "Linux\n"),
        (["uname", "-a"], 0, "Linux box 6.1.0-sandbox #1 SMP PREEMPT_DYNAMIC x86_64 GNU/Linux\n"),
        (["uname", "-r"], 0, "6.1.0-sandbox\n"),
        (["uname", "-n"], 0, "box\n"),
        (["hostname"], 0, "box\n"),
        (["ls"], 0, ""),  # /root starts empty
        (["ls", "/"], 0, "bin\ndev\netc\nhome\nroot\ntmp\nusr\nvar\n"),
        (["pwd"], 0, "/root\n"),
        (["whoami"], 0, "root\n"),
        (["/bin/echo", "by", "path"], 0, "by path\n"),
        (["/usr/bin/uname"], 0, "Linux\n"),
    ],
)
async def test_simple_commands(argv: list[str], code: int, stdout: str) -> None:
    assert await run(argv) == (code, stdout, "")


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["exit"], 0), (["exit", "3"], 3), (["exit", "256"], 0), (["exit", "300"], 44)],
)
async def test_exit_codes_wrap_like_a_shell(argv: list[str], code: int) -> None:
    assert await run(argv) == (code, "", "")


async def test_exit_with_a_non_number_is_2() -> None:
    assert await run(["exit", "nope"]) == (2, "", "exit: Illegal number: nope\n")
    assert await run(["exit", "-1"]) == (2, "", "exit: Illegal number: -1\n")  # as dash: no sign allowed


async def test_unknown_command_is_127() -> None:
    assert await run(["frobnicate", "-x"]) == (127, "", "sh: frobnicate: not found\n")
    assert await run(["/opt/bin/frobnicate"]) == (127, "", "sh: /opt/bin/frobnicate: not found\n")


async def test_empty_argv_does_nothing() -> None:
    assert await run([]) == (0, "", "")


def test_is_known_matches_the_command_table() -> None:
    for name in COMMANDS:
        assert is_known(name)
        assert is_known(f"/usr/bin/{name}")
    assert not is_known("frobnicate")
    assert not is_known("/bin/frobnicate")
    assert not is_known("")


async def test_cat_files() -> None:
    assert await run(["cat", "/etc/hostname"]) == (0, "box\n", "")
    code, stdout, stderr = await run(["cat", "/etc/os-release"])
    assert (code, stderr) == (0, "")
    assert stdout.startswith('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert "ID=debian\n" in stdout


async def test_cat_missing_file_is_1_but_prints_the_others() -> None:
    assert await run(["cat", "/nope", "/etc/hostname"]) == (1, "box\n", "cat: /nope: No such file or directory\n")


@pytest.mark.parametrize("argv", [["cat"], ["cat", "-"]])
async def test_cat_copies_stdin_byte_for_byte(argv: list[str]) -> None:
    data = b"line one\r\nline two\x00\xff"
    captured = Captured(data)
    with anyio.fail_after(5):
        assert await run_command(argv, captured.proc) == 0
    assert captured.stdout == data
    assert captured.stderr == b""


async def test_cat_with_empty_stdin() -> None:
    assert await run(["cat"]) == (0, "", "")


@pytest.mark.parametrize(
    ("argv", "stdout"),
    [
        (["seq", "3"], "1\n2\n3\n"),
        (["seq", "0"], ""),
        (["seq", "2", "4"], "2\n3\n4\n"),
        (["seq", "-2", "1"], "-2\n-1\n0\n1\n"),
        (["seq", "+2", "3"], "2\n3\n"),
        (["seq", "5", "3"], ""),
    ],
)
async def test_seq(argv: list[str], stdout: str) -> None:
    assert await run(argv) == (0, stdout, "")


async def test_seq_long_runs_go_out_in_chunks_of_a_thousand_lines() -> None:
    captured = Captured()
    with anyio.fail_after(5):
        assert await run_command(["seq", "2500"], captured.proc) == 0
    assert captured.stdout.decode() == "".join(f"{n}\n" for n in range(1, 2501))
    assert [data.count(b"\n") for _, data in captured.writes] == [1000, 1000, 500]


@pytest.mark.parametrize(
    ("argv", "stdout"),
    [
        (["seq", "1", "2", "7"], "1\n3\n5\n7\n"),
        (["seq", "1", "2.5"], "1\n2\n"),
        (["seq", "1", "0.5", "2"], "1.0\n1.5\n2.0\n"),
    ],
)
async def test_seq_takes_an_increment_and_decimals_as_gnu_does(argv: list[str], stdout: str) -> None:
    assert await run(argv) == (0, stdout, "")


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [
        (["seq"], "seq: missing operand\n"),
        (["seq", "1", "2", "3", "4"], "seq: extra operand '4'\n"),
        (["seq", "x"], "seq: invalid floating point argument: 'x'\n"),
    ],
)
async def test_seq_errors(argv: list[str], stderr: str) -> None:
    assert await run(argv) == (1, "", stderr + "Try 'seq --help' for more information.\n")


@pytest.mark.parametrize(
    ("argv", "seconds"), [(["sleep", "5"], 5.0), (["sleep", "2s"], 2.0), (["sleep", "0.25"], 0.25)]
)
async def test_sleep_waits_on_the_procs_clock(argv: list[str], seconds: float) -> None:
    captured = Captured()
    with anyio.fail_after(5):
        assert await run_command(argv, captured.proc) == 0
    assert captured.slept == [seconds]
    assert (captured.stdout, captured.stderr) == (b"", b"")


async def test_sleep_really_sleeps_by_default() -> None:
    proc = Proc(Captured().write, Stdin.empty())
    started = anyio.current_time()
    with anyio.fail_after(5):
        assert await run_command(["sleep", "0.05"], proc) == 0
    assert anyio.current_time() - started >= 0.04


async def test_sleep_can_be_cancelled() -> None:
    proc = Proc(Captured().write, Stdin.empty())
    with anyio.move_on_after(0.1) as scope:
        await run_command(["sleep", "3600"], proc)
    assert scope.cancelled_caught


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [(["sleep"], "sleep: missing operand\n"), (["sleep", "soon"], "sleep: invalid time interval 'soon'\n")],
)
async def test_sleep_errors(argv: list[str], stderr: str) -> None:
    assert await run(argv) == (1, "", stderr + "Try 'sleep --help' for more information.\n")


async def test_yes_repeats_y_until_stopped() -> None:
    captured = Captured(limit=10_000)
    with anyio.fail_after(5), pytest.raises(Enough):
        await run_command(["yes"], captured.proc)
    assert len(captured.stdout) >= 10_000
    assert set(captured.stdout.split(b"\n")[:-1]) == {b"y"}
    assert all(stream == 1 and len(data) == 2048 for stream, data in captured.writes)


async def test_yes_repeats_its_arguments() -> None:
    captured = Captured(limit=5000)
    with anyio.fail_after(5), pytest.raises(Enough):
        await run_command(["yes", "hello", "there"], captured.proc)
    assert set(captured.stdout.split(b"\n")[:-1]) == {b"hello there"}


async def test_yes_can_be_cancelled() -> None:
    captured = Captured()
    with anyio.move_on_after(0.1) as scope:
        await run_command(["yes"], captured.proc)
    assert scope.cancelled_caught
    assert captured.stdout.startswith(b"y\ny\n")


@pytest.mark.parametrize(
    ("argv", "stdout"),
    [
        (["kubectl", "version"], "Client Version: v1.30.0\nServer Version: v1.30.0\n"),
        (["kubectl", "version", "--short"], "Client Version: v1.30.0\nServer Version: v1.30.0\n"),
        (
            ["kubectl", "get", "pods"],
            "NAME    READY   STATUS    RESTARTS   AGE\n"
            "web-0   1/1     Running   0          3d\n"
            "web-1   1/1     Running   0          3d\n",
        ),
        (
            ["kubectl", "get", "po", "-o", "wide"],
            "NAME    READY   STATUS    RESTARTS   AGE\n"
            "web-0   1/1     Running   0          3d\n"
            "web-1   1/1     Running   0          3d\n",
        ),
        (
            ["kubectl", "get", "namespaces"],
            "NAME              STATUS   AGE\ndefault           Active   30d\nkube-system       Active   30d\n",
        ),
        (
            ["kubectl", "get", "nodes"],
            "NAME      STATUS   ROLES           AGE   VERSION\nsandbox   Ready    control-plane   30d   v1.30.0\n",
        ),
    ],
)
async def test_kubectl(argv: list[str], stdout: str) -> None:
    assert await run(argv) == (0, stdout, "")


async def test_kubectl_aliases_match_the_full_names() -> None:
    assert await run(["kubectl", "get", "po"]) == await run(["kubectl", "get", "pods"])
    assert await run(["kubectl", "get", "namespace"]) == await run(["kubectl", "get", "namespaces"])
    assert await run(["kubectl", "get", "node"]) == await run(["kubectl", "get", "nodes"])


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [
        (["kubectl", "get", "widgets"], 'error: the server doesn\'t have a resource type "widgets"\n'),
        (["kubectl", "get"], 'error: unknown command "get" for "kubectl"\n'),
        (["kubectl"], 'error: unknown command "" for "kubectl"\n'),
        (["kubectl", "apply", "-f", "x.yaml"], 'error: unknown command "apply x.yaml" for "kubectl"\n'),
    ],
)
async def test_kubectl_errors(argv: list[str], stderr: str) -> None:
    assert await run(argv) == (1, "", stderr)


# --------------------------------------------------------------------------------------------
# sh -c scripts
# --------------------------------------------------------------------------------------------


async def test_script_words_and_quotes() -> None:
    assert await script("echo 'a  b' \"c d\" e") == (0, "a  b c d e\n", "")


async def test_script_separators() -> None:
    assert await script("echo one; echo two") == (0, "one\ntwo\n", "")
    assert await script("true && echo yes") == (0, "yes\n", "")
    assert await script("false && echo yes") == (1, "", "")
    assert await script("false || echo fallback") == (0, "fallback\n", "")
    assert await script("true || echo fallback") == (0, "", "")
    assert await script("false; echo after") == (0, "after\n", "")
    assert await script("echo a | cat") == (0, "a\n", "")


async def test_script_status_is_the_last_commands() -> None:
    assert await script("true; false") == (1, "", "")
    code, stdout, stderr = await script("nosuch; echo still")
    assert (code, stdout, stderr.splitlines()[0]) == (0, "still\n", "sh: 1: nosuch: not found")
    code, stdout, stderr = await script("echo x; nosuch")
    assert (code, stdout, stderr.splitlines()[0]) == (127, "x\n", "sh: 1: nosuch: not found")


async def test_exit_ends_the_script() -> None:
    assert await script("echo before; exit 4; echo after") == (4, "before\n", "")


async def test_empty_script_is_0() -> None:
    assert await script("") == (0, "", "")
    assert await script(" \n\n ") == (0, "", "")
    assert await script(" ; ") == (2, "", 'sh: 1: Syntax error: ";" unexpected\n')  # as dash says


async def test_unterminated_quote_is_a_syntax_error() -> None:
    assert await script("echo 'oops") == (2, "", "sh: 1: Syntax error: Unterminated quoted string\n")


async def test_run_script_directly() -> None:
    captured = Captured()
    assert await run_script("echo hi && uname -n", captured.proc) == 0
    assert captured.stdout == b"hi\nbox\n"


async def test_bash_is_sh() -> None:
    assert await run(["bash", "-c", "echo hi"]) == (0, "hi\n", "")


async def test_sh_argument_errors() -> None:
    assert await run(["sh", "-c"]) == (2, "", "sh: 0: -c requires an argument\n")
    assert await run(["sh", "script.sh"]) == (2, "", "sh: 0: cannot open script.sh: No such file\n")


# --------------------------------------------------------------------------------------------
# The interactive shell
# --------------------------------------------------------------------------------------------


async def test_sh_without_arguments_reads_commands_from_stdin() -> None:
    assert await run(["sh"], b"echo one\nfalse\n") == (1, "one\n", "")


async def test_shell_prompts_and_stops_at_exit() -> None:
    captured = Captured(b"echo hi\r\nexit 7\necho never\n")
    with anyio.fail_after(5):
        assert await run_shell(captured.proc, prompt="$ ") == 7
    assert captured.stdout == b"$ hi\n$ "


async def test_shell_ends_at_eof_with_the_last_status() -> None:
    captured = Captured(b"echo a\rnosuch")
    with anyio.fail_after(5):
        assert await run_shell(captured.proc, prompt="# ") == 127
    assert captured.stdout == b"# a\n# # "
    assert captured.stderr.splitlines()[0] == b"sh: 2: nosuch: not found"  # the second line read


async def test_shell_with_no_input_is_0() -> None:
    captured = Captured()
    assert await run_shell(captured.proc) == 0
    assert captured.stdout == b""


async def test_shell_reads_lines_as_they_arrive() -> None:
    captured = Captured()
    stdin = Stdin()
    captured.proc.stdin = stdin
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            results: list[int] = []

            async def shell() -> None:
                results.append(await run_shell(captured.proc, prompt="$ "))

            tg.start_soon(shell)
            stdin.feed(b"ech")
            await anyio.wait_all_tasks_blocked()
            assert captured.stdout == b"$ "
            stdin.feed(b"o split\n")
            await anyio.wait_all_tasks_blocked()
            assert captured.stdout == b"$ split\n$ "
            stdin.close()
    assert results == [0]


# --------------------------------------------------------------------------------------------
# Stdin
# --------------------------------------------------------------------------------------------


async def test_stdin_readline_takes_any_line_ending_and_keeps_the_rest() -> None:
    stdin = Stdin()
    stdin.feed(b"a\r\nb\rc\nrest")
    stdin.close()
    assert [await stdin.readline() for _ in range(5)] == [b"a", b"b", b"c", b"rest", None]
    assert await stdin.read() is None


async def test_stdin_ignores_empty_chunks_and_data_after_close() -> None:
    stdin = Stdin()
    stdin.feed(b"")
    stdin.feed(b"x")
    stdin.close()
    stdin.feed(b"late")
    stdin.close()
    assert await stdin.read() == b"x"
    assert await stdin.read() is None
    assert await stdin.read() is None


async def test_empty_stdin_is_at_eof() -> None:
    assert await Stdin.empty().read() is None
    assert await Stdin.empty().readline() is None


# --------------------------------------------------------------------------------------------
# Files: each instance's own, kept between execs, bounded
# --------------------------------------------------------------------------------------------


async def test_the_issue_a_marker_written_is_there_to_read_later() -> None:
    """Issue 22: `sh -c "echo 2026-12-07 > /tmp/marker"` wrote nothing and said it had."""
    fs = FileSystem("box")
    assert await script("echo 2026-12-07 > /tmp/marker", fs=fs) == (0, "", "")
    assert await run(["cat", "/tmp/marker"], fs=fs) == (0, "2026-12-07\n", "")
    code, stdout, _ = await run(["ls", "-l", "/tmp"], fs=fs)
    assert code == 0 and stdout.startswith("total 4\n-rw-r--r-- 1 root root 11 ") and stdout.endswith(" marker\n")
    assert await run(["cat", "/tmp/marker"]) == (1, "", "cat: /tmp/marker: No such file or directory\n")  # elsewhere


async def test_date_touch_and_tee_exist() -> None:
    fs = FileSystem("box")
    assert (await run(["date"]))[0] == 0
    assert await script("touch /tmp/a && echo x | tee /tmp/b && ls /tmp", fs=fs) == (0, "x\na\nb\n", "")


async def test_the_seed_names_the_host_and_its_system() -> None:
    assert await run(["cat", "/etc/hostname"], hostname="web-0") == (0, "web-0\n", "")
    code, stdout, _ = await run(["cat", "/etc/os-release"])
    assert code == 0 and stdout.startswith('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') and "ID=debian\n" in stdout
    assert await run(["ls", "/var"]) == (0, "log\n", "")
    assert await run(["grep", "^nginx:", "/etc/passwd"], image="nginx:1.27") == (
        0,
        "nginx:x:101:101:nginx:/nonexistent:/bin/sh\n",
        "",
    )


async def test_writing_past_the_bound_fails_with_no_space_left() -> None:
    fs = FileSystem("box", max_bytes=FileSystem("box").usage() + 100)
    code, _, stderr = await script("printf '%0200d' 0 > /tmp/big; echo rc=$?; wc -c < /tmp/big", fs=fs)
    assert (code, stderr) == (0, "printf: write error: No space left on device\n")
    with anyio.fail_after(5):  # an endless writer stops at the bound instead of eating memory
        code, _, stderr = await script("yes > /tmp/y", fs=FileSystem("box"))
    assert (code, stderr) == (1, "yes: write error: No space left on device\n")


async def test_too_many_entries_is_no_space_left_too() -> None:
    fs = FileSystem("box", max_entries=len(FileSystem("box").nodes) + 2)
    code, _, stderr = await script("mkdir /tmp/a /tmp/b /tmp/c", fs=fs)
    assert (code, stderr) == (1, "mkdir: cannot create directory '/tmp/c': No space left on device\n")


async def test_names_are_bounded_as_linux_bounds_them() -> None:
    name = "a" * 256
    assert await run(["touch", f"/tmp/{name}"]) == (1, "", f"touch: cannot touch '/tmp/{name}': File name too long\n")


async def test_devices() -> None:
    assert await script("cat /dev/zero | head -c 3 | wc -c; echo x > /dev/null; cat /dev/null") == (0, "3\n", "")
    assert await script("echo oops > /dev/stderr") == (0, "", "oops\n")


# --------------------------------------------------------------------------------------------
# The exec's environment, working directory and user
# --------------------------------------------------------------------------------------------


async def test_env_is_seen_by_variables_and_env() -> None:
    env = {"PATH": "/usr/bin:/bin", "GREETING": "hi"}
    assert await script('echo "$GREETING world"', env=env) == (0, "hi world\n", "")
    code, stdout, _ = await run(["env"], env=env)
    assert code == 0 and "GREETING=hi\n" in stdout and "PATH=/usr/bin:/bin\n" in stdout
    assert await run(["printenv", "GREETING"], env=env) == (0, "hi\n", "")
    assert await run(["env", "-i", "A=1", "printenv"]) == (0, "A=1\n", "")
    assert await run(["env", "nosuch"]) == (127, "", "env: 'nosuch': No such file or directory\n")


async def test_the_working_directory_is_where_relative_paths_go() -> None:
    fs = FileSystem("box")
    assert await script("pwd; echo x > here; ls", fs=fs, cwd="/tmp") == (0, "/tmp\nhere\n", "")
    assert fs.read("/tmp/here") == b"x\n"


async def test_a_user_without_a_name_and_one_with() -> None:
    nameless = User(1000, 1000, None, (1000,), "/")
    assert await run(["whoami"], user=nameless) == (1, "", "whoami: cannot find name for user ID 1000\n")
    assert await run(["id"], user=nameless) == (0, "uid=1000 gid=1000 groups=1000\n", "")
    fs = FileSystem("box")
    www = fs.user_of(33)
    assert await run(["whoami"], fs=fs, user=www) == (0, "www-data\n", "")
    assert await run(["id"], fs=fs, user=www) == (0, "uid=33(www-data) gid=33(www-data) groups=33(www-data)\n", "")
    assert await run(["id", "-un"], fs=fs) == (0, "root\n", "")


async def test_who_may_write_where() -> None:
    fs = FileSystem("box")
    user = fs.user_of(33)
    assert await run(["touch", "/etc/x"], fs=fs, user=user) == (
        1,
        "",
        "touch: cannot touch '/etc/x': Permission denied\n",
    )
    assert await script("echo no > /root/x", fs=fs, user=user) == (
        2,
        "",
        "sh: 1: cannot create /root/x: Permission denied\n",
    )
    assert await run(["touch", "/tmp/mine"], fs=fs, user=user) == (0, "", "")
    assert " www-data www-data 0 " in (await run(["ls", "-l", "/tmp"], fs=fs))[1]


# --------------------------------------------------------------------------------------------
# The grammar: what runs, and what is refused whole
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("echo before; echo $(date)", "command substitution $(...)"),
        ("echo before; echo `date`", "command substitution `...`"),
        ("echo before; echo $((1 + 1))", "arithmetic expansion $((...))"),
        ("echo before; if true; then echo yes; fi", "'if'"),
        ("echo before; for f in a b; do echo $f; done", "'for'"),
        ("echo before\nwhile true; do :; done", "'while'"),
        ("echo before; case x in x) echo;; esac", "'case'"),
        ("echo before; { echo grouped; }", "'{'"),
        ("echo before; (echo sub)", "subshells"),
        ("echo before; f() { :; }", "subshells and functions"),
        ("echo before; sleep 1 &", "background jobs"),
    ],
)
async def test_what_the_grammar_cannot_do_is_refused_before_anything_runs(text: str, construct: str) -> None:
    code, stdout, stderr = await script(text)
    assert (code, stdout) == (2, "")
    assert re.fullmatch(r"sh: \d+: the sandbox shell does not support .*\n", stderr) and construct in stderr


async def test_builtins_it_lacks_say_so() -> None:
    code, stdout, stderr = await script("echo before; trap 'echo bye' EXIT; echo after")
    assert (code, stdout) == (0, "before\nafter\n")
    assert stderr.startswith("sh: 1: the sandbox shell does not support the builtin trap;")
    code, _, stderr = await script("echo hi 3> /tmp/x")
    assert code == 2 and "does not support file descriptor 3" in stderr


async def test_an_unknown_command_says_what_the_sandbox_has() -> None:
    code, stdout, stderr = await script("curl -s http://example.com")
    first, second = stderr.splitlines()
    assert (code, stdout, first) == (127, "", "sh: 1: curl: not found")
    assert second.startswith("sh: 1: curl: not simulated by the sandbox shell, which has: ")
    assert all(name in second.split(": ")[-1].split(", ") for name in ("cat", "date", "grep", "ls", "tee", "touch"))


async def test_private_use_characters_are_refused() -> None:
    code, _, stderr = await script("echo \U000f0000")
    assert code == 2 and "private-use character U+F0000" in stderr


async def test_pipes_stream_so_an_endless_writer_stops() -> None:
    with anyio.fail_after(5):
        assert await script("yes | head -n 2; seq 100000 | tail -n 1; cat /dev/zero | head -c 2 | wc -c") == (
            0,
            "y\ny\n100000\n2\n",
            "",
        )


async def test_exit_in_a_nested_sh_ends_only_that_shell() -> None:
    assert await script("sh -c 'exit 3'; echo rc=$?; bash -c 'exit 4' || echo failed") == (0, "rc=3\nfailed\n", "")


async def test_scripts_on_the_filesystem_run() -> None:
    fs = FileSystem("box")
    fs.write("/tmp/s.sh", b'#!/bin/sh\necho args: $# "$1"\n')
    assert await script("sh /tmp/s.sh 'a b'; /tmp/s.sh; chmod +x /tmp/s.sh; /tmp/s.sh x", fs=fs) == (
        0,
        "args: 1 a b\nargs: 1 x\n",
        "sh: 1: /tmp/s.sh: Permission denied\n",
    )
    fs.write("/tmp/p.py", b"#!/usr/bin/env python3\nprint(1)\n")
    fs.chmod("/tmp/p.py", 0o755)
    code, _, stderr = await script("/tmp/p.py", fs=fs)
    assert code == 126 and "does not support running python3 scripts" in stderr


async def test_which_command_type() -> None:
    assert await run(["which", "ls", "nosuch"]) == (1, "/usr/bin/ls\n", "")
    assert await script("command -v cat; type cd") == (0, "/usr/bin/cat\ncd is a shell builtin\n", "")


async def test_the_interactive_shell_keeps_its_state_between_lines() -> None:
    captured = Captured(b"cd /tmp\npwd\nX=1\necho $X\nexport Y=2\nenv | grep Y\n")
    with anyio.fail_after(5):
        assert await run_shell(captured.proc) == 0
    assert captured.stdout == b"/tmp\n1\nY=2\n"


async def test_a_syntax_error_does_not_end_the_interactive_shell() -> None:
    captured = Captured(b"echo 'oops\necho fine\n")
    with anyio.fail_after(5):
        assert await run_shell(captured.proc) == 0
    assert (captured.stdout, captured.stderr) == (b"fine\n", b"sh: 1: Syntax error: Unterminated quoted string\n")


async def test_a_hundred_commands_run_well_under_50_ms() -> None:
    """150 commands (50 lines of a redirection and a two-stage pipeline); the best of three runs."""
    text = "\n".join(f"echo line {n} > /tmp/f{n % 10}; cat /tmp/f{n % 10} | wc -c > /dev/null" for n in range(50))
    times = []
    for _ in range(3):
        captured = Captured()
        started = time.perf_counter()
        assert await run_script(text, captured.proc) == 0
        times.append(time.perf_counter() - started)
    assert min(times) < 0.05


# --------------------------------------------------------------------------------------------
# date on an injectable clock; the system tables' shape
# --------------------------------------------------------------------------------------------

DEC_7 = 1796677676.0  # Mon Dec  7 21:07:56 UTC 2026


async def test_date_reads_the_procs_clock() -> None:
    def clock() -> float:
        return DEC_7

    assert await run(["date"], clock=clock) == (0, "Mon Dec  7 21:07:56 UTC 2026\n", "")
    assert await run(["date", "+%Y-%m-%d"], clock=clock) == (0, "2026-12-07\n", "")
    assert await run(["date", "-u", "-Iseconds"], clock=clock) == (0, "2026-12-07T21:07:56+00:00\n", "")
    assert await run(["date", "+%H:%M %Z"], clock=clock, env={"TZ": "Europe/Paris"}) == (0, "22:07 CET\n", "")


async def test_date_is_real_time_by_default() -> None:
    code, stdout, _ = await run(["date", "+%s"])
    assert code == 0 and abs(int(stdout) - time.time()) < 5


async def test_ps_shows_the_shell_and_itself() -> None:
    code, stdout, _ = await run(["ps"])
    assert code == 0 and stdout.splitlines()[0] == "    PID TTY          TIME CMD"
    assert [line.split()[-1] for line in stdout.splitlines()[1:]] == ["sh", "ps"]
    code, stdout, _ = await run(["ps", "aux"], image="nginx:1.27")
    assert stdout.startswith("USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n")
    assert "nginx: master process nginx -g daemon off;" in stdout.splitlines()[1]
    code, stdout, _ = await run(["ps", "-ef"])
    assert stdout.startswith("UID          PID    PPID  C STIME TTY          TIME CMD\n") and "/sbin/init" in stdout


async def test_df_tells_the_sandboxs_real_bound_and_free_has_the_usual_table() -> None:
    code, stdout, _ = await run(["df", "-h"])
    header, root = stdout.splitlines()[:2]
    assert code == 0 and header == "Filesystem      Size  Used Avail Use% Mounted on"
    assert root.split()[:2] == ["overlay", "1.0M"] and root.endswith(" /")
    code, stdout, _ = await run(["free", "-m"])
    lines = stdout.splitlines()
    assert code == 0 and lines[0].split() == ["total", "used", "free", "shared", "buff/cache", "available"]
    assert lines[1].startswith("Mem:") and lines[2].startswith("Swap:")


async def test_uname_and_id_shapes() -> None:
    code, stdout, _ = await run(["uname", "-a"], hostname="c1")
    assert (code, stdout) == (0, "Linux c1 6.1.0-sandbox #1 SMP PREEMPT_DYNAMIC x86_64 GNU/Linux\n")
    assert await run(["id"]) == (0, "uid=0(root) gid=0(root) groups=0(root)\n", "")


@pytest.mark.parametrize(
    ("image", "argv", "stream", "line"),
    [
        ("nginx:1.27", ["nginx", "-v"], 2, "nginx version: nginx/1.27.0"),
        ("postgres:16", ["postgres", "--version"], 1, "postgres (PostgreSQL) 16.0 (Debian 16.0-1.pgdg120+1)"),
        ("postgres:16", ["psql", "-V"], 1, "psql (PostgreSQL) 16.0 (Debian 16.0-1.pgdg120+1)"),
        ("python:3.12-slim", ["python3", "--version"], 1, "Python 3.12.0"),
        ("redis:7.4", ["redis-cli", "--version"], 1, "redis-cli 7.4.0"),
        ("busybox:1.36", ["busybox", "--help"], 1, "BusyBox v1.36.0 (2024-01-01 00:00:00 UTC) multi-call binary."),
        ("", ["ls", "--version"], 1, "ls (GNU coreutils) 9.1"),
        ("", ["bash", "--version"], 1, "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)"),
    ],
)
async def test_what_an_image_claims_to_run_answers_its_version(
    image: str, argv: list[str], stream: int, line: str
) -> None:
    code, stdout, stderr = await run(argv, image=image)
    assert (code, stdout if stream == 1 else stderr) == (0, line + "\n")
    assert is_known(argv[0], image)


async def test_an_images_program_does_only_its_version() -> None:
    code, _, stderr = await run(["nginx", "-s", "reload"], image="nginx:1.27")
    assert code == 126 and "only answers `nginx -v`" in stderr
    assert not is_known("nginx") and await run(["nginx", "-v"]) == (127, "", "sh: nginx: not found\n")


# --------------------------------------------------------------------------------------------
# Through the simulators: each instance, container and pod has its files; execs bring env, cwd, user
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def incus_api() -> AsyncIterator[tuple[IncusSimulator, httpx.AsyncClient]]:
    sim = IncusSimulator(seed=False)
    async with run_sandbox([sim]) as sandbox:
        transport = httpx.AsyncHTTPTransport(uds=sandbox.env["INCUS_SOCKET"])
        async with httpx.AsyncClient(transport=transport, base_url="http://incus", timeout=10) as client:
            yield sim, client


async def incus_exec(client: httpx.AsyncClient, instance: str, **body: Any) -> tuple[int, bytes, bytes]:
    response = await client.post(f"/1.0/instances/{instance}/exec", json={"record-output": True, **body})
    assert response.status_code == 202, response.text
    op = response.json()["metadata"]
    done = (await client.get(f"/1.0/operations/{op['id']}/wait", params={"timeout": "5"})).json()["metadata"]
    outputs = done["metadata"]["output"]
    stdout, stderr = [(await client.get(outputs[fd])).content for fd in ("1", "2")]
    return done["metadata"]["return"], stdout, stderr


async def test_incus_instances_keep_their_files_and_take_cwd_user_and_environment() -> None:
    with anyio.fail_after(10):
        async with incus_api() as (sim, client):
            marker = ["sh", "-c", "echo 2026-12-07 > /tmp/marker"]
            assert await incus_exec(client, "c1", command=marker) == (0, b"", b"")
            assert await incus_exec(client, "c1", command=["cat", "/tmp/marker"]) == (0, b"2026-12-07\n", b"")
            missing = (1, b"", b"cat: /tmp/marker: No such file or directory\n")
            assert await incus_exec(client, "vm1", command=["cat", "/tmp/marker"]) == missing
            assert await incus_exec(client, "c1", command=["cat", "/etc/hostname"]) == (0, b"c1\n", b"")

            env = {"MODE": "check"}
            assert await incus_exec(client, "c1", command=["sh", "-c", "echo $MODE; pwd"], environment=env) == (
                0,
                b"check\n/root\n",  # liblxc starts in $HOME
                b"",
            )
            assert await incus_exec(client, "c1", command=["pwd"], cwd="/tmp") == (0, b"/tmp\n", b"")
            assert await incus_exec(client, "c1", command=["pwd"], cwd="/nope") == (0, b"/\n", b"")  # liblxc: a warning
            as_33 = await incus_exec(client, "c1", command=["sh", "-c", "id; echo ${HOME-unset}"], user=33, group=33)
            assert as_33 == (0, b"uid=33(www-data) gid=33(www-data) groups=33(www-data)\nunset\n", b"")
            refused = await client.post("/1.0/instances/c1/exec", json={"command": ["id"], "user": "root"})
            assert refused.status_code == 400
            assert "cannot unmarshal string into Go struct field InstanceExecPost.user of type uint32" in refused.text
            assert set(sim.filesystems) == {"c1", "vm1"}


@asynccontextmanager
async def portainer_api() -> AsyncIterator[tuple[PortainerSimulator, str, httpx.AsyncClient]]:
    sim = PortainerSimulator()
    async with run_sandbox([sim]) as sandbox:
        url = sandbox.env["PORTAINER_URL"]
        headers = {"X-API-Key": credentials.PORTAINER_API_KEY}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            yield sim, url, client


async def docker_exec(url: str, client: httpx.AsyncClient, container: str, **body: Any) -> tuple[int, str]:
    body = {"AttachStdout": True, "AttachStderr": True, **body}
    created = await client.post(f"/api/endpoints/1/docker/containers/{container}/exec", json=body)
    assert created.status_code == 201, created.text
    exec_id = created.json()["Id"]
    ws_url = url.replace("http://", "ws://") + "/api/websocket/exec?" + urlencode({"endpointId": 1, "id": exec_id})
    headers = {"X-API-Key": credentials.PORTAINER_API_KEY}
    output = ""
    async with connect(ws_url, additional_headers=headers, proxy=None, close_timeout=1) as ws:
        try:
            while True:
                output += str(await ws.recv())
        except ConnectionClosed:
            pass
    inspect = (await client.get(f"/api/endpoints/1/docker/exec/{exec_id}/json")).json()
    return inspect["ExitCode"], output


async def test_docker_containers_keep_their_files_and_take_env_working_dir_and_user() -> None:
    with anyio.fail_after(10):
        async with portainer_api() as (sim, url, client):
            web, ticker = sim.container_ids["web"], sim.container_ids["ticker"]
            assert await docker_exec(url, client, web, Cmd=["sh", "-c", "echo kept > /tmp/k"]) == (0, "")
            assert await docker_exec(url, client, web, Cmd=["cat", "/tmp/k"]) == (0, "kept\n")
            assert (await docker_exec(url, client, ticker, Cmd=["cat", "/tmp/k"]))[0] == 1
            assert await docker_exec(url, client, web, Cmd=["hostname"]) == (0, web[:12] + "\n")
            assert await docker_exec(url, client, web, Cmd=["nginx", "-v"]) == (0, "nginx version: nginx/1.27.0\n")

            assert await docker_exec(
                url, client, web, Cmd=["sh", "-c", "echo $A; pwd"], Env=["A=1"], WorkingDir="/tmp"
            ) == (
                0,
                "1\n/tmp\n",
            )
            assert await docker_exec(url, client, web, Cmd=["pwd"]) == (0, "/\n")
            assert await docker_exec(url, client, web, Cmd=["pwd"], WorkingDir="/nope") == (
                127,
                'OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd ("/nope") '
                "set in config.json failed: no such file or directory: unknown\r\n",
            )
            assert await docker_exec(url, client, web, Cmd=["whoami"], User="nginx") == (0, "nginx\n")
            assert await docker_exec(url, client, web, Cmd=["id"], User="1000:1000") == (
                0,
                "uid=1000 gid=1000 groups=1000\n",
            )
            assert await docker_exec(url, client, web, Cmd=["id"], User="nosuch") == (
                126,
                "unable to find user nosuch: no matching entries in passwd file\r\n",
            )
            assert await docker_exec(url, client, web, Cmd=["sh", "-c", "echo $HOME"], User="www-data") == (
                0,
                "/var/www\n",
            )


async def pod_says(url: str, pod: str, command: str) -> str:
    """What a pod exec prints (under its TTY) up to its first line's end; the session stays open after."""
    params = {"endpointId": 2, "namespace": "default", "podName": pod, "containerName": "web", "command": command}
    ws_url = url.replace("http://", "ws://") + "/api/websocket/pod?" + urlencode(params)
    headers = {"X-API-Key": credentials.PORTAINER_API_KEY}
    text = ""
    async with connect(ws_url, additional_headers=headers, proxy=None, close_timeout=1) as ws:
        while "\r\n" not in text:
            text += str(await ws.recv())
    return text


async def test_each_pod_has_its_own_files() -> None:
    with anyio.fail_after(10):
        async with portainer_api() as (sim, url, _):
            assert await pod_says(url, "web-0", "cat /etc/hostname") == "web-0\r\n"
            assert await pod_says(url, "web-0", "mkdir -v /tmp/p") == "mkdir: created directory '/tmp/p'\r\n"
            assert await pod_says(url, "web-0", "ls -d /tmp/p") == "/tmp/p\r\n"
            missing = "ls: cannot access '/tmp/p': No such file or directory\r\n"
            assert await pod_says(url, "web-1", "ls -d /tmp/p") == missing
            assert "2/default/web-0/web" in sim.filesystems and "2/default/web-1/web" in sim.filesystems


@pytest.mark.anyio
async def test_kubectl_lists_the_pods_of_the_environment_it_runs_in() -> None:
    """A kubectl shell's `get pods` shows the environment's own pods (one namespace, or every one with -A)."""
    written: list[bytes] = []

    async def write(stream: int, data: bytes) -> None:
        written.append(data)

    cluster = {"default": {"web-0": ["web"]}, "kube-system": {"coredns-0": ["coredns", "sidecar"]}}
    proc = Proc(write, Stdin.empty(), "kubectl-shell", cluster=cluster)
    assert await run_script("kubectl get pods -A", proc) == 0
    listed = b"".join(written).decode().splitlines()
    assert listed[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:3] for line in listed[1:]] == [
        ["default", "web-0", "1/1"],
        ["kube-system", "coredns-0", "2/2"],
    ]
    written.clear()
    assert await run_script("kubectl get pods -n kube-system", proc) == 0
    assert [line.split()[0] for line in b"".join(written).decode().splitlines()] == ["NAME", "coredns-0"]
