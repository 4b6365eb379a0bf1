"""``resume``: thaw a paused container (:func:`resume`, the verb as a library
call, for the CLI and the daemon alike)."""

from __future__ import annotations

from crid.oci import cgroups, state
from crid.oci.context import Context, parse
from crid.oci.errors import FailedPrecondition


def main(ctx: Context, argv: list[str]) -> int:
    resume(ctx, parse(argv, {}).one_id("resume"))
    return 0


def resume(ctx: Context, cid: str) -> None:
    st = state.load(ctx.root, cid)
    if state.status(ctx.root, st) != "paused":
        raise FailedPrecondition("container not paused")
    cgroups.freeze(st.get("cgroup") or {}, False)
