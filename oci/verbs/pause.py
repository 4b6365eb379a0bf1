"""``pause``: freeze every process of a running container."""

from __future__ import annotations

from crid.oci import cgroups, state
from crid.oci.context import Context, parse
from crid.oci.errors import not_running


def main(ctx: Context, argv: list[str]) -> int:
    st = state.load(ctx.root, parse(argv, {}).one_id("pause"))
    if state.status(ctx.root, st) not in ("running", "created"):
        raise not_running()
    cgroups.freeze(st.get("cgroup") or {}, True)
    return 0
