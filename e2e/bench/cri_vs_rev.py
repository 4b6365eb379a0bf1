"""The daemon's CRI calls end to end, this checkout against an earlier
revision, same run.

    python -P -m e2e.bench.cri_vs_rev [--against REV] [--rounds N] [--calls N] [--burst N]

What a change to the daemon (its wiring, its records, the spec it writes)
costs each call kubelet makes. Both trees are laid out as a wheel installs
them, as in ``idle_rss_vs_rev``; one daemon per tree runs through the whole
bench, each with its own root, private pod network and cgroup parent,
busybox pulled from a loopback registry, and its ``crid`` handler (the
default, the one used here) running its own tree's ``crid-runtime``. Each
round, on each daemon in turn (each first in every other round, after one
round that warms up and is not counted), one client thread calls as kubelet
does, one call at a time:

- RunPodSandbox; CreateContainer of ``sleep``; StartContainer, until
  ContainerStatus says RUNNING (``e2e.bench.pods.start_pod``);
- ExecSync ``true``, ContainerStatus, ListContainers, ListPodSandbox
  (which find this one pod and container): ``--calls`` of each;
- StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox;
- then ``--burst`` pods, each with its ``sleep`` container, started at once
  from as many threads (timed until the last is RUNNING), then stopped and
  removed at once.

Each step's figure is its median over the rounds (of each round's median
for the repeated calls), per tree; then the ratio of the two, and the median
of each round's own ratio, checkout/against. ``--against`` defaults to
``HEAD``: the uncommitted change; ``--against HEAD`` on a clean tree is the
noise floor.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.bench._revisions import daemons, parser, report_steps, revision_daemon, runtime_script
from e2e.bench.pods import Runtime, start_pod, stop_pod
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry

HANDLER = "crid"
POD_STEPS = ("RunPodSandbox", "CreateContainer", "StartContainer, RUNNING")
REPEATED = ("ExecSync true", "ContainerStatus", "ListContainers", "ListPodSandbox")
LIFE = "one pod's life, all the above"

Samples = dict[str, list[float]]  # a step's times (ms), one per call


def timed(samples: Samples, step: str, call: Callable[[], object]) -> None:
    started = time.perf_counter()
    call()
    samples.setdefault(step, []).append((time.perf_counter() - started) * 1000)


def pod_life(rt: Runtime, calls: int, samples: Samples) -> None:
    """One pod and its container through every step, one call at a time."""
    began = time.perf_counter()
    ends: list[float] = []
    pod_id, container_id = start_pod(rt, ends)
    for step, start, end in zip(POD_STEPS, [began, *ends[:-1]], ends, strict=True):
        samples.setdefault(step, []).append((end - start) * 1000)
    requests: dict[str, Callable[[], object]] = {
        "ExecSync true": lambda: rt.stub.ExecSync(api_pb2.ExecSyncRequest(
            container_id=container_id, cmd=["true"], timeout=10)),
        "ContainerStatus": lambda: rt.stub.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=container_id)),
        "ListContainers": lambda: rt.stub.ListContainers(api_pb2.ListContainersRequest()),
        "ListPodSandbox": lambda: rt.stub.ListPodSandbox(api_pb2.ListPodSandboxRequest()),
    }
    for step in REPEATED:
        for _ in range(calls):
            timed(samples, step, requests[step])
    timed(samples, "StopContainer", lambda: rt.stub.StopContainer(
        api_pb2.StopContainerRequest(container_id=container_id, timeout=0)))
    timed(samples, "RemoveContainer", lambda: rt.stub.RemoveContainer(
        api_pb2.RemoveContainerRequest(container_id=container_id)))
    timed(samples, "StopPodSandbox", lambda: rt.stub.StopPodSandbox(
        api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id)))
    timed(samples, "RemovePodSandbox", lambda: rt.stub.RemovePodSandbox(
        api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id)))
    samples.setdefault(LIFE, []).append((time.perf_counter() - began) * 1000)


def burst(rt: Runtime, count: int, samples: Samples) -> None:
    """``count`` pods started at once, then stopped and removed at once."""
    with ThreadPoolExecutor(count) as pool:
        started = time.perf_counter()
        pods = list(pool.map(lambda _: start_pod(rt), range(count)))
        running = time.perf_counter()
        list(pool.map(lambda pod: stop_pod(rt, *pod), pods))
        done = time.perf_counter()
    samples.setdefault(f"burst: {count} pods started", []).append((running - started) * 1000)
    samples.setdefault(f"burst: {count} pods stopped, removed", []).append(
        (done - running) * 1000)


def main(argv: list[str] | None = None) -> int:
    args = parser("e2e.bench.cri_vs_rev", __doc__ or "", 40, "rounds",
                  calls=(10, "calls of each repeated call per round"),
                  burst=(10, "pods started at once per round")).parse_args(argv)
    found: dict[str, Samples] = {}  # per tree: each step's figure, one per round
    with tempfile.TemporaryDirectory(prefix="crid-cri-bench-") as tmp, Registry() as registry:
        work = Path(tmp)
        image = push(registry, "bench/busybox", "1", busybox_image()).reference
        runtimes: list[Runtime] = []
        with contextlib.ExitStack() as stack:
            for index, (name, (crid, tree)) in enumerate(daemons(args.against, work).items()):
                # The builtin crid handler would run this venv's crid-runtime: the checkout's.
                runtime = runtime_script(tree, work / f"runtime-{index}")
                daemon, net = stack.enter_context(revision_daemon(
                    crid, tree, image,
                    f'[crid.runtime.handlers.{HANDLER}]\npath = "{runtime}"\n'))
                runtimes.append(Runtime(name, daemon.runtime, HANDLER, net.cgroup_parent, image,
                                        work / "logs" / name, daemon.workdir))
            for index in range(args.rounds + 1):  # the first round warms up
                # Each goes first in every other round: no order favours either.
                for rt in runtimes if index % 2 else runtimes[::-1]:
                    samples: Samples = {}
                    pod_life(rt, args.calls, samples)
                    burst(rt, args.burst, samples)
                    if index:
                        for step, taken in samples.items():
                            found.setdefault(rt.name, {}).setdefault(step, []).append(
                                statistics.median(taken))
    report_steps(f"CRI calls to each daemon ({HANDLER} handler), {args.rounds} rounds "
                 f"({args.calls} of each repeated call per round, their median)", found,
                 args.against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
