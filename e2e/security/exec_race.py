"""Run ``crid-runtime exec`` in this process with the container's init killed
at a chosen point, through the syscall seam (``crid.oci.linux`` hands every
verb the Syscalls object in ``_default``): the race an exec can lose to the
container's exit, forced instead of hoped for. Production code has no hook.

    python -P -m e2e.security.exec_race WHEN ROOT ID ARGS...

WHEN is ``open`` (init dies as exec pins it: the first pidfd_open) or
``join`` (init dies after every namespace was opened and checked, as the
first setns is made). Exits with crid-runtime's code; its stderr is ours.
"""

from __future__ import annotations

import os
import sys
import time

from crid.oci import linux as L
from crid.oci import state
from crid.oci.cli import main


def kill_and_wait(pid: int) -> None:
    """SIGKILL the container's init and wait until it is a zombie or gone."""
    start = state.proc_start_time(pid)
    os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while state.proc_start_time(pid) == start and start is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"exec_race: init {pid} did not die")
        time.sleep(0.005)


class KillInit(L.Syscalls):
    def __init__(self, when: str, init: int) -> None:
        super().__init__()
        self.when, self.init, self.done = when, init, False

    def _maybe(self, point: str) -> None:
        if self.when == point and not self.done:
            self.done = True
            kill_and_wait(self.init)
            sys.stderr.write(f"exec_race: killed init {self.init} at {point}\n")

    def pidfd_open(self, pid: int) -> int:
        self._maybe("open")
        return super().pidfd_open(pid)

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._maybe("join")
        super().setns(fd, nstype)


def run(argv: list[str]) -> int:
    when, root, cid, *args = argv
    init = int(state.load(root, cid)["pid"])
    L._default = KillInit(when, init)
    return main(["--root", root, "exec", cid, *args])


if __name__ == "__main__":
    code = run(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
