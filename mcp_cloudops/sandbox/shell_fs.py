"""Each simulated instance's, container's and pod's own files: a small in-memory tree the sandbox shell reads
and writes, kept by the simulator for as long as the sandbox runs, and bounded (bytes and entries) so a
sandbox cannot be made to eat memory. Who may write where follows the owner and mode bits, root excepted."""

from __future__ import annotations

import errno
import os
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BYTES = 1 << 20
MAX_ENTRIES = 256

_OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL="https://www.debian.org/"\n'
)
_PASSWD = [
    ("root", 0, 0, "/root", "/bin/bash"),
    ("daemon", 1, 1, "/usr/sbin", "/usr/sbin/nologin"),
    ("bin", 2, 2, "/bin", "/usr/sbin/nologin"),
    ("sys", 3, 3, "/dev", "/usr/sbin/nologin"),
    ("www-data", 33, 33, "/var/www", "/usr/sbin/nologin"),
    ("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin"),
]
_GROUPS = [("root", 0), ("daemon", 1), ("bin", 2), ("sys", 3), ("adm", 4), ("www-data", 33), ("nogroup", 65534)]
_IMAGE_USERS = {  # the service account each official image adds (name, uid, gid, home)
    "nginx": ("nginx", 101, 101, "/nonexistent"),
    "postgres": ("postgres", 999, 999, "/var/lib/postgresql"),
    "redis": ("redis", 999, 999, "/home/redis"),
}


class FsError(Exception):
    """A failed file operation; `str()` is the C library's text for its errno ("No such file or directory")."""

    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))
        self.code = code


@dataclass
class Node:
    """A directory (`data` None), a regular file, or a character device (`device`: /dev/null, /dev/zero)."""

    data: bytearray | None
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: float = 0.0
    device: str = ""

    @property
    def is_dir(self) -> bool:
        return self.data is None and not self.device

    @property
    def size(self) -> int:
        return 4096 if self.is_dir else len(self.data or b"")


@dataclass(frozen=True)
class User:
    """Who a process runs as: what `id` and `whoami` print and what the mode bits are checked against."""

    uid: int = 0
    gid: int = 0
    name: str | None = "root"
    groups: tuple[int, ...] = (0,)
    home: str = "/root"


ROOT = User()


def image_name(image: str) -> str:
    """`docker.io/library/nginx:1.27` -> `nginx`."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]


@dataclass
class FileSystem:
    """A tree of `Node`s keyed by absolute, normalised path. Paths given to it are resolved against a cwd first
    (`resolve`); there are no symbolic links."""

    hostname: str = "sandbox"
    image: str = ""
    max_bytes: int = MAX_BYTES
    max_entries: int = MAX_ENTRIES
    clock: Callable[[], float] = time.time
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.nodes:
            self._seed()

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def resolve(cwd: str, path: str) -> str:
        return posixpath.normpath(posixpath.join(cwd, path)).replace("//", "/")

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def lookup(self, path: str, user: User = ROOT) -> Node:
        """The node at `path`, or why there is none: a missing step, a step that is a file, or a directory
        `user` may not search."""
        current = "/"
        for part in (p for p in path.split("/") if p):
            above = self.nodes[current]
            if not above.is_dir:
                raise FsError(errno.ENOTDIR)
            if not self.allowed(above, user, 1):
                raise FsError(errno.EACCES)
            current = posixpath.join(current, part)
            if current not in self.nodes:
                raise FsError(errno.ENOENT)
        return self.nodes[current]

    def read(self, path: str, user: User = ROOT) -> bytes:
        node = self.lookup(path, user)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        if not self.allowed(node, user, 4):
            raise FsError(errno.EACCES)
        return bytes(node.data or b"")

    def listdir(self, path: str, user: User = ROOT) -> list[str]:
        node = self.lookup(path, user)
        if not node.is_dir:
            raise FsError(errno.ENOTDIR)
        if not self.allowed(node, user, 4):
            raise FsError(errno.EACCES)
        prefix = path.rstrip("/") + "/"
        names = (p[len(prefix) :] for p in self.nodes if p.startswith(prefix) and p != path)
        return sorted(name for name in names if "/" not in name)

    def usage(self) -> int:
        """Bytes held by regular files."""
        return sum(len(n.data) for n in self.nodes.values() if n.data is not None)

    @staticmethod
    def allowed(node: Node, user: User, bit: int) -> bool:
        """Whether `user` has `bit` (4 read, 2 write, 1 search/execute) on `node`; root has all but execute."""
        if user.uid == 0:
            return bit != 1 or node.is_dir or bool(node.mode & 0o111)
        if node.uid == user.uid:
            return bool(node.mode >> 6 & bit)
        if node.gid == user.gid or node.gid in user.groups:
            return bool(node.mode >> 3 & bit)
        return bool(node.mode & bit)

    # -- writing ---------------------------------------------------------------------------

    def write(self, path: str, data: bytes, user: User = ROOT, *, append: bool = False) -> None:
        """Create, truncate (`append` False) or extend a regular file; devices swallow what they are sent."""
        node = self.nodes.get(path)
        if node is None:
            node = self._create(path, bytearray(), 0o644, user)
        elif node.is_dir:
            raise FsError(errno.EISDIR)
        elif node.device:
            return
        elif not self.allowed(node, user, 2):
            raise FsError(errno.EACCES)
        assert node.data is not None
        grow = len(data) - (0 if append else len(node.data))
        if grow > 0 and self.usage() + grow > self.max_bytes:
            raise FsError(errno.ENOSPC)
        if not append:
            node.data.clear()
        node.data.extend(data)
        node.mtime = self.clock()

    def mkdir(self, path: str, user: User = ROOT, *, parents: bool = False, mode: int = 0o755) -> list[str]:
        """Make a directory (with `parents`, its missing parents too); the paths it made."""
        made: list[str] = []
        if parents and path != "/":
            parent = posixpath.dirname(path)
            if parent not in self.nodes:
                made = self.mkdir(parent, user, parents=True, mode=mode)
        if path in self.nodes:
            if parents and self.nodes[path].is_dir:
                return made
            raise FsError(errno.EEXIST)
        self._create(path, None, mode, user)
        return [*made, path]

    def touch(self, path: str, user: User = ROOT) -> None:
        node = self.nodes.get(path)
        if node is None:
            self._create(path, bytearray(), 0o644, user)
        elif not self.allowed(node, user, 2) and node.uid != user.uid:
            raise FsError(errno.EACCES)
        else:
            node.mtime = self.clock()

    def remove(self, path: str, user: User = ROOT, *, recursive: bool = False, directory: bool = False) -> None:
        """`rm` (a file; with `recursive`, a whole tree) or `rmdir` (`directory`: an empty directory only)."""
        node = self.lookup(path, user)
        if path == "/":
            raise FsError(errno.EBUSY)
        parent = self.nodes[posixpath.dirname(path)]
        if not self.allowed(parent, user, 2):
            raise FsError(errno.EACCES)
        if node.is_dir:
            inside = [p for p in self.nodes if p.startswith(path + "/")]
            if directory and inside:
                raise FsError(errno.ENOTEMPTY)
            if not directory and not recursive:
                raise FsError(errno.EISDIR)
            for child in inside:
                del self.nodes[child]
        elif directory:
            raise FsError(errno.ENOTDIR)
        del self.nodes[path]

    def move(self, source: str, target: str, user: User = ROOT) -> None:
        """`rename(2)`: a file or a whole directory to a new path (replacing a file, or an empty directory)."""
        node = self.lookup(source, user)
        for parent in {posixpath.dirname(source), posixpath.dirname(target)}:
            above = self.lookup(parent, user)
            if not above.is_dir:
                raise FsError(errno.ENOTDIR)
            if not self.allowed(above, user, 2):
                raise FsError(errno.EACCES)
        if target == source:
            return
        if target.startswith(source + "/"):
            raise FsError(errno.EINVAL)
        existing = self.nodes.get(target)
        if existing is not None:
            if existing.is_dir and not node.is_dir:
                raise FsError(errno.EISDIR)
            if node.is_dir and not existing.is_dir:
                raise FsError(errno.ENOTDIR)
            if any(p.startswith(target + "/") for p in self.nodes):
                raise FsError(errno.ENOTEMPTY)
        moved = {p: n for p, n in self.nodes.items() if p == source or p.startswith(source + "/")}
        for path in moved:
            del self.nodes[path]
        for path, moved_node in moved.items():
            self.nodes[target + path[len(source) :]] = moved_node

    def chmod(self, path: str, mode: int, user: User = ROOT) -> None:
        node = self.lookup(path, user)
        if user.uid not in (0, node.uid):
            raise FsError(errno.EPERM)
        node.mode = mode & 0o7777

    def _create(self, path: str, data: bytearray | None, mode: int, user: User) -> Node:
        parent_path = posixpath.dirname(path)
        parent = self.lookup(parent_path, user)
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR)
        if not self.allowed(parent, user, 2):
            raise FsError(errno.EACCES)
        if len(path.encode()) >= 4096 or len(posixpath.basename(path).encode()) > 255:  # PATH_MAX, NAME_MAX
            raise FsError(errno.ENAMETOOLONG)
        if len(self.nodes) >= self.max_entries:
            raise FsError(errno.ENOSPC)
        node = Node(data, mode, user.uid, user.gid, self.clock())
        self.nodes[path] = node
        return node

    # -- users -----------------------------------------------------------------------------

    def passwd(self) -> list[tuple[str, int, int, str]]:
        """/etc/passwd as (name, uid, gid, home), as the container holds it now."""
        rows = []
        for line in self._text("/etc/passwd").splitlines():
            fields = line.split(":")
            if len(fields) >= 6 and fields[2].isdigit() and fields[3].isdigit():
                rows.append((fields[0], int(fields[2]), int(fields[3]), fields[5]))
        return rows

    def group_rows(self) -> list[tuple[str, int, list[str]]]:
        rows = []
        for line in self._text("/etc/group").splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[2].isdigit():
                rows.append((fields[0], int(fields[2]), [m for m in fields[3].split(",") if m]))
        return rows

    def user_named(self, name: str) -> User | None:
        return next((self.user_of(uid, gid) for n, uid, gid, _ in self.passwd() if n == name), None)

    def user_of(self, uid: int, gid: int | None = None) -> User:
        """The user with this uid (a uid no one has is still a user, nameless, with home /)."""
        entry = next((row for row in self.passwd() if row[1] == uid), None)
        name, home = (entry[0], entry[3]) if entry else (None, "/")
        primary = gid if gid is not None else (entry[2] if entry else 0)
        extra = [g for _, g, members in self.group_rows() if name and name in members and g != primary]
        return User(uid, primary, name, (primary, *extra), home)

    def group_name(self, gid: int) -> str | None:
        return next((name for name, g, _ in self.group_rows() if g == gid), None)

    def group_id(self, name: str) -> int | None:
        return next((g for n, g, _ in self.group_rows() if n == name), None)

    def _text(self, path: str) -> str:
        node = self.nodes.get(path)
        return bytes(node.data).decode(errors="replace") if node is not None and node.data is not None else ""

    # -- the seed --------------------------------------------------------------------------

    def _seed(self) -> None:
        now = self.clock()
        for path, mode in [
            ("/", 0o755),
            ("/bin", 0o755),
            ("/dev", 0o755),
            ("/etc", 0o755),
            ("/home", 0o755),
            ("/root", 0o700),
            ("/tmp", 0o1777),
            ("/usr", 0o755),
            ("/usr/bin", 0o755),
            ("/usr/local", 0o755),
            ("/var", 0o755),
            ("/var/log", 0o755),
        ]:
            self.nodes[path] = Node(None, mode, mtime=now)
        for device in ("null", "zero"):
            self.nodes[f"/dev/{device}"] = Node(None, 0o666, mtime=now, device=device)
        users = list(_PASSWD)
        groups = list(_GROUPS)
        extra = _IMAGE_USERS.get(image_name(self.image))
        if extra:
            users.insert(-1, (extra[0], extra[1], extra[2], extra[3], "/bin/sh"))
            groups.insert(-1, (extra[0], extra[2]))
        files = {
            "/etc/hostname": f"{self.hostname}\n",
            "/etc/hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{self.hostname}\n",
            "/etc/os-release": _OS_RELEASE,
            "/etc/debian_version": "12.8\n",
            "/etc/passwd": "".join(f"{n}:x:{u}:{g}:{n}:{h}:{s}\n" for n, u, g, h, s in users),
            "/etc/group": "".join(f"{n}:x:{g}:\n" for n, g in groups),
        }
        for path, text in files.items():
            self.nodes[path] = Node(bytearray(text.encode()), 0o644, mtime=now)
