"""crid-runtime's create + start + wait + delete of ``/bin/true``, this checkout
against an earlier revision, same run.

    python -P -m e2e.bench.lifecycle_vs_rev [--against REV] [--rounds N]

What a change to the runtime costs every container (``e2e.bench.runtime``
measures the same life against runc). Both trees are laid out as a wheel
installs them and started through the ``-IS`` launcher, as in
``startup_vs_rev``; both run the same bundle, each with its own ``--root``.
Rounds alternate, so both see the same load; the ratio of the medians is the
figure. ``--against`` defaults to ``HEAD``.
"""

from __future__ import annotations

import ctypes
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from e2e.bench._revisions import parser, report_ratio, runtimes
from e2e.bench.runtime import PR_SET_CHILD_SUBREAPER, interleaved_lives, report_lives
from e2e.fixtures.bundle import Bundle


def main(argv: list[str] | None = None) -> int:
    args = parser("e2e.bench.lifecycle_vs_rev", __doc__ or "", 40, "lives").parse_args(argv)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    work = Path(tempfile.mkdtemp(prefix="crid-lifecycle-"))
    try:
        binaries = runtimes(args.against, work)
        bundle = Bundle(work / "bundle", f"crid-bench-{uuid.uuid4().hex[:8]}")
        bundle.config["linux"]["cgroupsPath"] = ""
        bundle.write(["/bin/true"])
        times = interleaved_lives(binaries, bundle.path, work, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = report_lives(times, args.rounds)
    report_ratio(args.against, total["checkout"], total[args.against])
    return 0


if __name__ == "__main__":
    sys.exit(main())
