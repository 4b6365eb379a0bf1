"""``pause``: freeze every process of a running container (:func:`pause`, the
verb as a library call, for the CLI and the daemon alike)."""

from __future__ import annotations

from crid.oci import cgroups, state
from crid.oci.context import Context, parse
from crid.oci.errors import not_running


def main(ctx: Context, argv: list[str]) -> int:
    pause(ctx, parse(argv, {}).one_id("pause"))
    return 0


def pause(ctx: Context, cid: str) -> None:
    st = state.load(ctx.root, cid)
    if state.status(ctx.root, st) not in ("running", "created"):
        raise not_running()
    cgroups.freeze(st.get("cgroup") or {}, True)
