"""The last steps before execve, shared by container init and exec: rlimits,
user and groups, capabilities, no_new_privs, environment and program lookup.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # not signal: its enums cost start-up time
import os
import resource
import stat  # already loaded by os: free
import sys

from crid.oci import capabilities
from crid.oci import linux as L
from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Literal

    from crid.oci.runtime_spec import Process


RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_INF = 2**64 - 1
CAPABILITY_SETS: tuple[Literal["bounding", "effective", "inheritable", "permitted",
                              "ambient"], ...] = (
    "bounding", "effective", "inheritable", "permitted", "ambient")


def default_signals() -> None:
    """Hand the program the signal state a fresh process has. Python starts with
    SIGPIPE and SIGXFSZ ignored, and an ignored signal stays ignored across
    execve: without this, ``yes | head`` in a container printed "Broken pipe"
    errors instead of ending quietly, as it does under runc."""
    for signum in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def check_unsupported(proc: Process) -> None:
    """AppArmor is not enabled where crid runs: refuse a profile rather than
    pretend to apply it (an empty profile means none)."""
    if proc.get("apparmorProfile"):
        raise InvalidArgument(
            f"apparmor profile {proc['apparmorProfile']!r} specified but AppArmor is not "
            "enabled on this system")


def set_rlimits(proc: Process) -> None:
    for r in proc.get("rlimits") or []:
        num = RLIMITS.get(r["type"])
        if num is None:
            raise InvalidArgument(f"unknown rlimit type {r['type']!r}")

        def conv(v: int) -> int:
            return resource.RLIM_INFINITY if v >= 2**63 or v < 0 else v

        resource.setrlimit(num, (conv(int(r["soft"])), conv(int(r["hard"]))))


def env_of(proc: Process, home: str = "/") -> dict[str, str]:
    env: dict[str, str] = {}
    for e in proc.get("env") or []:
        k, _, v = e.partition("=")
        env[k] = v
    env.setdefault("HOME", home)
    return env


PASSWD_READ_LIMIT = 4 << 20  # as the daemon's default (crid.image.max_passwd_group_bytes)


def home_of(uid: int) -> str:
    """The user's home from the container's /etc/passwd, else "/" (as runc does).

    The image decides what /etc/passwd is: a FIFO would block this open, and
    with it the container's creation, forever (O_NONBLOCK, and only a regular
    file is read); a sparse file of gigabytes would be read whole (at most
    PASSWD_READ_LIMIT bytes are).
    """
    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return "/"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        chunks: list[bytes] = []
        left = PASSWD_READ_LIMIT
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:
        return "/"
    finally:
        os.close(fd)
    wanted = str(uid)
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[2] == wanted:
            return parts[5] or "/"
    return "/"


def enter_cwd(cwd: str) -> None:
    """chdir(2) to ``process.cwd``, then prove the result is inside the root.

    CVE-2024-21626: a cwd of ``/proc/self/fd/N`` (or a symlink to it) lands
    in whatever directory fd N is, which may be a host directory (a runtime's
    leaked fd, or one a caller passed with ``--preserve-fds``); the process
    would start outside its root with the host's files under ``.``. Then
    getcwd(2) finds no path from our root ("(unreachable)", which libc turns
    into ENOENT), and we refuse before any of the container's code runs, as
    runc does since 1.1.12.
    """
    try:
        os.chdir(cwd)
    except OSError as e:
        raise InvalidArgument(f"process.cwd {cwd!r}: {e.strerror}") from None
    try:
        where = os.getcwd()
    except OSError:
        where = ""
    if not where.startswith("/"):
        raise InvalidArgument(
            f"process.cwd {cwd!r} is outside the container's root: refused (a /proc/self/fd "
            "path to a directory outside the container is a breakout, CVE-2024-21626)")


def lookup(prog: str, env: dict[str, str]) -> str:
    if "/" in prog:
        if not os.path.isfile(prog) or not os.access(prog, os.X_OK):
            raise InvalidArgument(f'exec: "{prog}": no such executable file')
        return prog
    for d in (env.get("PATH") or "").split(":"):
        cand = os.path.join(d or ".", prog)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise InvalidArgument(f'exec: "{prog}": executable file not found in $PATH')


class Privileges:
    """Drop to the process's user and capability sets, runc's order:
    bounding set first (needs CAP_SETPCAP), keep caps across setuid, then set
    effective/permitted/inheritable, then raise ambient."""

    def __init__(self, sc: L.Syscalls, proc: Process, last: int) -> None:
        """``last``: the kernel's last capability (``capabilities.last_cap()``)."""
        self.sc = sc
        self.proc = proc
        caps = proc.get("capabilities")
        self.unknown: list[str] = []
        self.caps: dict[str, int] | None = None
        if caps is not None:
            self.caps = {
                k: capabilities.mask(caps.get(k), last, self.unknown)
                for k in CAPABILITY_SETS
            }
        self.last = last

    @classmethod
    def of(cls, sc: L.Syscalls, proc: Process) -> Privileges:
        """The process's privileges against this kernel's capabilities."""
        return cls(sc, proc, capabilities.last_cap())

    def drop_bounding(self) -> None:
        if self.caps is None:
            return
        for cap in range(self.last + 1):
            if not self.caps["bounding"] & (1 << cap):
                self.sc.prctl(L.PR_CAPBSET_DROP, cap)

    def set_user(self) -> None:
        user = self.proc.get("user") or {}
        uid, gid = int(user.get("uid") or 0), int(user.get("gid") or 0)
        self.sc.prctl(L.PR_SET_KEEPCAPS, 1)
        if _setgroups_allowed():
            os.setgroups([int(g) for g in user.get("additionalGids") or []])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        # The kernel resets dumpable to fs.suid_dumpable when ids change (and
        # with 1 there, the container could reach us again): keep it off.
        self.sc.prctl(L.PR_SET_DUMPABLE, 0)
        self.sc.prctl(L.PR_SET_KEEPCAPS, 0)
        if user.get("umask") is not None:
            os.umask(int(user["umask"]))

    def set_caps(self) -> None:
        if self.caps is None:
            return
        c = self.caps
        self.sc.capset(c["effective"], c["permitted"], c["inheritable"])
        self.sc.prctl(L.PR_SET_DUMPABLE, 0)  # as in set_user: gained caps reset it too
        # The kernel only raises an ambient cap that is permitted and inheritable;
        # runc skips the others silently (its default spec lists ambient caps
        # without inheritable ones), and so do we.
        ambient = c["ambient"] & c["permitted"] & c["inheritable"]
        if ambient:
            for cap in range(self.last + 1):
                if ambient & (1 << cap):
                    self.sc.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, cap)

    def no_new_privs(self) -> None:
        if self.proc.get("noNewPrivileges"):
            self.sc.prctl(L.PR_SET_NO_NEW_PRIVS, 1)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


def warn(msg: str) -> None:
    sys.stderr.write(f"crid-runtime: warning: {msg}\n")
