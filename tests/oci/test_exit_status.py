"""The exit-code rule (crid.oci.signals), checked on real children: exited with N gives N,
killed by signal N gives 128+N, whichever way the status was read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from crid.oci import signals


def _wait_status(code: str) -> int:
    pid = os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, "-c", code])
    return os.waitpid(pid, 0)[1]


def test_an_exit_is_its_own_code() -> None:
    assert signals.from_wait_status(_wait_status("raise SystemExit(3)")) == 3
    assert signals.from_returncode(subprocess.run(
        [sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode) == 3


def test_a_kill_by_signal_n_is_128_plus_n() -> None:
    kill_self = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert signals.from_wait_status(_wait_status(kill_self)) == 137
    assert signals.from_returncode(subprocess.run(
        [sys.executable, "-c", kill_self], check=False).returncode) == 137
    assert signals.killed_by(signal.SIGTERM) == 143
