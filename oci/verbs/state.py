"""``state``: print the runtime-spec state JSON of one container.

:func:`state` is the verb as a library call (the CLI prints what it returns;
the daemon calls it in-process)."""

from __future__ import annotations

import json
import sys

from crid.oci import state as states
from crid.oci.context import Context, parse

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import State


def main(ctx: Context, argv: list[str]) -> int:
    cid = parse(argv, {}).one_id("state")
    sys.stdout.write(json.dumps(state(ctx, cid), indent=2) + "\n")
    return 0


def state(ctx: Context, cid: str) -> State:
    return states.oci_state(ctx.root, states.load(ctx.root, cid))
