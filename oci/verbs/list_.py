"""``list [--format table|json] [--quiet]``: every container under --root."""

from __future__ import annotations

import json
import os
import sys

from crid.oci import state
from crid.oci.context import Context, parse
from crid.oci.errors import NotFound

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import State


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, {"--format": "format:str", "-f": "format:str", "--quiet": "quiet:bool",
                     "-q": "quiet:bool"})
    rows: list[State] = []
    for cid in sorted(os.listdir(ctx.root)) if os.path.isdir(ctx.root) else []:
        try:
            rows.append(state.oci_state(ctx.root, state.load(ctx.root, cid)))
        except NotFound:
            continue
    if a.flags.get("quiet"):
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif a.flags.get("format") == "json":
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        sys.stdout.write("ID          PID         STATUS      BUNDLE      CREATED     OWNER\n")
        for r in rows:
            sys.stdout.write(f"{r['id']}  {r['pid']}  {r['status']}  {r['bundle']}  "
                             f"{r['created']}  root\n")
    return 0
