"""``crid-runtime exec`` of ``/bin/true`` into one running container, this
checkout against an earlier revision, same run.

    python -P -m e2e.bench.exec_vs_rev [--against REV] [--rounds N]

What a change to exec's path (its namespace join, its imports) costs every
ExecSync and probe. Both trees are laid out as a wheel installs them and
started through the ``-IS`` launcher, as in ``startup_vs_rev``; the
container is made once (busybox bundle, ``sleep``), by the checkout's
runtime, and both exec into it with the same ``--root`` (the state format is
shared). Rounds alternate, so both see the same load; the ratio of the
medians is the figure. ``--against`` defaults to ``HEAD``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from e2e.bench._revisions import parser, report_medians, runtimes
from e2e.bench.startup_vs_rev import measure
from e2e.fixtures.bundle import Bundle, _remove_cgroups


def main(argv: list[str] | None = None) -> int:
    args = parser("e2e.bench.exec_vs_rev", __doc__ or "", 100, "execs").parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crid-exec-bench-") as tmp:
        work = Path(tmp)
        scripts = runtimes(args.against, work)
        root = str(work / "state")
        name = f"crid-bench-exec-{work.name[-8:]}"
        bundle = Bundle(work / "bundle", name).write(["sleep", "3600"])
        cid = "bench-exec"
        checkout = scripts["checkout"]
        try:
            with open(work / "init.out", "w") as out:
                subprocess.run([checkout, "--root", root, "create", "--bundle",
                                str(bundle.path), cid], check=True, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=out, timeout=30)
            subprocess.run([checkout, "--root", root, "start", cid], check=True, timeout=30)
            commands = {n: [s, "--root", root, "exec", cid, "true"] for n, s in scripts.items()}
            for command in commands.values():  # each works, before anything is timed
                subprocess.run(command, check=True, timeout=30)
            medians = measure(commands, args.rounds)
        finally:
            subprocess.run([checkout, "--root", root, "delete", "--force", cid],
                           capture_output=True, timeout=30)
            _remove_cgroups(name)
    report_medians(f"crid-runtime exec true, {args.rounds} runs", medians, args.against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
