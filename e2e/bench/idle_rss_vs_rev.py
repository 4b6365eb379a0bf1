"""The daemon's own memory with idle pods, this checkout against an earlier
revision, same run.

    python -P -m e2e.bench.idle_rss_vs_rev [--against REV] [--rounds N] [--pods N]

What a change costs a node in steady state: the ``crid`` process's resident
set (``VmRSS``) and proportional set (``Pss``, from ``smaps_rollup``) with
``--pods`` pods (default 50) each running one ``sleep`` container, settled
for a few seconds. Both trees are laid out as a wheel installs them; each
round starts one daemon per tree in turn on its own private pod network,
pulls busybox from a loopback registry, starts the pods, reads the figures
and removes everything. The ratio of the medians over the rounds is the
figure; conmon, the runtime and the pods themselves are not counted.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from e2e.bench._revisions import daemons, parser, report_ratio, revision_daemon
from e2e.bench.pods import Runtime, start_pod
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry

SETTLE_SECONDS = 3.0


def memory_kib(pid: int) -> tuple[int, int]:
    """``VmRSS`` and ``Pss`` of ``pid``, in KiB."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmRSS:"))
    pss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text()
               .splitlines() if line.startswith("Pss:"))
    return rss, pss


def one_round(crid: Path, tree: Path, image_ref: str, pods: int, handler: str, logs: Path
              ) -> tuple[int, int]:
    with revision_daemon(crid, tree, image_ref) as (daemon, net):
        assert daemon.process is not None
        runtime = Runtime("crid", daemon.runtime, handler, net.cgroup_parent, image_ref,
                          logs, daemon.workdir)
        for _ in range(pods):
            start_pod(runtime)
        time.sleep(SETTLE_SECONDS)
        return memory_kib(daemon.process.pid)


def main(argv: list[str] | None = None) -> int:
    found = parser("e2e.bench.idle_rss_vs_rev", __doc__ or "", 3, "rounds",
                   pods=(50, "idle pods"))
    found.add_argument("--handler", default="runc", help="runtime handler (default runc)")
    args = found.parse_args(argv)
    figures: dict[str, list[tuple[int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="crid-idle-rss-") as tmp, Registry() as registry:
        work = Path(tmp)
        image_ref = push(registry, "bench/busybox", "1", busybox_image()).reference
        commands = daemons(args.against, work)
        for _ in range(args.rounds):
            for name, (crid, tree) in commands.items():
                logs = work / "logs" / name
                figures.setdefault(name, []).append(
                    one_round(crid, tree, image_ref, args.pods, args.handler, logs))
    print(f"daemon memory with {args.pods} idle pods, median of {args.rounds} rounds (MiB):")
    medians: dict[str, tuple[float, float]] = {}
    for name, rounds in figures.items():
        medians[name] = (statistics.median(r[0] for r in rounds) / 1024,
                         statistics.median(r[1] for r in rounds) / 1024)
        print(f"  RSS {medians[name][0]:7.1f}  PSS {medians[name][1]:7.1f}  {name}")
    print("RSS:", end=" ")
    report_ratio(args.against, medians["checkout"][0], medians[args.against][0])
    print("PSS:", end=" ")
    report_ratio(args.against, medians["checkout"][1], medians[args.against][1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
