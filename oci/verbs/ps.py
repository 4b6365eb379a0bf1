"""``ps ID [--format table|json] [-- ps args]``: the container's processes.

:func:`pids` is the verb as a library call (``--format json`` prints it; the
daemon calls it in-process); the table is the CLI's alone (it runs ``ps``)."""

from __future__ import annotations

import json
import subprocess
import sys

from crid.oci import cgroups, state
from crid.oci.context import Context, parse
from crid.oci.errors import InvalidArgument


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, {"--format": "format:str", "-f": "format:str"}, stop_after=1)
    found = pids(ctx, a.one_id("ps"))
    fmt = a.flags.get("format") or "table"
    if fmt == "json":
        sys.stdout.write(json.dumps(found) + "\n")
        return 0
    if fmt != "table":
        raise InvalidArgument(f"invalid format option: {fmt}")
    out = subprocess.run(["ps", *(a.pos[1:] or ["-ef"])], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    header = out[0].split()
    col = header.index("PID")
    sys.stdout.write(out[0] + "\n")
    for line in out[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in found:
            sys.stdout.write(line + "\n")
    return 0


def pids(ctx: Context, cid: str) -> list[int]:
    """The pids in the container's cgroup."""
    st = state.load(ctx.root, cid)
    return cgroups.pids(st.get("cgroup") or {})
