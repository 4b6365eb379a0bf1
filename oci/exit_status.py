"""How a process ended, as the exit code CRI and runtimes report: its own
status when it exited, 128+N when signal N killed it (runc's and the shells'
rule, which kubelet shows as e.g. 137 for SIGKILL).

The one translation for the runtime's reaper (``wait`` statuses), the
streaming server and the fork server (``returncode``, negative for a
signal), and the daemon's own kills. Imports only ``os``: the runtime loads
it on every ``exec``.
"""

from __future__ import annotations

import os

SIGNAL_BASE = 128


def killed_by(signum: int) -> int:
    """The exit code of a process that signal ``signum`` killed."""
    return SIGNAL_BASE + signum


def from_returncode(returncode: int) -> int:
    """From a ``subprocess``/``asyncio`` return code (``-N`` for signal N)."""
    return killed_by(-returncode) if returncode < 0 else returncode


def from_wait_status(status: int) -> int:
    """From a ``waitpid`` status of a process that ended (exited or was killed)."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else killed_by(os.WTERMSIG(status))
