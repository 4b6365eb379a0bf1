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
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from e2e.bench._revisions import parser, report_ratio, runtimes
from e2e.bench.runtime import PR_SET_CHILD_SUBREAPER, STEPS, lifecycle
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
        times: dict[str, list[dict[str, float]]] = {name: [] for name in binaries}
        for name, binary in binaries.items():  # warm caches once each
            lifecycle(binary, str(work / f"root-{name[:8]}"), bundle.path, work)
        for _ in range(args.rounds):
            for name, binary in binaries.items():
                times[name].append(lifecycle(binary, str(work / f"root-{name[:8]}"),
                                             bundle.path, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"create+start+wait+delete of /bin/true, median of {args.rounds} (ms):")
    print(f"  {'':10s} {'total':>7s} " + " ".join(f"{s:>7s}" for s in STEPS))
    total = {n: statistics.median(sum(r.values()) for r in v) * 1000 for n, v in times.items()}
    for name, lives in times.items():
        steps = " ".join(f"{statistics.median(r[s] for r in lives) * 1000:7.1f}" for s in STEPS)
        print(f"  {name[:10]:10s} {total[name]:7.1f} {steps}")
    report_ratio(args.against, total["checkout"], total[args.against])
    return 0


if __name__ == "__main__":
    sys.exit(main())
