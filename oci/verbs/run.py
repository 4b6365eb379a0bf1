"""``run``: create + start, then wait for the container (we are its subreaper),
forward signals to it, delete it, and exit with its exit code."""

from __future__ import annotations

import os
import signal

from crid.oci import linux as L
from crid.oci.context import Context, parse
from crid.oci.verbs import create, delete, start

FLAGS = {**create.FLAGS, "--detach": "detach:bool", "-d": "detach:bool",
         "--keep": "keep:bool"}


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, FLAGS)
    cid = a.one_id("run")
    if not a.flags.get("detach"):
        L.syscalls().prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        hold_signals()
        a.flags["release_signals"] = True
    st = create.create(ctx, cid, a.flags)
    pid = int(st["pid"])
    try:
        start.start(ctx, cid)
    except BaseException:
        delete.delete(ctx, cid, True)
        raise
    if a.flags.get("detach"):
        return 0

    forward_signals(pid)
    code = wait_for(pid)
    if not a.flags.get("keep"):
        delete.delete(ctx, cid, True)
    return code


FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


def hold_signals() -> None:
    """Block the forwarded signals until we know whom to forward them to, so one
    sent early is delivered late instead of killing us. Children undo it
    (``release_signals``) before they exec."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)


def release_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def forward_signals(pid: int, resize_from: tuple[int, int] | None = None) -> None:
    """Pass the signals a supervisor sends us on to the process we wait for
    (and deliver any that arrived while they were held). When we relay a
    terminal, ``resize_from`` is (our terminal, the container's): SIGWINCH
    then copies our size to theirs, and the kernel tells the process."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        signal.signal(s, forward)
    if resize_from is not None:
        from crid.oci import console

        console.copy_size(*resize_from)
        signal.signal(signal.SIGWINCH, lambda _s, _f: console.copy_size(*resize_from))
    release_signals()


def wait_for(pid: int) -> int:
    """Reap children until ``pid`` exits; its exit code (128+signal when killed)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
                128 + os.WTERMSIG(status)
