"""is_alive: an infra process's liveness through a pidfd held open on it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from crid.oci.state import proc_start_time

from crid.sandbox.infra import Infra, _pidfds, is_alive


def _wait_zombie(pid: int) -> None:
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_alive_until_it_exits_and_then_its_pidfd_is_closed() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = proc_start_time(child.pid)
        assert started is not None
        infra = Infra(pid=child.pid, start_time=started, parent_pid=os.getpid())
        assert is_alive(infra)
        assert is_alive(infra)
        assert infra in _pidfds._open
        child.kill()
        _wait_zombie(child.pid)  # not reaped yet: a zombie is not alive
        assert not is_alive(infra)
        assert infra not in _pidfds._open
        child.wait()
        assert not is_alive(infra)
    finally:
        child.kill()
        child.wait()


def test_a_recycled_pid_is_not_the_infra_process() -> None:
    me = os.getpid()
    started = proc_start_time(me)
    assert started is not None
    stale = Infra(pid=me, start_time=started + 1, parent_pid=1)
    assert not is_alive(stale)
    assert stale not in _pidfds._open


def test_forget_closes_the_pidfd() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        infra = Infra(pid=child.pid, start_time=proc_start_time(child.pid) or 0, parent_pid=1)
        assert is_alive(infra)
        fd = _pidfds._open[infra]
        _pidfds.forget(infra)
        assert infra not in _pidfds._open
        with pytest.raises(OSError):
            os.fstat(fd)
    finally:
        child.kill()
        child.wait()
