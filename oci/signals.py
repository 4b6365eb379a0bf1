"""Signals for a runtime that waits in the foreground (``run``, ``exec``): hold
the ones a supervisor sends, forward them to the container's process, reap it.

Also the one translation of how a process ended into the exit code runtimes
and CRI report: its own status when it exited, 128+N when signal N killed it
(kubelet shows 137 for SIGKILL). The daemon's streaming server, ExecSync and
its own kills use it too; it lives here because every runtime verb that
reaps already loads this module, so the rule costs the runtime no import.

Built on ``_signal``, the C module under ``signal``: the ``signal`` module wraps
every constant in an ``enum`` (~3 ms of imports on each ``exec``, which a
kubelet probe may run every few seconds); the numbers and calls are the same.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: the C half of `signal`
import os

SIGKILL = _signal.SIGKILL
SIGNAL_BASE = 128
FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT,
             _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH)


def killed_by(signum: int) -> int:
    """The exit code of a process that signal ``signum`` killed."""
    return SIGNAL_BASE + signum


def from_returncode(returncode: int) -> int:
    """From a ``subprocess``/``asyncio`` return code (``-N`` for signal N)."""
    return killed_by(-returncode) if returncode < 0 else returncode


def from_wait_status(status: int) -> int:
    """From a ``waitpid`` status of a process that ended (exited or was killed)."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else killed_by(os.WTERMSIG(status))


def hold() -> None:
    """Block the forwarded signals until we know whom to forward them to, so one
    sent early is delivered late instead of killing us. Children undo it
    (``release``) before they exec."""
    _signal.pthread_sigmask(_signal.SIG_BLOCK, FORWARDED)


def release() -> None:
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, FORWARDED)


def forward(pid: int, resize_from: tuple[int, int] | None = None) -> None:
    """Pass the signals a supervisor sends us on to the process we wait for
    (and deliver any that arrived while they were held). When we relay a
    terminal, ``resize_from`` is (our terminal, the container's): SIGWINCH
    then copies our size to theirs, and the kernel tells the process."""

    def to_pid(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        _signal.signal(s, to_pid)
    if resize_from is not None:
        from crid.oci import console

        console.copy_size(*resize_from)
        _signal.signal(_signal.SIGWINCH, lambda _s, _f: console.copy_size(*resize_from))
    release()


def wait_for(pid: int) -> int:
    """Reap children until ``pid`` exits; its exit code (128+signal when killed)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            return from_wait_status(status)


def by_name(name: str) -> int | None:
    """The number of ``SIGTERM``-style names (``SIGRTMIN+3`` too), else None."""
    base, plus, offset = name.partition("+")
    if base.startswith("SIG") and not base.startswith("SIG_") and hasattr(_signal, base):
        num: int = getattr(_signal, base)
        if not plus:
            return num
        if offset.isdigit() and base == "SIGRTMIN" and num + int(offset) <= _signal.SIGRTMAX:
            return num + int(offset)
    return None
