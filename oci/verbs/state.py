"""``state``: print the runtime-spec state JSON of one container."""

from __future__ import annotations

import json
import sys

from crid.oci import state
from crid.oci.context import Context, parse


def main(ctx: Context, argv: list[str]) -> int:
    cid = parse(argv, {}).one_id("state")
    st = state.load(ctx.root, cid)
    sys.stdout.write(json.dumps(state.oci_state(ctx.root, st), indent=2) + "\n")
    return 0
