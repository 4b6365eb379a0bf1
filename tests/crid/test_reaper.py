"""Reaping adopted processes: the subreaper call, the sweep's rule, real reaps."""

from __future__ import annotations

import os
import time

from crid.oci import linux

from crid import reaper


class Recorder(linux.Syscalls):
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        self.calls.append((option, arg2))
        return 0


def test_crid_becomes_a_child_subreaper() -> None:
    sc = Recorder()
    reaper.become_subreaper(sc)
    assert sc.calls == [(linux.PR_SET_CHILD_SUBREAPER, 1)]


def test_a_zombie_is_reaped_only_once_it_outlived_a_whole_sweep() -> None:
    zombies: set[int] = set()
    reaped: list[int] = []

    def reap(pid: int) -> bool:
        reaped.append(pid)
        return True
    sweeper = reaper.Reaper(zombies=lambda: set(zombies), reap=reap)
    zombies |= {10, 11}
    assert sweeper.sweep() == []  # just exited: maybe its own waiter is on its way
    zombies.discard(11)  # its waiter (asyncio's watcher) took it
    zombies.add(12)
    assert sweeper.sweep() == [10]
    zombies.discard(10)
    assert sweeper.sweep() == [12]
    assert reaped == [10, 12]


def test_a_reap_that_finds_nothing_is_tried_again() -> None:
    zombies = {7}
    answers = [False, True]
    sweeper = reaper.Reaper(zombies=lambda: set(zombies), reap=lambda pid: answers.pop(0))
    sweeper.sweep()
    assert sweeper.sweep() == []
    assert sweeper.sweep() == [7]


def _exited_child() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 5
    while pid not in reaper.zombie_children():
        assert time.monotonic() < deadline, "the child never showed as a zombie"
        time.sleep(0.01)
    return pid


def test_real_zombie_children_are_found_and_reaped_by_pid_and_by_pidfd() -> None:
    pid = _exited_child()
    assert reaper.reap_pid(pid)
    assert pid not in reaper.zombie_children()
    assert not reaper.reap_pid(pid)  # gone: not an error

    pid = _exited_child()
    pidfd = os.pidfd_open(pid)
    try:
        assert reaper.reap_pidfd(pidfd)
        assert not reaper.reap_pidfd(pidfd)
    finally:
        os.close(pidfd)
    assert pid not in reaper.zombie_children()


def test_reaping_a_process_that_is_not_a_child_is_no_error() -> None:
    pidfd = os.pidfd_open(1)
    try:
        assert not reaper.reap_pidfd(pidfd)
    finally:
        os.close(pidfd)
    assert not reaper.reap_pid(1)
