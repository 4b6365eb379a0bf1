"""Namespaces: config types to clone flags, joining by path or a running
container's (``exec``), and id maps."""

from __future__ import annotations

import os

from crid.oci import linux as L
from crid.oci import state
from crid.oci.errors import CridError, FailedPrecondition, describe

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import IDMapping, Linux, Namespace


FLAGS = {
    "pid": L.CLONE_NEWPID, "network": L.CLONE_NEWNET, "ipc": L.CLONE_NEWIPC,
    "uts": L.CLONE_NEWUTS, "mount": L.CLONE_NEWNS, "user": L.CLONE_NEWUSER,
    "cgroup": L.CLONE_NEWCGROUP, "time": L.CLONE_NEWTIME,
}
PROC_NAME = {
    "pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
    "user": "user", "cgroup": "cgroup", "time": "time",
}
# user first (it owns the others), mount last among joins so /proc paths still resolve
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"]


def new_flags(nss: list[Namespace], exclude: tuple[str, ...] = ()) -> int:
    f = 0
    for ns in nss:
        if not ns.get("path") and ns["type"] not in exclude:
            f |= FLAGS[ns["type"]]
    return f


def open_paths(nss: list[Namespace]) -> list[tuple[str, int]]:
    """Open every namespace to join, in join order, before joining any."""
    by_type = {ns["type"]: ns["path"] for ns in nss if ns.get("path")}
    out = []
    for t in JOIN_ORDER:
        if t in by_type:
            out.append((t, os.open(by_type[t], os.O_RDONLY | os.O_CLOEXEC)))
    return out


def join(sc: L.Syscalls, fds: list[tuple[str, int]]) -> None:
    for t, fd in fds:
        sc.setns(fd, FLAGS[t])
        os.close(fd)


class Target:
    """The namespaces an ``exec`` joins, all opened from the container's init
    before any is joined: all of them are joined, or the exec fails before a
    process starts (issue 14, hole 2).

    Which ones: every type ``linux.namespaces`` lists. A type it does not list
    is the host's by the runtime-spec, which is where we already are. Each is
    opened as ``ns/<type>`` relative to one fd of ``/proc/<init>``, checked to
    be the recorded init (its start time) after a pidfd pinned it: a lookup
    through that fd names init or fails, never a process that reused the pid.
    A type the config gives the container as its own (no ``path``) that turns
    out to be the namespace we are in is refused: that is the host's, and a
    process started there would have escaped. One the container joined by
    ``path`` may legitimately be ours (the host's, shared); it is skipped, as
    setns into the user namespace one is in fails.

    The join is by those fds, so what is joined is what was checked (a
    ``setns(pidfd, CLONE_NEW*)`` would join whatever init is in by then); it
    is all-or-nothing at the level that matters, since the caller forks the
    process only after every setns and the check that init outlived them.
    """

    def __init__(self, pid: int, proc: str = "/proc") -> None:
        self.pid = pid
        self.proc = proc  # tests lay out a /proc/<pid> of their own
        self.pidfd = -1
        self.proc_dir = -1
        self.fds: list[tuple[str, int]] = []

    @classmethod
    def open(cls, sc: L.Syscalls, pid: int, start: int | None, nss: list[Namespace],
             proc: str = "/proc") -> Target:
        """Init's namespaces, opened and checked; nothing stays open when that fails."""
        target = cls(pid, proc)
        try:
            target._open(sc, start, nss)
        except BaseException:
            target.close()
            raise
        return target

    def _gone(self, why: str) -> FailedPrecondition:
        return FailedPrecondition(f"cannot exec: container not running: its init (pid "
                                  f"{self.pid}) {why}; no process was started")

    def _open(self, sc: L.Syscalls, start: int | None, nss: list[Namespace]) -> None:
        try:
            self.pidfd = sc.pidfd_open(self.pid)
        except OSError as e:
            if e.errno == 3:  # ESRCH
                raise self._gone("has exited") from None
            if e.errno != 38:  # ENOSYS (kernel < 5.3): the /proc fd alone pins init
                raise
        try:
            self.proc_dir = os.open(f"{self.proc}/{self.pid}",
                                    os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._gone("has exited") from None
        if start is None or state.proc_start_time(self.pid, self.proc_dir) != start:
            raise self._gone("has exited (its pid is free or another process's)")
        declared = {ns["type"]: bool(ns.get("path")) for ns in nss}
        for t in JOIN_ORDER:
            if t not in declared:
                continue  # the host's by the runtime-spec: we are in it already
            name = PROC_NAME[t]
            try:
                fd = os.open(f"ns/{name}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.proc_dir)
            except OSError as e:
                raise self._gone(f"has no {t} namespace to join ({describe(e)})") from None
            theirs, ours = os.fstat(fd), os.stat(f"/proc/self/ns/{name}")
            if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
                self.fds.append((t, fd))
                continue
            os.close(fd)
            if not declared[t]:
                raise CridError(
                    f"cannot exec: the container's {t} namespace is the runtime's own "
                    f"({name}:[{ours.st_ino}]), though config.json gives the container a new "
                    "one; refusing to start a process in the host's namespaces")
        # Opened while init lived: a zombie still shows some (user, pid) but not all.
        if state.proc_start_time(self.pid, self.proc_dir) != start:
            raise self._gone("exited while its namespaces were opened")

    def join(self, sc: L.Syscalls) -> None:
        """Join every namespace opened, user first, mount last; then check that
        init outlived the joins (the fds keep a dead container's namespaces)."""
        for t, fd in self.fds:
            sc.setns(fd, FLAGS[t])
        if self.pidfd >= 0:
            dead = sc.pidfd_exited(self.pidfd)
        else:
            dead = state.proc_start_time(self.pid, self.proc_dir) is None
        if dead:
            raise self._gone("exited while exec was joining its namespaces")

    def close(self) -> None:
        for _, fd in self.fds:
            os.close(fd)
        self.fds = []
        for fd in (self.pidfd, self.proc_dir):
            if fd >= 0:
                os.close(fd)
        self.pidfd = self.proc_dir = -1


def write_id_maps(sc: L.Syscalls, pid: int, linux: Linux) -> None:
    """Write ``pid``'s uid and gid maps through the host's procfs, proved one
    (``crid.oci.procfs``): never through a symlink or a mount in the way."""
    def fmt(maps: list[IDMapping]) -> str:
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)

    uid = linux.get("uidMappings") or []
    gid = linux.get("gidMappings") or []
    if not (uid or gid):
        return
    from crid.oci import procfs

    proc = procfs.open_root(sc)
    try:
        if uid:
            procfs.write(sc, proc, f"{pid}/uid_map", fmt(uid))
        if gid:
            procfs.write(sc, proc, f"{pid}/gid_map", fmt(gid))
    finally:
        os.close(proc)
