"""Benchmark: a node under load (issue 19), crid vs containerd: a burst of pod
starts, 110 pods' memory and list calls, probes, and a daemon restart.

``python -P -m e2e.bench.node_scale`` (root; Debian's containerd installed, as
``make bench`` does). crid (its ``crid`` handler unless ``--handler`` says
otherwise) and a private Debian containerd (runc) get the pods of
``e2e.bench.pods`` on their own bridge and the same busybox image from a
loopback registry, one runtime after the other, each through one pass:

- *burst*: ``--burst`` pods of one ``sleep`` container started at once, one
  thread per pod (RunPodSandbox, CreateContainer, StartContainer,
  ContainerStatus until RUNNING), as kubelet does after a drain: the wall time
  until all run, p50/p99 per pod; then they are removed.
- *density*: ``--pods`` pods of 3 running containers (``sh -c 'exec sleep'``).
  Memory as ``e2e.bench.pods`` counts it: the summed PSS of the runtime's own
  processes (daemon, conmons or shims: whatever names its work dir on its
  command line) and of every process in its pods' cgroups (containerd's pause
  containers, the ``sleep`` s): the total at full load, and its growth from
  the empty node per pod (alone, and with the growth of the kernel's
  unreclaimable memory). ListContainers, ListPodSandbox, ListContainerStats
  (and Version, the cost of any call) p50/p99 over ``--calls`` calls each.
- *probes*: ExecSync ``/bin/true`` p50/p99, one call at a time (``--calls``);
  then one container of every pod probed every 10 s (kubelet's default),
  spread evenly, for ``--probe-seconds``: p50/p99 of those probes, and the
  CPU the runtime's processes spent (``/proc/PID/stat`` utime+stime and the
  cutime+cstime of the children they reaped, before and after) per wall
  second, as a share of one core and of the node's cores.
- *restart*: the daemon killed with SIGKILL and started again: the time from
  its spawn until ListContainers lists every container, all RUNNING.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.bench import _command as command
from e2e.bench import _node_load as load
from e2e.bench._cni_floor import burst_floor
from e2e.bench._containerd import containerd_daemon
from e2e.bench._cpu_by_command import cpu_by_command
from e2e.bench._cpu_by_command import report as cpu_report
from e2e.bench._node_restart import ContainerdRestart, CridRestart, Restartable, time_to_full_answer
from e2e.bench.list_calls import CALLS, samples
from e2e.bench.pods import (
    SETTLE_SECONDS,
    Runtime,
    kernel_kib,
    log_root,
    runtime_pss_by_command,
    runtime_pss_kib,
    start_pod,
)
from e2e.bench.sandbox import bridge_conflist
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_daemon

PER_POD = 3
PROBE_PERIOD = 10.0  # kubelet's default periodSeconds


@dataclass
class Figures:
    """One runtime's figures: times in ms unless named otherwise."""

    values: dict[str, float] = field(default_factory=dict)
    burst_cpu: dict[str, float] = field(default_factory=dict)  # CPU s by command
    full_pss: Counter[str] = field(default_factory=Counter)  # KiB by command at full size

    def add(self, name: str, samples_ms: list[float]) -> None:
        self.values[f"{name}_p50"], self.values[f"{name}_p99"] = load.p50_p99(samples_ms)


def one_pass(rt: Runtime, restartable: Restartable, burst: int, pods: int, calls: int,
             probe_seconds: float) -> Figures:
    found = Figures()
    # One pod to warm the image's snapshot and the daemon's paths.
    load.stop_pods(rt, [start_pod(rt)])
    with cpu_by_command() as found.burst_cpu:
        wall, per_pod, made = load.burst(rt, burst)
    found.values["burst_s"] = wall
    found.add("burst_pod", per_pod)
    load.stop_pods(rt, made)

    time.sleep(SETTLE_SECONDS)
    pss_before, kernel_before = runtime_pss_kib(rt), kernel_kib()
    found.values["fill_s"] = load.timed(lambda: load.fill(rt, pods, PER_POD))
    time.sleep(SETTLE_SECONDS)
    found.full_pss = runtime_pss_by_command(rt)
    pss_after, kernel_after = sum(found.full_pss.values()), kernel_kib()
    found.values["pss_total_mib"] = pss_after / 1024
    found.values["pss_mib_per_pod"] = (pss_after - pss_before) / pods / 1024
    found.values["pss_kernel_mib_per_pod"] = (pss_after - pss_before + kernel_after
                                              - kernel_before) / pods / 1024
    for name, taken in samples([rt.stub], calls)[0].items():
        found.add(name, taken)

    targets = load.probe_targets(rt.stub)
    found.add("exec", load.exec_one_at_a_time(rt.stub, targets, calls))
    probes, cpu = load.probed(rt, targets, PROBE_PERIOD, probe_seconds)
    found.add("probe", probes)
    found.values["probe_cpu_core_pct"] = cpu * 100
    found.values["probe_cpu_node_pct"] = cpu * 100 / (os.cpu_count() or 1)

    found.values["restart_s"], rt.stub = time_to_full_answer(restartable, pods * PER_POD)
    found.values["empty_s"] = load.timed(lambda: load.empty(rt))
    return found


@contextlib.contextmanager
def crid_side(image: str, logs: Path, handler: str) -> Iterator[tuple[Runtime, Restartable]]:
    with pod_daemon(extra_args=("--log-level", "warning")) as (crid, crid_net):
        crid.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)))
        yield (Runtime("crid", crid.runtime, handler, crid_net.cgroup_parent, image,
                       logs / "crid", crid.workdir), CridRestart(crid))


@contextlib.contextmanager
def containerd_side(registry: Registry, image: str, logs: Path
                    ) -> Iterator[tuple[Runtime, Restartable]]:
    net = PodNet()
    try:
        with containerd_daemon(registry, bridge_conflist(net), pull=(image,)) as ctrd:
            yield (Runtime("containerd", ctrd.runtime, "", net.cgroup_parent, image,
                           logs / "containerd", ctrd.workdir), ContainerdRestart(ctrd))
    finally:
        net.cleanup()


ROWS = (
    ("burst: all RUNNING, s", "burst_s"),
    ("burst: per pod p50", "burst_pod_p50"),
    ("burst: per pod p99", "burst_pod_p99"),
    ("node PSS total, MiB", "pss_total_mib"),
    ("PSS growth per pod, MiB", "pss_mib_per_pod"),
    ("  + kernel unreclaim., MiB", "pss_kernel_mib_per_pod"),
    *((f"{name} p{q}", f"{name}_p{q}") for name in CALLS for q in (50, 99)),
    ("ExecSync true p50", "exec_p50"),
    ("ExecSync true p99", "exec_p99"),
    ("probes: ExecSync p50", "probe_p50"),
    ("probes: ExecSync p99", "probe_p99"),
    ("probes: CPU, % of a core", "probe_cpu_core_pct"),
    ("restart: full answer, s", "restart_s"),
    ("(setup: fill the node, s)", "fill_s"),
    ("(teardown: empty it, s)", "empty_s"),
)


def report(crid: Figures, ctrd: Figures, handler: str, burst: int, pods: int, calls: int,
           probe_seconds: float, cni_floor: float) -> dict[str, float]:
    cores = os.cpu_count() or 1
    print(f"Node scale on {cores} cores, crid (handler {handler!r}) vs containerd (runc): "
          f"burst of {burst} pods; {pods} pods x {PER_POD} containers for memory, "
          f"{calls} calls of each list call and ExecSync, probes every "
          f"{PROBE_PERIOD:.0f} s per pod for {probe_seconds:.0f} s; times in ms unless named")
    print(f"{'':30}{'crid':>10}{'containerd':>12}{'ratio':>8}")
    figures: dict[str, float] = {"cores": cores}
    for label, key in ROWS:
        mine, theirs = crid.values[key], ctrd.values[key]
        ratio = mine / theirs if theirs else float("nan")
        figures.update({f"crid_{key}": mine, f"containerd_{key}": theirs, f"{key}_ratio": ratio})
        print(f"{label:30}{mine:10.2f}{theirs:12.2f}{ratio:8.2f}")
    print(f"probes' CPU as a share of the node ({cores} cores): "
          f"crid {crid.values['probe_cpu_node_pct']:.2f} %, "
          f"containerd {ctrd.values['probe_cpu_node_pct']:.2f} %")
    # What the burst's wall time is bound by on this many cores.
    figures["cni_floor_s"] = cni_floor
    above = {name: found.values["burst_s"] - cni_floor
             for name, found in (("crid", crid), ("containerd", ctrd))}
    print(f"burst's floor: the CNI plugins alone for {burst} pods at once: {cni_floor:.2f} s "
          f"= {cni_floor / ctrd.values['burst_s']:.2f} of containerd's burst; above it, "
          f"crid {above['crid']:.2f} s, containerd {above['containerd']:.2f} s "
          f"(ratio {above['crid'] / above['containerd']:.2f})")
    for name, found in (("crid", crid), ("containerd", ctrd)):
        cpu_report(f"burst's CPU on the node, {name}", found.burst_cpu, found.values["burst_s"])
    # What a pod's memory is made of: each command's PSS over the pods.
    for name, found in (("crid", crid), ("containerd", ctrd)):
        print(f"PSS at {pods} pods by command, {name} (KiB per pod, processes' PSS only):")
        for comm, kib in found.full_pss.most_common(8):
            print(f"  {comm:20}{kib / pods:8.0f}")
    return figures


def run(handler: str, burst: int, pods: int, calls: int, probe_seconds: float
        ) -> dict[str, float]:
    cni_floor = burst_floor(burst)
    with Registry() as registry, log_root() as logs:
        image = push(registry, "bench/busybox", "1", busybox_image()).reference
        # One runtime at a time: the other's pods would share the two cores.
        with crid_side(image, logs, handler) as (rt, restartable):
            crid = one_pass(rt, restartable, burst, pods, calls, probe_seconds)
        with containerd_side(registry, image, logs) as (rt, restartable):
            ctrd = one_pass(rt, restartable, burst, pods, calls, probe_seconds)
    return report(crid, ctrd, handler, burst, pods, calls, probe_seconds, cni_floor)


def main(argv: list[str] | None = None) -> int:
    parser = command.parser(
        "e2e.bench.node_scale", __doc__, burst=(30, "pods started at once"),
        pods=(110, f"pods of {PER_POD} containers on the full node (kubelet's maximum)"),
        calls=(50, "timed calls of each list call and of ExecSync one at a time"),
        probe_seconds=(30, "seconds of probing every pod every 10 s"))
    parser.add_argument("--handler", default="crid",
                        help="crid's runtime handler (default crid; containerd runs runc)")
    args = parser.parse_args(argv)
    run(args.handler, args.burst, args.pods, args.calls, args.probe_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
