"""``kill ID [SIGNAL] [--all]``: signal init, or every process in the cgroup
(:func:`kill`, the verb as a library call, for the CLI and the daemon alike)."""

from __future__ import annotations

import os

from crid.oci import cgroups, signals, state
from crid.oci.context import Context, parse
from crid.oci.errors import InvalidArgument, not_running


def parse_signal(raw: str) -> int:
    if raw.isdigit():
        return int(raw)
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    num = signals.by_name(name)
    if num is None:
        raise InvalidArgument(f"unknown signal {raw!r}")
    return num


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, {"--all": "all:bool", "-a": "all:bool"})
    cid = a.one_id("kill")
    sig = parse_signal(a.pos[1] if len(a.pos) > 1 else "SIGTERM")
    kill(ctx, cid, sig, all_processes=bool(a.flags.get("all")))
    return 0


def kill(ctx: Context, cid: str, sig: int, *, all_processes: bool = False) -> None:
    st = state.load(ctx.root, cid)
    if state.status(ctx.root, st) == "stopped":
        raise not_running()
    if all_processes:
        paths = st.get("cgroup") or {}
        frozen = cgroups.is_frozen(paths)
        for pid in cgroups.pids(paths):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if frozen and sig == signals.SIGKILL:
            cgroups.freeze(paths, False)
        return
    try:
        os.kill(int(st["pid"]), sig)
    except ProcessLookupError:
        raise not_running() from None
