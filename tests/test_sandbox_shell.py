"""The sandbox shell, driven directly: each command's output and exit code, scripts, the interactive
shell, and bounded runs of the commands that never end (`yes`) or wait (`sleep`)."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from mcp_cloudops.sandbox.shell import COMMANDS, Proc, Stdin, is_known, run_command, run_script, run_shell

pytestmark = pytest.mark.anyio


class Enough(Exception):
    """Raised by the writer once it has seen `limit` bytes, to stop an endless command."""


class Captured:
    """A Proc wired to in-memory stdout/stderr, with a fake clock for `sleep`."""

    def __init__(self, stdin: bytes | None = None, *, limit: int | None = None, hostname: str = "box") -> None:
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
        self.proc = Proc(self.write, feed, hostname, self.sleep)

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


async def run(argv: Sequence[str], stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run one command; returns (exit code, stdout, stderr)."""
    captured = Captured(stdin)
    with anyio.fail_after(5):
        code = await run_command(argv, captured.proc)
    return code, captured.stdout.decode(), captured.stderr.decode()


async def script(text: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    return await run(["sh", "-c", text], stdin)


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
        (["ls"], 0, "bin\netc\nhome\nroot\ntmp\nusr\nvar\n"),
        (["ls", "/anything"], 0, "bin\netc\nhome\nroot\ntmp\nusr\nvar\n"),
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
    [(["exit"], 0), (["exit", "3"], 3), (["exit", "256"], 0), (["exit", "300"], 44), (["exit", "-1"], 255)],
)
async def test_exit_codes_wrap_like_a_shell(argv: list[str], code: int) -> None:
    assert await run(argv) == (code, "", "")


async def test_exit_with_a_non_number_is_2() -> None:
    assert await run(["exit", "nope"]) == (2, "", "")


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
    ("argv", "stderr"),
    [
        (["seq"], "seq: missing operand\n"),
        (["seq", "1", "2", "3"], "seq: extra operand '3'\n"),
        (["seq", "x"], "seq: invalid floating point argument: 'x'\n"),
        (["seq", "1", "2.5"], "seq: invalid floating point argument: '2.5'\n"),
    ],
)
async def test_seq_errors(argv: list[str], stderr: str) -> None:
    assert await run(argv) == (1, "", stderr)


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
    [(["sleep"], "sleep: invalid time interval ''\n"), (["sleep", "soon"], "sleep: invalid time interval 'soon'\n")],
)
async def test_sleep_errors(argv: list[str], stderr: str) -> None:
    assert await run(argv) == (1, "", stderr)


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
    assert await script("nosuch; echo still") == (0, "still\n", "sh: nosuch: not found\n")
    assert await script("echo x; nosuch") == (127, "x\n", "sh: nosuch: not found\n")


async def test_exit_ends_the_script() -> None:
    assert await script("echo before; exit 4; echo after") == (4, "before\n", "")


async def test_empty_script_is_0() -> None:
    assert await script("") == (0, "", "")
    assert await script(" ; ") == (0, "", "")


async def test_unterminated_quote_is_a_syntax_error() -> None:
    assert await script("echo 'oops") == (2, "", "sh: syntax error: unterminated quoted string\n")


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
    assert captured.stderr == b"sh: nosuch: not found\n"


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
