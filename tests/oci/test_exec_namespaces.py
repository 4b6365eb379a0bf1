"""exec's namespace join (``namespaces.Target``): every namespace the config
lists is opened from the container's init before any is joined, and any doubt
(init gone, a namespace missing, a "new" one that is ours) fails before the
first setns. Init's /proc/<pid> is laid out in a tmp dir; setns and the pidfd
calls are recorded through a Syscalls stand-in (no host changes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from crid.oci import linux as L
from crid.oci import namespaces as ns
from crid.oci.runtime_spec import Namespace

from crid.errors import CridError, FailedPrecondition

PID, START = 4242, 777
ALL_OWN: list[Namespace] = [{"type": t} for t in ("mount", "network", "uts", "ipc", "pid",
                                                   "cgroup", "user")]


class Recorder(L.Syscalls):
    def __init__(self, *, pidfd_errno: int = 0, exits_at_setns: int | None = None,
                 on_setns: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.pidfd_errno = pidfd_errno
        self.exits_at_setns = exits_at_setns
        self.on_setns = on_setns
        self.exited = False

    def pidfd_open(self, pid: int) -> int:
        self.calls.append(("pidfd_open", pid))
        if self.pidfd_errno:
            raise OSError(self.pidfd_errno, os.strerror(self.pidfd_errno))
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)

    def pidfd_exited(self, pidfd: int) -> bool:
        self.calls.append(("pidfd_exited",))
        return self.exited

    def setns(self, fd: int, nstype: int = 0) -> None:
        self.calls.append(("setns", nstype))
        if self.exits_at_setns is not None and \
                sum(c[0] == "setns" for c in self.calls) == self.exits_at_setns:
            self.exited = True
            if self.on_setns:
                self.on_setns()


def _stat(state: str = "S", start: int = START) -> str:
    return f"{PID} (sleep) {state} " + " ".join(["0"] * 18) + f" {start} 0 0\n"


def fake_proc(tmp_path: Path, present: tuple[str, ...] = tuple(ns.PROC_NAME.values()),
              ours: tuple[str, ...] = ()) -> Path:
    """A /proc/<PID> with ``stat`` and ``ns/<name>`` for ``present`` (plain
    files: namespaces that are not ours) and ``ours`` (links to our own)."""
    d = tmp_path / "proc" / str(PID)
    (d / "ns").mkdir(parents=True)
    (d / "stat").write_text(_stat())
    for name in present:
        if name in ours:
            (d / "ns" / name).symlink_to(f"/proc/self/ns/{name}")
        else:
            (d / "ns" / name).write_text(name)
    return tmp_path / "proc"


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _target(rec: Recorder, proc: Path, nss: list[Namespace],
            start: int | None = START) -> ns.Target:
    return ns.Target.open(rec, PID, start, nss, proc=str(proc))


def setns_flags(rec: Recorder) -> list[int]:
    return [c[1] for c in rec.calls if c[0] == "setns"]


def test_opens_all_then_joins_user_first_mount_last(tmp_path: Path) -> None:
    rec = Recorder()
    t = _target(rec, fake_proc(tmp_path), ALL_OWN)
    assert setns_flags(rec) == [], "nothing is joined while opening"
    assert [k for k, _ in t.fds] == ["user", "ipc", "uts", "network", "pid", "cgroup", "mount"]
    t.join(rec)
    assert setns_flags(rec) == [L.CLONE_NEWUSER, L.CLONE_NEWIPC, L.CLONE_NEWUTS,
                                L.CLONE_NEWNET, L.CLONE_NEWPID, L.CLONE_NEWCGROUP,
                                L.CLONE_NEWNS]
    assert rec.calls[-1] == ("pidfd_exited",), "init's liveness is checked after the joins"
    t.close()


def test_missing_namespace_fails_before_any_setns(tmp_path: Path) -> None:
    before = _open_fds()
    rec = Recorder()
    proc = fake_proc(tmp_path, present=("user", "ipc", "uts", "pid", "cgroup", "mnt"))
    with pytest.raises(FailedPrecondition, match="no network namespace"):
        _target(rec, proc, ALL_OWN)
    assert setns_flags(rec) == []
    assert _open_fds() == before, "the fds opened so far are closed"


def test_new_namespace_that_is_ours_is_refused(tmp_path: Path) -> None:
    before = _open_fds()
    rec = Recorder()
    proc = fake_proc(tmp_path, ours=("net",))
    with pytest.raises(CridError, match="network namespace is the runtime's own"):
        _target(rec, proc, ALL_OWN)
    assert setns_flags(rec) == []
    assert _open_fds() == before


def test_mount_namespace_that_is_ours_is_refused(tmp_path: Path) -> None:
    """The last one opened: nothing before it was joined either."""
    rec = Recorder()
    with pytest.raises(CridError, match="mount namespace is the runtime's own"):
        _target(rec, fake_proc(tmp_path, ours=("mnt",)), ALL_OWN)
    assert setns_flags(rec) == []


def test_namespace_joined_by_path_may_be_ours(tmp_path: Path) -> None:
    """A pod on the host's network joins it by path: already ours, skipped."""
    rec = Recorder()
    nss: list[Namespace] = [{"type": "network", "path": "/proc/1/ns/net"}, {"type": "mount"},
                            {"type": "pid"}]
    t = _target(rec, fake_proc(tmp_path, ours=("net",)), nss)
    t.join(rec)
    assert setns_flags(rec) == [L.CLONE_NEWPID, L.CLONE_NEWNS]
    t.close()


def test_types_the_config_does_not_list_are_the_hosts(tmp_path: Path) -> None:
    """Absent from linux.namespaces = the runtime's own: not opened, not joined,
    even where init's file is missing."""
    rec = Recorder()
    t = _target(rec, fake_proc(tmp_path, present=("mnt", "net")),
                [{"type": "mount"}, {"type": "network"}])
    t.join(rec)
    assert setns_flags(rec) == [L.CLONE_NEWNET, L.CLONE_NEWNS]
    t.close()


@pytest.mark.parametrize("case", ["no-such-process", "no-proc-dir", "pid-reused", "zombie",
                                  "no-start-recorded"])
def test_init_gone_before_opening(tmp_path: Path, case: str) -> None:
    before = _open_fds()
    proc = fake_proc(tmp_path)
    rec = Recorder(pidfd_errno=3 if case == "no-such-process" else 0)
    start: int | None = START
    if case == "no-proc-dir":
        (proc / str(PID) / "stat").unlink()
        for f in (proc / str(PID) / "ns").iterdir():
            f.unlink()
        (proc / str(PID) / "ns").rmdir()
        (proc / str(PID)).rmdir()
    elif case == "pid-reused":
        (proc / str(PID) / "stat").write_text(_stat(start=START + 1))
    elif case == "zombie":
        (proc / str(PID) / "stat").write_text(_stat(state="Z"))
    elif case == "no-start-recorded":
        start = None
    with pytest.raises(FailedPrecondition, match="container not running"):
        _target(rec, proc, ALL_OWN, start=start)
    assert setns_flags(rec) == []
    assert _open_fds() == before


def test_init_exits_during_the_joins(tmp_path: Path) -> None:
    """The fds keep a dead container's namespaces joinable: the check after
    the joins is what stops the exec (the caller forks nothing)."""
    rec = Recorder(exits_at_setns=1)
    t = _target(rec, fake_proc(tmp_path), ALL_OWN)
    with pytest.raises(FailedPrecondition, match="exited while exec was joining"):
        t.join(rec)
    t.close()


def test_without_pidfd_the_proc_fd_pins_init(tmp_path: Path) -> None:
    """Kernel < 5.3 (ENOSYS): the /proc/<pid> fd and its stat stand in for the pidfd."""
    proc = fake_proc(tmp_path)
    stat = proc / str(PID) / "stat"
    rec = Recorder(pidfd_errno=38, exits_at_setns=3,
                   on_setns=lambda: stat.write_text(_stat(state="Z")))
    t = _target(rec, proc, ALL_OWN)
    assert t.pidfd == -1
    with pytest.raises(FailedPrecondition, match="exited while exec was joining"):
        t.join(rec)
    assert ("pidfd_exited",) not in rec.calls
    t.close()


def test_real_syscalls_pin_a_live_child_and_see_it_exit() -> None:
    """pidfd_open and pidfd_exited against a real process (no namespace changes)."""
    sc = L.Syscalls()
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    try:
        fd = sc.pidfd_open(pid)
        assert not sc.pidfd_exited(fd)
        os.kill(pid, 9)
        for _ in range(500):
            if sc.pidfd_exited(fd):
                break
            time.sleep(0.01)
        assert sc.pidfd_exited(fd), "a zombie counts as exited"
        os.close(fd)
    finally:
        os.waitpid(pid, 0)
    with pytest.raises(OSError) as err:
        sc.pidfd_open(pid)
    assert err.value.errno == 3


def test_init_exits_while_its_namespaces_are_opened(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A zombie still shows some namespaces (user, pid): the fds count only if
    init was alive after the last was opened."""
    before = _open_fds()
    proc = fake_proc(tmp_path)
    stat = proc / str(PID) / "stat"
    real_fstat = os.fstat
    seen = []

    def fstat(fd: int) -> os.stat_result:
        seen.append(fd)
        if len(seen) == 3:
            stat.write_text(_stat(state="Z"))
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", fstat)
    rec = Recorder()
    with pytest.raises(FailedPrecondition, match="exited while its namespaces were opened"):
        _target(rec, proc, ALL_OWN)
    assert setns_flags(rec) == []
    monkeypatch.undo()
    assert _open_fds() == before
