"""The sandbox shell judged against a real one: each script runs through the sandbox interpreter and through
`/bin/sh` (dash, with Debian's GNU coreutils and grep) in an empty temporary directory, and stdout, stderr and
the exit code must be the same byte for byte. The real directory's path is written as /work, the sandbox's
working directory and $HOME; the line the sandbox adds under "not found" (what it has instead) is left out.
Skipped where /bin/sh is not dash or the tools are not GNU's."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from mcp_cloudops.sandbox.shell import Proc, Stdin, run_command
from mcp_cloudops.sandbox.shell_fs import FileSystem

pytestmark = pytest.mark.anyio


def _real_tools() -> str:
    """Why the comparison cannot run here ("" if it can)."""
    if not os.path.realpath("/bin/sh").endswith("dash"):
        return "/bin/sh is not dash"
    ls = shutil.which("ls")
    version = subprocess.run([ls or "ls", "--version"], capture_output=True, text=True).stdout if ls else ""
    return "" if "GNU coreutils" in version else "ls is not GNU coreutils'"


pytestmark = [pytest.mark.anyio, pytest.mark.skipif(bool(_real_tools()), reason=_real_tools() or "")]

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UTF8 = {"PATH": PATH, "LANG": "C.UTF-8"}
C = {"PATH": PATH, "LC_ALL": "C"}

SCRIPTS: dict[str, str] = {
    # -- redirections ------------------------------------------------------------------------
    "write and read back": "echo hello > f; cat f",
    "append": "echo a > f; echo b >> f; cat f; wc -l < f",
    "truncate on open": "echo long line > f; echo x > f; cat f",
    "read a missing file": "cat < missing; echo rc=$?",
    "create in a missing directory": 'echo hi > nodir/x; echo "st=$?"',
    "create over a directory": "mkdir d; echo x > d; echo rc=$?",
    "stderr to stdout": "ls missing 2>&1; echo rc=$?",
    "stderr thrown away": "ls missing 2>/dev/null; echo rc=$?",
    "stderr to a file": "cat missing 2> err.txt; echo rc=$?; cat err.txt",
    "stdout to stderr": "echo to-err >&2; echo to-out",
    "both to a file": "ls missing f > out 2>&1; touch f; cat out",
    "order matters": "ls missing 2>&1 > out; echo rc=$?; cat out",
    "dev null": "echo gone > /dev/null; cat /dev/null; echo done",
    "here-document": "X=there; cat <<EOF\nhello $X\n  ${X}!\nEOF",
    "quoted here-document": "X=there; cat <<'EOF'\nhello $X\nEOF",
    "here-document with tabs": "cat <<-EOF\n\tindented\n\tEOF\necho after",
    "here-document into a file": "cat > conf <<EOF\nkey=value\nEOF\ncat conf",
    # -- pipes and lists ---------------------------------------------------------------------
    "sort": "printf '3\\n1\\n2\\n' | sort",
    "sort -r": "printf 'b\\na\\nc\\n' | sort -r",
    "sort -n": "printf '10\\n9\\n100\\n-1\\n' | sort -n",
    "sort -rn": "printf '10\\n9\\n100\\n' | sort -rn",
    "sort -u": "printf 'b\\na\\nb\\na\\n' | sort -u",
    "head -n": "seq 10 | head -n 3",
    "head -N": "seq 10 | head -4",
    "tail -n": "seq 10 | tail -n 2",
    "tail -N": "seq 10 | tail -3",
    "tail -n +N": "seq 5 | tail -n +3",
    "yes into head": "yes | head -n 2",
    "wc -l": "seq 100 | wc -l",
    "wc -w": "echo 'a b  c' | wc -w",
    "wc -c": "printf abc | wc -c",
    "wc of stdin": "printf 'a b\\nc\\n' | wc",
    "wc of files": "printf 'a b\\nc\\n' > f; echo x > g; wc f; wc -l f g; wc < f",
    "grep": "printf 'apple\\nBanana\\ncherry\\n' | grep an",
    "grep -i": "printf 'apple\\nBanana\\ncherry\\n' | grep -i b",
    "grep -v": "printf 'apple\\nBanana\\ncherry\\n' | grep -v an",
    "grep -c": "printf 'a\\nb\\na\\n' | grep -c a",
    "grep -n": "printf 'a\\nb\\na\\n' | grep -n a",
    "grep -q": "printf 'a\\nb\\n' | grep -q b && echo found; printf 'a\\n' | grep -q z; echo rc=$?",
    "grep -E": "printf 'cat\\ndog\\nbird\\n' | grep -E 'cat|bird'",
    "grep basic alternation": "printf 'cat\\ndog\\nbird\\n' | grep 'dog\\|bird'",
    "grep in files": "echo one > a; echo two > b; grep o a b; grep -c o a b",
    "grep no match": "echo abc | grep z; echo rc=$?",
    "uniq -c": "printf 'a\\na\\nb\\na\\n' | uniq -c",
    "uniq -d -u": "printf 'a\\na\\nb\\nc\\nc\\n' > f; uniq -d f; uniq -u f; uniq f",
    "head -c tail -c": "printf abcdef | head -c 2; echo; printf abcdef | tail -c 3; echo",
    "sort -k -t": "printf 'b 2\\na 3\\nc 1\\n' | sort -k2; printf 'x:10\\ny:9\\n' | sort -t: -k2 -n",
    "grep -w -x -o": "printf 'cat\\ncats\\nthe cat\\n' > f; grep -w cat f; grep -x cat f; grep -o 'ca.' f",
    "grep -l -r": "mkdir d; echo needle > d/a; echo hay > d/b; grep -l needle d/a d/b; grep -r needle d",
    "wc -m": "printf 'h\\303\\251\\n' | wc -m; printf 'h\\303\\251\\n' | wc -c",
    "seq -s": "seq -s , 1 3; seq -s ' ' 2",
    "cat -n": "printf 'a\\n\\nb\\n' | cat -n",
    "tee": "echo abc | tee f | wc -c; cat f",
    "pipeline status is the last": "false | true; echo $?; true | false; echo $?",
    "negation": "! false; echo $?; ! true; echo $?",
    "stages are subshells": 'x=1 | true; echo "[$x]"; exit 3 | true; echo $?',
    "and or": "true && echo yes || echo no; false && echo yes || echo no",
    "or chain": "false || false; echo $?",
    "and skips": "cat missing && echo never; echo rc=$?",
    # -- quoting and parameters --------------------------------------------------------------
    "quotes": "echo 'a  b' \"c  d\" e\\ \\ f",
    "single quotes keep dollars": "X=world; echo \"hello $X\" 'hello $X' hello\\ $X",
    "field splitting": "X='a  b'; printf '[%s]\\n' $X \"$X\" ${X}",
    "empty quoted argument": "printf '[%s]\\n' '' \"\" x",
    "defaults": 'X=set; echo "${UNSET:-default}" "${UNSET-d2}" "${X:+alt}" "${X:-no}"',
    "assign default": 'echo "${NEW:=made}"; echo "$NEW"',
    "trimming": "X=/a/b/c.txt; echo ${X##*/} ${X%.*} ${X#*/} ${X%%/*}x ${#X}",
    "status": "false; echo $?; true; echo $?",
    "home": 'echo "$HOME"; cd && pwd',
    "tilde": "echo ~ ~/x a~",
    "positional": "sh -c 'echo $0 $# $1 $2' prog a b",
    "set --": 'set -- a "b c"; echo $#; printf "[%s]\\n" "$@"',
    "echo escapes": 'echo "a\\tb"; echo -n x; echo y',
    "prefix assignment": "VAR=1 sh -c 'echo $VAR'; echo \"[$VAR]\"",
    "export": "export Y=2; sh -c 'echo $Y'; Z=3; sh -c 'echo \"[$Z]\"'",
    "unset": 'X=1; unset X; echo "[$X]"',
    "comments": "echo a#b # a comment\n# a whole line\necho c",
    "newline inside quotes": 'echo "multi\nline"',
    "backslash newline": "echo a\\\nb",
    "literal operators": "echo ';' '&&' \\| \">\"",
    "eval": "eval 'echo hi; false'; echo $?",
    # -- globs -------------------------------------------------------------------------------
    "glob": "touch b.txt a.txt c.log; echo *.txt; ls *.txt; echo *",
    "glob ?": "touch a1 a2 b1; echo a?",
    "glob brackets": "touch a1 a2 b1; echo [ab]1 [!a]*",
    "glob no match": "echo *.none; ls *.none; echo rc=$?",
    "glob quoted": "touch x; echo '*' \"*\" \\*",
    "glob hidden": "touch .hidden shown; echo *; echo .*",
    "rm glob": "touch a.log b.log keep; rm -f *.log; ls",
    # -- printf ------------------------------------------------------------------------------
    "printf strings": "printf '%s|%5s|%-5s|%.2s|%c|%%\\n' abc de fg hijk xyz",
    "printf numbers": "printf '%d %i %u %o %x %X %#x %#o %05d %+d % d %-4d|\\n' 10 11 12 8 255 255 255 8 42 5 6 7",
    "printf floats": "printf '%e %f %.3f %g %G %E\\n' 1.5 2.25 3.14159 0.0001 1e20 12345.678",
    "printf reuses the format": "printf '%s-%s\\n' a b c",
    "printf %b": "printf '%b|\\n' 'a\\tb\\101'",
    "printf number forms": "printf '%d\\n' 0x1f 010 \"'A\"",
    "printf bad number": "printf '%d\\n' 12abc; echo rc=$?; printf '%d\\n' abc; echo rc=$?",
    "printf width from args": "printf '%5.1f|%*d|%-*s|\\n' 3.14159 4 7 3 x",
    "printf missing args": "printf '%s %d\\n' onlyone",
    "printf bad directive": "printf 'a %q\\n' x; echo rc=$?",
    "printf octal": "printf '\\101\\n'",
    # -- test --------------------------------------------------------------------------------
    "test files": "touch f; mkdir d; [ -f f ] && echo f; [ -d d ] && echo d; [ -e nope ] || echo no; [ -f d ]; echo $?",
    "test strings": '[ -z "" ] && echo z; [ -n x ] && echo n; [ a = a ] && echo eq; [ a != b ] && echo ne; '
    "[ x ]; echo $?; [ '' ]; echo $?",
    "test numbers": "[ 3 -eq 3 ] && echo eq; [ 2 -lt 10 ] && echo lt; [ 5 -ge 6 ]; echo $?; test 1 -ne 2; echo $?",
    "test bad number": "[ abc -gt 1 ]; echo rc=$?",
    "test and or not": "[ a = a -a b = c ]; echo $?; [ a = b -o b = b ]; echo $?; [ ! -f nope ]; echo $?",
    "test no arguments": "[ ]; echo $?; test; echo $?",
    "test missing bracket": "[ 1 -eq 1; echo rc=$?",
    "test ==": "[ a == a ]; echo rc=$?",
    "test unexpected operator": "test a b c; echo rc=$?",
    "test dash's corner cases": (
        "test a b; echo $?; test -f a b; echo $?; test 1 -eq; echo $?; test ! a b; echo $?; test a -a; echo $?; "
        + "test a = b c; echo $?; test -z; echo $?; test -z a b; echo $?; test x -o; echo $?; test -f; echo $?; "
        + "test ! -f; echo $?; test = a; echo $?; test a =; echo $?; test -n a -a; echo $?; test '(' a ')'; "
        + "echo $?; test '(' a = a ')'; echo $?; test ! a = a; echo $?; test 1 -lt 2 -a; echo $?; test !; echo $?"
    ),
    "test -a -o precedence": "[ a -o b -a '' ]; echo $?; [ '' -a b -o c ]; echo $?; [ ! '' -a ! '' ]; echo $?",
    # -- files -------------------------------------------------------------------------------
    "mkdir exists": "mkdir a; mkdir a; echo rc=$?",
    "mkdir missing parent": "mkdir x/y; echo rc=$?",
    "mkdir -p": "mkdir -p d/e/f && ls d d/e && mkdir -p d/e && echo again",
    "mkdir no operand": "mkdir; echo rc=$?",
    "rm missing": "rm missing; echo rc=$?; rm -f missing; echo rc=$?",
    "rm a directory": "mkdir d; rm d; echo rc=$?; rm -r d; ls",
    "rmdir": "rmdir nope; mkdir d; touch d/f; rmdir d; echo rc=$?",
    "touch in a missing directory": "touch d/x; echo rc=$?",
    "ls missing": "ls nope; echo rc=$?",
    "ls files and directories": "mkdir d; touch d/in f; ls f d",
    "ls -a -A -1": "touch .h v; ls -a; ls -A; ls -1",
    "ls -d": "mkdir d; ls -d d",
    "ls one missing one present": "mkdir d; touch d/e; ls nope d; echo rc=$?",
    "cat missing": "echo x > f; cat missing f; echo rc=$?",
    "cat a directory": "mkdir d; cat d; echo rc=$?",
    "head invalid": "echo x > f; head -n x f; echo rc=$?",
    "tail invalid": "echo x > f; tail -n x f; echo rc=$?",
    "head missing": "head missing; echo rc=$?",
    "head several files": "echo a > f; echo b > g; head f g",
    "wc missing": "wc missing; echo rc=$?",
    "grep missing": "grep x missing; echo rc=$?",
    "sort missing": "sort missing; echo rc=$?",
    "cp and mv": "echo x > a; cp a b; cat b; mv b c; ls; cp nope z; echo rc=$?",
    "cp into a directory": "mkdir d; echo x > a; cp a d; mv a d/moved; ls d",
    "cp -r rm -rf": "mkdir -p d/e; echo x > d/e/f; cp d e; echo rc=$?; cp -r d e; cat e/e/f; rm -rf d e; ls",
    "mv a directory": "mkdir d; touch d/f; mv d e; ls e; mv nope x; echo rc=$?",
    "date fixed": "date -u -d @0; date -u -d @1800000000 '+%Y-%m-%d %H:%M:%S %a %b %j %s %:z'; date -u -d @0 -I",
    "date iso": "date -u -d @1800000000 -Iseconds; date -u -d @1800000000 -R; date -d @0 -u +%F",
    "date invalid": "date -u -d nonsense; echo rc=$?; date -u -x; echo rc=$?",
    "basename dirname": "basename /a/b.txt .txt; basename /a/b/; dirname /a/b/c; dirname a; dirname /",
    "cd": "mkdir d; cd d && pwd; cd ..; cd nope; echo rc=$?; cd - ",
    "pwd after cd": "mkdir -p d/e; cd d/e; pwd; cd ../..; pwd",
    # -- the shell ---------------------------------------------------------------------------
    "not found": "frobnicate --x; echo rc=$?",
    "not found on line 3": "echo one\necho two\nnosuchcommand\necho rc=$?",
    "exit": "echo before; exit 4; echo after",
    "exit in sh -c": "sh -c 'exit 7'; echo $?",
    "syntax error quote": "echo 'oops",
    "syntax error pipe": "| cat",
    "syntax error and": "echo a &&",
    "syntax error semicolon": "echo a; ;",
    "syntax error brace": "echo ${x",
    "syntax error redirect": "echo a >",
    "set -e": "set -e; echo one; false; echo no",
    "set -e spares conditions": "set -e; false || echo rescued; false && echo no; echo end",
    "set -u": "set -u; echo $NOPE; echo after",
    "set -x": "set -x; echo a 'b c'; X=1",
    "set -o pipefail": "set -o pipefail; echo never",
    "parameter not set": "echo ${NOPE?}; echo after",
    "command -v": "command -v echo cd ls; command -v nosuch; echo rc=$?; command -V ls; command -V cd",
    "type": "type echo cd ls exit",
    "true false colon": ": ignored; echo $?; true; echo $?; false; echo $?",
    "seq": "seq 3; seq 2 4; seq 1 2 7; seq 5 3; seq 1 0.5 2",
    "seq errors": "seq; echo rc=$?; seq x; echo rc=$?",
    "sleep errors": "sleep; echo rc=$?; sleep x; echo rc=$?",
    "sh reads a file": "echo 'echo from file $1' > s.sh; sh s.sh arg",
    "running a script": "printf '#!/bin/sh\\necho ran\\n' > s.sh; ./s.sh; echo rc=$?; chmod +x s.sh; ./s.sh",
    "running a directory": "mkdir d; ./d; echo rc=$?",
}

C_LOCALE = {"mkdir exists", "head invalid", "tail invalid", "seq errors", "sleep errors"}


def _sh(script: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        ["sh", "-c", script],
        executable="/bin/sh",
        cwd=cwd,
        env={**env, "HOME": str(cwd)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
    )
    work = str(cwd)
    return done.returncode, done.stdout.decode().replace(work, "/work"), done.stderr.decode().replace(work, "/work")


async def _sandbox(script: str, env: dict[str, str]) -> tuple[int, str, str]:
    fs = FileSystem("box")
    fs.mkdir("/work")
    out, err = bytearray(), bytearray()

    async def write(stream: int, data: bytes) -> None:
        (out if stream == 1 else err).extend(data)

    async def sleep(seconds: float) -> None:
        pass

    proc = Proc(write, Stdin.empty(), "box", sleep, fs=fs, env={**env, "HOME": "/work"}, cwd="/work")
    with anyio.fail_after(5):
        code = await run_command(["sh", "-c", script], proc)
    hint = "not simulated by the sandbox shell"
    return code, out.decode(), "".join(line for line in err.decode().splitlines(True) if hint not in line)


def _cases() -> list[tuple[str, str, dict[str, str]]]:
    cases = [(name, script, UTF8) for name, script in SCRIPTS.items()]
    return cases + [(f"{name} (C locale)", SCRIPTS[name], C) for name in sorted(C_LOCALE)]


@pytest.mark.parametrize(("script", "env"), [(s, e) for _, s, e in _cases()], ids=[n for n, _, _ in _cases()])
async def test_same_as_sh(script: str, env: dict[str, str], tmp_path: Path) -> None:
    assert await _sandbox(script, env) == _sh(script, env, tmp_path)
