"""The sandbox's commands about the system: date (on the Proc's clock), env, hostname, whoami, id, uname, sleep,
true, false, df (the instance's real bound and usage), free, ps, kubectl, and the version flags of the programs
an image claims to run (`nginx -v` in an nginx container). Tables are plausible, fixed and say nothing false
about the files."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from mcp_cloudops.sandbox.shell_files import zone
from mcp_cloudops.sandbox.shell_fs import image_name
from mcp_cloudops.sandbox.shell_io import OptionError, Proc, getopt, usage_error

Command = Callable[[list[str], Proc], Awaitable[int]]

KERNEL = "6.1.0-sandbox"
COREUTILS = "9.1"


# --------------------------------------------------------------------------------------------
# date
# --------------------------------------------------------------------------------------------

_ISO = {"date": "%Y-%m-%d", "hours": "%Y-%m-%dT%H%:z", "minutes": "%Y-%m-%dT%H:%M%:z"}
_ISO |= {"seconds": "%Y-%m-%dT%H:%M:%S%:z", "ns": "%Y-%m-%dT%H:%M:%S,%N%:z"}


def _strftime(when: datetime, fmt: str) -> str:
    """GNU date's format: strftime's directives, plus %N, %s, %:z, %q and the `-` (no padding) flag."""

    def directive(match: re.Match[str]) -> str:
        flag, name = match[1], match[2]
        if name == "N":
            text = f"{when.microsecond * 1000:09d}"
        elif name == "s":
            text = str(int(when.timestamp()))
        elif name == ":z":
            offset = when.strftime("%z")
            text = f"{offset[:3]}:{offset[3:]}"
        elif name == "q":
            text = str((when.month - 1) // 3 + 1)
        else:
            text = when.strftime("%" + name)
        return text.lstrip("0 ") or "0" if flag == "-" and text.strip() else text

    return re.sub(r"%([-_0^#]?)(:?[a-zA-Z%])", directive, fmt)


def _parse_date(text: str, tz: object) -> datetime | None:
    """`date -d`: @EPOCH, "now", or an ISO-like date and time."""
    text = text.strip()
    if text in ("", "now"):
        return None
    if match := re.fullmatch(r"@(-?\d+(?:\.\d+)?)", text):
        return datetime.fromtimestamp(float(match[1]), UTC)
    try:
        when = datetime.fromisoformat(text.replace(" UTC", "+00:00").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(text) from None
    return when if when.tzinfo else when.replace(tzinfo=tz)  # type: ignore[arg-type]


async def _date(args: list[str], proc: Proc) -> int:
    args = ["-Idate" if a == "-I" else "--iso-8601=date" if a == "--iso-8601" else a for a in args]
    try:
        options, operands = getopt(
            args, "uRI:d:", {"utc": "u", "universal": "u", "rfc-email": "R", "iso-8601": "I", "date": "d"}
        )
    except OptionError as error:
        return await usage_error(proc, "date", error)
    tz = zone(proc)
    fmt = "%a %b %e %H:%M:%S %Z %Y"
    when = datetime.fromtimestamp(proc.clock(), UTC)
    for flag, value in options:
        if flag == "u":
            tz = UTC
        elif flag == "R":
            fmt = "%a, %d %b %Y %H:%M:%S %z"
        elif flag == "I":
            fmt = _ISO.get(value or "date", "")
            if not fmt:
                await proc.err(f"date: invalid argument {proc.quote(value)} for '--iso-8601'\n")
                return 1
        elif flag == "d":
            try:
                when = _parse_date(value, tz) or when
            except ValueError:
                await proc.err(f"date: invalid date {proc.quote(value)}\n")
                return 1
    for operand in operands:
        if not operand.startswith("+"):
            await proc.err(f"date: invalid date {proc.quote(operand)}\n")
            return 1
        fmt = operand[1:]
    await proc.out(_strftime(when.astimezone(tz), fmt) + "\n")  # type: ignore[arg-type]
    return 0


# --------------------------------------------------------------------------------------------
# who am I: whoami, id, hostname, uname, env
# --------------------------------------------------------------------------------------------


async def _whoami(args: list[str], proc: Proc) -> int:
    name = proc.fs.user_of(proc.user.uid).name
    if name is None:
        await proc.err(f"whoami: cannot find name for user ID {proc.user.uid}\n")
        return 1
    await proc.out(name + "\n")
    return 0


async def _id(args: list[str], proc: Proc) -> int:
    try:
        options, operands = getopt(args, "ugGnr", {"user": "u", "group": "g", "groups": "G", "name": "n"})
    except OptionError as error:
        return await usage_error(proc, "id", error)
    fs, user = proc.fs, proc.user
    if operands:
        named = fs.user_named(operands[0]) or (fs.user_of(int(operands[0])) if operands[0].isdigit() else None)
        if named is None:
            await proc.err(f"id: {proc.quote(operands[0])}: no such user\n")
            return 1
        user = named
    flags = {flag for flag, _ in options}

    def shown(number: int, name: str | None) -> str:
        return (name or str(number)) if "n" in flags else str(number)

    if "u" in flags:
        await proc.out(shown(user.uid, fs.user_of(user.uid).name) + "\n")
    elif "g" in flags:
        await proc.out(shown(user.gid, fs.group_name(user.gid)) + "\n")
    elif "G" in flags:
        await proc.out(" ".join(shown(g, fs.group_name(g)) for g in user.groups) + "\n")
    else:
        name, group = fs.user_of(user.uid).name, fs.group_name(user.gid)
        groups = ",".join(f"{g}({fs.group_name(g)})" if fs.group_name(g) else str(g) for g in user.groups)
        uid = f"{user.uid}({name})" if name else str(user.uid)
        gid = f"{user.gid}({group})" if group else str(user.gid)
        await proc.out(f"uid={uid} gid={gid} groups={groups}\n")
    return 0


async def _hostname(args: list[str], proc: Proc) -> int:
    if any(arg not in ("-s", "--short", "-f", "--fqdn", "--long") for arg in args):
        await proc.err("hostname: the sandbox shell only prints the host name (hostname, -s, -f)\n")
        return 1
    await proc.out(proc.hostname + "\n")
    return 0


async def _uname(args: list[str], proc: Proc) -> int:
    try:
        options, _ = getopt(args, "asnrvmpio", {"all": "a", "kernel-name": "s", "nodename": "n"})
    except OptionError as error:
        return await usage_error(proc, "uname", error)
    flags = {flag for flag, _ in options} or {"s"}
    fields = {
        "s": "Linux",
        "n": proc.hostname,
        "r": KERNEL,
        "v": "#1 SMP PREEMPT_DYNAMIC",
        "m": "x86_64",
        "p": "unknown",
        "i": "unknown",
        "o": "GNU/Linux",
    }
    order = "snrvmo" if "a" in flags else "snrvmpio"
    await proc.out(" ".join(fields[f] for f in order if f in flags or "a" in flags) + "\n")
    return 0


async def _printenv(args: list[str], proc: Proc) -> int:
    if not args:
        await proc.out("".join(f"{k}={v}\n" for k, v in proc.env.items()))
        return 0
    found = [proc.env[name] for name in args if name in proc.env]
    await proc.out("".join(value + "\n" for value in found))
    return 0 if len(found) == len(args) else 1


# --------------------------------------------------------------------------------------------
# sleep, true, false
# --------------------------------------------------------------------------------------------

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


async def _sleep(args: list[str], proc: Proc) -> int:
    if not args:
        return await usage_error(proc, "sleep", OptionError("missing operand"))
    total = 0.0
    for arg in args:
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", arg)
        if match is None:
            await proc.err(
                f"sleep: invalid time interval {proc.quote(arg)}\nTry 'sleep --help' for more information.\n"
            )
            return 1
        total += float(match[1]) * _UNITS[match[2]]
    await proc.sleep(total)
    return 0


async def _true(args: list[str], proc: Proc) -> int:
    return 0


async def _false(args: list[str], proc: Proc) -> int:
    return 1


# --------------------------------------------------------------------------------------------
# df, free, ps
# --------------------------------------------------------------------------------------------


def _size(kib: int) -> str:
    """df -h's sizes from KiB: 12K, 1.0M, 64M."""
    value, units = float(kib), "KMGT"
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f}{units[0]}" if value < 10 else f"{value:.0f}{units[0]}"


async def _df(args: list[str], proc: Proc) -> int:
    human = any(arg in ("-h", "--human-readable") or (arg.startswith("-") and "h" in arg) for arg in args)
    total = proc.fs.max_bytes // 1024
    used = -(-proc.fs.usage() // 1024)
    rows = [("overlay", total, used, "/"), ("tmpfs", 65536, 0, "/dev"), ("shm", 65536, 0, "/dev/shm")]
    if human:
        lines = ["Filesystem      Size  Used Avail Use% Mounted on"]
        for name, size, taken, mount in rows:
            percent = f"{-(-taken * 100 // size)}%"
            used_text = _size(taken) if taken else "0"
            lines.append(f"{name:<15}{_size(size):>5}{used_text:>6}{_size(size - taken):>6}{percent:>5} {mount}")
    else:
        lines = ["Filesystem     1K-blocks  Used Available Use% Mounted on"]
        for name, size, taken, mount in rows:
            percent = f"{-(-taken * 100 // size)}%"
            lines.append(f"{name:<14}{size:>10}{taken:>6}{size - taken:>10}{percent:>5} {mount}")
    await proc.out("\n".join(lines) + "\n")
    return 0


_MEMORY_MIB = (2048, 312, 1210, 4, 526, 1651)  # total, used, free, shared, buff/cache, available


async def _free(args: list[str], proc: Proc) -> int:
    unit = next((a for a in args if a in ("-b", "-k", "-m", "-g", "-h", "--mega", "--giga", "--human")), "-k")
    scale = {"-b": 1 << 20, "-k": 1024, "-m": 1, "--mega": 1, "-g": 1 / 1024, "--giga": 1 / 1024}

    def cell(mib: int) -> str:
        if unit in ("-h", "--human"):
            return f"{mib / 1024:.1f}Gi" if mib >= 1024 else f"{mib}Mi" if mib else "0B"
        return str(int(mib * scale[unit]))

    header = " " * 15 + "".join(f"{h:>12}" for h in ("total", "used", "free", "shared", "buff/cache", "available"))
    mem = "Mem:" + " " * 11 + "".join(f"{cell(n):>12}" for n in _MEMORY_MIB)
    swap = "Swap:" + " " * 10 + "".join(f"{cell(0):>12}" for _ in range(3))
    await proc.out(f"{header}\n{mem}\n{swap}\n")
    return 0


_MAIN = {  # PID 1 of each image, as `ps -ef` would show its command
    "nginx": "nginx: master process nginx -g daemon off;",
    "postgres": "postgres",
    "redis": "redis-server *:6379",
    "python": "python3 app.py",
    "busybox": "sh",
}


async def _ps(args: list[str], proc: Proc) -> int:
    main = _MAIN.get(image_name(proc.image), "/sbin/init" if not proc.image else "sh")
    user = proc.fs.user_of(proc.user.uid).name or str(proc.user.uid)
    started = datetime.fromtimestamp(proc.clock(), zone(proc)).strftime("%H:%M")
    processes = [(1, 0, "root", main), (7, 0, user, "sh"), (8, 7, user, "ps " + " ".join(args))]
    wide = " ".join(args).replace("-", "")
    if wide in ("aux", "ax", "au", "axu"):
        lines = ["USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND"]
        for pid, _, owner, command in processes:
            lines.append(f"{owner:<8}{pid:>8}  0.0  0.1   4520  3284 ?        Ss   {started}   0:00 {command.strip()}")
    elif wide in ("ef", "e f", "eF"):
        lines = ["UID          PID    PPID  C STIME TTY          TIME CMD"]
        for pid, parent, owner, command in processes:
            lines.append(f"{owner:<8}{pid:>8}{parent:>8}  0 {started} ?        00:00:00 {command.strip()}")
    else:
        lines = ["    PID TTY          TIME CMD"]
        for pid, _, _, command in processes if wide in ("e", "A") else processes[1:]:
            lines.append(f"{pid:>7} ?        00:00:00 {command.split()[0].split(':')[0]}")
    await proc.out("\n".join(lines) + "\n")
    return 0


# --------------------------------------------------------------------------------------------
# kubectl (the Kubernetes shell pod's), and what images claim to run
# --------------------------------------------------------------------------------------------

_KUBECTL = {
    "pods": "NAME    READY   STATUS    RESTARTS   AGE\n"
    "web-0   1/1     Running   0          3d\n"
    "web-1   1/1     Running   0          3d\n",
    "namespaces": "NAME              STATUS   AGE\ndefault           Active   30d\nkube-system       Active   30d\n",
    "nodes": "NAME      STATUS   ROLES           AGE   VERSION\nsandbox   Ready    control-plane   30d   v1.30.0\n",
}
_KUBECTL_ALIASES = {"pod": "pods", "po": "pods", "ns": "namespaces", "namespace": "namespaces", "node": "nodes"}


def _cluster_table(kind: str, cluster: Mapping[str, Mapping[str, Sequence[str]]], namespace: str | None) -> str:
    """`kubectl get pods|namespaces` of the environment the shell runs in: every namespace with -A (and a
    NAMESPACE column), else the one -n names (default: default), as kubectl lays them out."""
    if kind == "namespaces":
        width = max(len("NAME"), *(len(name) for name in cluster)) + 3
        return "".join(f"{name:<{width}}{status:<9}AGE\n" if name == "NAME" else f"{name:<{width}}Active   30d\n"
                       for name, status in [("NAME", "STATUS"), *((n, "") for n in cluster)])  # fmt: skip
    rows = [(ns, pod, len(containers)) for ns, pods in cluster.items() for pod, containers in pods.items()
            if namespace is None or ns == namespace]  # fmt: skip
    if not rows:
        return ""
    name_width = max(len("NAME"), *(len(pod) for _, pod, _ in rows)) + 3
    ns_width = max(len("NAMESPACE"), *(len(ns) for ns, _, _ in rows)) + 3
    head = ("NAMESPACE".ljust(ns_width) if namespace is None else "") + "NAME".ljust(name_width)
    lines = [head + "READY   STATUS    RESTARTS   AGE"]
    for ns, pod, count in rows:
        lines.append((ns.ljust(ns_width) if namespace is None else "") + pod.ljust(name_width)
                     + f"{count}/{count}".ljust(8) + "Running   0          3d")  # fmt: skip
    return "\n".join(lines) + "\n"


async def _kubectl(args: list[str], proc: Proc) -> int:
    words = [arg for arg in args if not arg.startswith("-")]
    every = "-A" in args or "--all-namespaces" in args
    named = next((args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("-n", "--namespace")), None)
    words = [word for word in words if word != named]
    if words[:1] == ["version"]:
        await proc.out("Client Version: v1.30.0\nServer Version: v1.30.0\n")
        return 0
    if words[:1] == ["get"] and len(words) >= 2:
        kind = _KUBECTL_ALIASES.get(words[1], words[1])
        if proc.cluster is not None and kind in ("pods", "namespaces"):
            table = _cluster_table(kind, proc.cluster, None if every else (named or "default"))
            if table:
                await proc.out(table)
            else:
                await proc.err(f"No resources found in {named or 'default'} namespace.\n")
            return 0
        if kind in _KUBECTL:
            await proc.out(_KUBECTL[kind])
            return 0
        await proc.err(f'error: the server doesn\'t have a resource type "{words[1]}"\n')
        return 1
    await proc.err(f'error: unknown command "{" ".join(words)}" for "kubectl"\n')
    return 1


def _release(tag: str, default: str, parts: int = 3) -> str:
    """An image tag's version, padded with .0 (nginx:1.27 runs 1.27.0); `default` for latest or none."""
    match = re.match(r"\d+(?:\.\d+)*", tag)
    numbers = (match[0] if match else default).split(".")
    return ".".join((numbers + ["0"] * parts)[:parts])


def _programs(image: str) -> dict[str, tuple[tuple[str, ...], int, str]]:
    """program -> (version flags, stream, line) for what `image` ships beyond Debian's base."""
    name, _, tag = image.rsplit("/", 1)[-1].partition(":")
    if name == "nginx":
        v = _release(tag, "1.27")
        return {"nginx": (("-v", "-V"), 2, f"nginx version: nginx/{v}")}
    if name == "postgres":
        v = _release(tag, "16", 2)
        line = f"(PostgreSQL) {v} (Debian {v}-1.pgdg120+1)"
        return {
            "postgres": (("--version", "-V"), 1, f"postgres {line}"),
            "psql": (("--version", "-V"), 1, f"psql {line}"),
        }
    if name == "redis":
        v = _release(tag, "7.4")
        server = f"Redis server v={v} sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=5e2c1a33a0f0c1c5"
        return {
            "redis-server": (("--version", "-v"), 1, server),
            "redis-cli": (("--version", "-v"), 1, f"redis-cli {v}"),
        }
    if name == "python":
        v = _release(tag, "3.12")
        return {p: (("--version", "-V"), 1, f"Python {v}") for p in ("python", "python3")} | {
            "pip": (
                ("--version", "-V"),
                1,
                f"pip 24.0 from /usr/local/lib/python{v.rsplit('.', 1)[0]}/site-packages/pip",
            )
        }
    if name == "busybox":
        v = _release(tag, "1.36")
        return {"busybox": (("--help", "--version"), 1, f"BusyBox v{v} (2024-01-01 00:00:00 UTC) multi-call binary.")}
    return {}


def image_program(image: str, program: str) -> Command | None:
    """The command for a program `image` claims to run: it answers its version flags, and nothing else."""
    found = _programs(image).get(program)
    if found is None:
        return None
    flags, stream, line = found

    async def run(args: list[str], proc: Proc) -> int:
        if args[:1] and args[0] in flags:
            await proc.write(stream, (line + "\n").encode())
            return 0
        shown = f"{program} {' '.join(flags[:1])}"
        await proc.err(f"{proc.where}{program}: the sandbox shell only answers `{shown}` for this image's programs\n")
        return 126

    return run


_VERSIONS = {
    "grep": "grep (GNU grep) 3.8",
    "ps": "ps from procps-ng 4.0.2",
    "free": "free from procps-ng 4.0.2",
    "hostname": "hostname 3.23",
    "bash": "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)",
}
_NOT_COREUTILS = {"echo", "printf", "test", "[", "pwd", "sh", "dash", "bash", "kubectl", "grep", "ps", "free"}
_NOT_COREUTILS |= {"hostname", "which", "true", "false"}  # true and false: dash's builtins, which take no options


def version_line(program: str) -> str | None:
    """What `program --version` prints first (GNU coreutils 9.1 for coreutils); None if it has no such flag."""
    if program in _VERSIONS:
        return _VERSIONS[program]
    return None if program in _NOT_COREUTILS else f"{program} (GNU coreutils) {COREUTILS}"


SYSTEM_COMMANDS: dict[str, Command] = {
    "date": _date,
    "whoami": _whoami,
    "id": _id,
    "hostname": _hostname,
    "uname": _uname,
    "printenv": _printenv,
    "sleep": _sleep,
    "true": _true,
    "false": _false,
    "df": _df,
    "free": _free,
    "ps": _ps,
    "kubectl": _kubectl,
}
