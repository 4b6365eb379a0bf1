"""``start``: open the exec fifo for reading, which lets the blocked init execve
the user process; then run poststart hooks.

:func:`start` is the verb as a library call: the CLI's ``main`` and the
daemon (in-process, ``crid.containers.runtime_in_process``) both call it.
"""

from __future__ import annotations

import os
import select
import time

from crid.oci import hooks, state
from crid.oci.context import Context, parse
from crid.oci.errors import CridError, FailedPrecondition

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Spec


def main(ctx: Context, argv: list[str]) -> int:
    start(ctx, parse(argv, {}).one_id("start"))
    return 0


def start(ctx: Context, cid: str) -> None:
    """Start a created container; with ``ctx.deadline``, give up waiting for an
    init that neither exits nor takes the start by then."""
    st = state.load(ctx.root, cid)
    s = state.status(ctx.root, st)
    if s == "stopped":
        raise FailedPrecondition("cannot start a container that has stopped")
    if s != "created":
        raise FailedPrecondition(f"cannot start an already {s} container")
    fifo = os.path.join(ctx.root, cid, state.FIFO)
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FailedPrecondition("cannot start an already running container") from None
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        while not p.poll(50):
            if not state.is_alive(st):
                raise CridError("container init exited before start")
            if ctx.deadline is not None and time.monotonic() > ctx.deadline:
                raise CridError("container init did not take the start in time")
        data = os.read(fd, 16)
    finally:
        os.close(fd)
    if not data:
        raise CridError("cannot start an already running container")
    os.unlink(fifo)
    cfg: Spec = st.get("config") or {}
    if (cfg.get("hooks") or {}).get("poststart"):
        hooks.run(cfg, "poststart", {**state.oci_state(ctx.root, st), "status": "running"},
                  deadline=ctx.deadline, warn=ctx.warn)
