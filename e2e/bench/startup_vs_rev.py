"""crid-runtime's start-up, this checkout against an earlier revision, same run.

    python -P -m e2e.bench.startup_vs_rev [--against REV] [--rounds N]

What a change to packaging or imports may cost every container: the runtime
starts for each create, start, state, kill and delete. Both trees are laid
out as a wheel installs them (``crid/`` with ``api/``, ``oci/``, ``image/``,
``network/`` inside), byte-compiled, and started through the ``-IS``
launcher (``crid.oci.launcher``) running ``state`` of a container that does
not exist: interpreter start-up, crid's imports and the state lookup.
Rounds alternate between the two, so both see the same load; the ratio of
the medians is the figure. ``--against`` defaults to ``HEAD``: the
uncommitted change.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e.bench._revisions import parser, report_medians, runtimes


def measure(commands: dict[str, list[str]], rounds: int) -> dict[str, float]:
    taken: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            taken[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(times) for name, times in taken.items()}


def main(argv: list[str] | None = None) -> int:
    args = parser("e2e.bench.startup_vs_rev", __doc__ or "", 300, "runs").parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crid-startup-") as tmp:
        work = Path(tmp)
        state_root = work / "state"
        state_root.mkdir()
        commands = {name: [script, "--root", str(state_root), "state", "no-such-container"]
                    for name, script in runtimes(args.against, work).items()}
        medians = measure(commands, args.rounds)
    report_medians(f"crid-runtime start-up (state of a missing container), {args.rounds} runs",
                   medians, args.against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
