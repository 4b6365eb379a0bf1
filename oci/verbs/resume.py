"""``resume``: thaw a paused container."""

from __future__ import annotations

from crid.oci import cgroups, state
from crid.oci.context import Context, parse
from crid.oci.errors import FailedPrecondition


def main(ctx: Context, argv: list[str]) -> int:
    st = state.load(ctx.root, parse(argv, {}).one_id("resume"))
    if state.status(ctx.root, st) != "paused":
        raise FailedPrecondition("container not paused")
    cgroups.freeze(st.get("cgroup") or {}, False)
    return 0
