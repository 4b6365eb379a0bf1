"""``run``: create + start, then wait for the container (we are its subreaper),
forward signals to it, delete it, and exit with its exit code."""

from __future__ import annotations

from crid.oci import linux as L
from crid.oci import signals
from crid.oci.context import Context, parse
from crid.oci.verbs import create, delete, start

FLAGS = {**create.FLAGS, "--detach": "detach:bool", "-d": "detach:bool",
         "--keep": "keep:bool"}


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, FLAGS)
    cid = a.one_id("run")
    if not a.flags.get("detach"):
        L.syscalls().prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        signals.hold()
        a.flags["release_signals"] = True
    st = create.create(ctx, cid, a.flags)
    pid = int(st["pid"])
    try:
        start.start(ctx, cid)
    except BaseException:
        delete.delete(ctx, cid, True, reap=True)
        raise
    if a.flags.get("detach"):
        return 0

    signals.forward(pid)
    code = signals.wait_for(pid)
    if not a.flags.get("keep"):
        delete.delete(ctx, cid, True, reap=True)
    return code
