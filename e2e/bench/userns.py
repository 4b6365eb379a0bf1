"""Benchmark: pod start in a user namespace of its own vs in the host's, crid.

``python -m e2e.bench.userns`` (root). One private crid (crid-runtime
handler), one busybox image from a loopback registry; the kubelet-shaped
pods of ``e2e.bench.pods`` started (RunPodSandbox + CreateContainer +
StartContainer until RUNNING) alternately with and without
``userns_options`` mode POD (one 65536-id range, as kubelet allocates),
each stopped and removed before the next, so both see the same machine.
A userns pod's rootfs is an overlay on idmapped lower layers and its mounts
are idmapped: nothing is copied or chowned, so the ratio should be ~1
(target <= 1.1).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.bench import _command as command
from e2e.bench.pods import Runtime, start_pod, stop_pod
from e2e.bench.sandbox import WARMUP
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_daemon

MAPPING = [api_pb2.IDMapping(container_id=0, host_id=1 << 20, length=65536)]
USERNS = api_pb2.UserNamespace(mode=api_pb2.POD, uids=MAPPING, gids=MAPPING)


PHASES = ("total", "RunPodSandbox", "CreateContainer", "StartContainer")


def _start_ms(rt: Runtime, userns: api_pb2.UserNamespace | None) -> list[float]:
    """The pod start's total and the time of each of its three calls (ms)."""
    ends: list[float] = []
    began = time.perf_counter()
    pod_id, container_id = start_pod(rt, ends, userns=userns)
    marks = [began, *ends]
    stop_pod(rt, pod_id, container_id)
    return [(ends[-1] - began) * 1000,
            *((b - a) * 1000 for a, b in itertools.pairwise(marks))]


def run(count: int) -> dict[str, dict[str, float]]:
    host: list[list[float]] = []
    userns: list[list[float]] = []
    with Registry() as registry, tempfile.TemporaryDirectory(prefix="crid-bench-logs-") as logs:
        image = push(registry, "bench/busybox", "1", busybox_image()).reference
        with pod_daemon(extra_args=("--log-level", "warning")) as (crid, net):
            crid.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)))
            rt = Runtime("crid", crid.runtime, "crid", net.cgroup_parent, image, Path(logs),
                         crid.workdir)
            for index in range(WARMUP + count):
                order = (None, USERNS) if index % 2 else (USERNS, None)  # alternate who goes first
                for options in order:
                    took = _start_ms(rt, options)
                    if index >= WARMUP:
                        (host if options is None else userns).append(took)
    found = {kind: {phase: statistics.median(t[i] for t in times)
                    for i, phase in enumerate(PHASES)}
             for kind, times in (("host", host), ("userns", userns))}
    found["ratio"] = {phase: found["userns"][phase] / found["host"][phase] for phase in PHASES}
    return found


def main(argv: list[str] | None = None) -> int:
    args = command.parser("e2e.bench.userns", __doc__, count=(20, "pods of each kind")
                          ).parse_args(argv)
    found = run(args.count)
    print(f"pod start, median of {args.count} each (ms)")
    print(f"{'':16} {'host ns':>8} {'userns':>8} {'ratio':>6}")
    for phase in PHASES:
        print(f"{phase:16} {found['host'][phase]:8.1f} {found['userns'][phase]:8.1f} "
              f"{found['ratio'][phase]:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
