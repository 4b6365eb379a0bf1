"""/proc/<pid>/stat (crid.oci.state) read from real processes: one that names itself like a
stat line, a zombie, one that is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from crid.oci import state

# A name that would fool a parser splitting at the first ')': state "Z".
_HOSTILE = "import sys, time; open('/proc/self/comm', 'w').write('a) Z 1'); " \
           "print(flush=True); time.sleep(30)"


def test_a_live_process_with_a_misleading_name_is_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", _HOSTILE], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        child.stdout.readline()
        raw = state.read_proc_stat(child.pid)
        assert raw is not None and b"(a) Z 1)" in raw
        assert state.stat_running(raw)
        started = state.stat_start_time(raw)
        assert started is not None and started > 0
        proc_dir = os.open(f"/proc/{child.pid}", os.O_PATH | os.O_DIRECTORY)
        try:
            through_fd = state.read_proc_stat(child.pid, proc_dir)
            assert through_fd is not None and state.stat_start_time(through_fd) == started
        finally:
            os.close(proc_dir)
    finally:
        child.kill()
        child.wait()


def test_a_zombie_is_not_running_and_a_reaped_one_is_unreadable() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while (raw := state.read_proc_stat(child.pid)) is not None and state.stat_running(raw):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert raw is not None and state.stat_start_time(raw) is None
    child.wait()
    assert state.read_proc_stat(child.pid) is None
