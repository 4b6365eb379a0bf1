"""Benchmark: pods with one container, crid vs containerd: start, stop+remove, memory.

``python -m e2e.bench.pods`` (root; Debian's containerd installed, as ``make
bench`` does). Both runtimes get the pod configs of ``e2e.bench.sandbox``
(own network namespace, PID namespace per container, a cgroup parent, DNS),
the same CNI plugins on their own bridge, and the same busybox image pushed
to a loopback registry and pulled before timing; both run containers with
runc (crid through its ``runc`` handler unless ``--handler`` says otherwise).
One Python CRI client drives them, one call at a time, as kubelet does:

- pod start: RunPodSandbox + CreateContainer (``sleep``) + StartContainer,
  until ContainerStatus says RUNNING;
- stop+remove: StopContainer (timeout 0) + StopPodSandbox + RemoveContainer
  + RemovePodSandbox;
- memory per pod, over ``--memory-pods`` pods running at once, two ways:
  the drop of ``MemAvailable`` divided by the pods (everything, the kernel's
  share included, but other work on the node moves it too), and the growth
  of the summed PSS of the runtime's processes (the daemon, conmons or
  shims: every process whose command line names the daemon's work dir) and
  of every process in the pods' cgroups (containerd's pause containers,
  the ``sleep`` s), divided by the pods; and that PSS plus the growth of
  the kernel's own unreclaimable memory (``SUnreclaim``, ``KernelStack``,
  ``PageTables``, ``Percpu``: namespaces, veths, cgroups, stacks), which
  other work on the node moves much less than ``MemAvailable``.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench import _command as command
from e2e.bench._containerd import containerd_daemon
from e2e.bench.sandbox import WARMUP, bridge_conflist, pod_config
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_daemon

SETTLE_SECONDS = 3.0
PHASES = ("run", "create", "start_container")
KERNEL_FIELDS = ("SUnreclaim", "KernelStack", "PageTables", "Percpu")
RUNNING_TIMEOUT = 30.0
CGROUP = Path("/sys/fs/cgroup")
# Where the pods' cgroups are: the memory tree of a v1 node, the one tree of v2.
CGROUP_MEMORY = CGROUP if (CGROUP / "cgroup.controllers").exists() else CGROUP / "memory"


@dataclass
class Runtime:
    """One runtime under test: its CRI stub, handler and where its pods go."""

    name: str
    stub: api_pb2_grpc.RuntimeServiceStub
    handler: str
    cgroup_root: str
    image: str
    log_root: Path
    workdir: Path


@dataclass
class Figures:
    start_ms: list[float]
    phases_ms: list[tuple[float, float, float]]  # run sandbox, create, start until RUNNING
    stop_ms: list[float]
    container_life_ms: list[float]  # CreateContainer + StartContainer + StopContainer + Remove
    memory_kib_per_pod: float
    pss_kib_per_pod: float
    kernel_kib_per_pod: float


def start_pod(rt: Runtime, phases: list[float] | None = None,
              userns: api_pb2.UserNamespace | None = None) -> tuple[str, str]:
    """Start a pod and its container; ``phases`` gets the time of each step's end;
    ``userns``: the pod's user namespace options (``hostUsers: false``)."""
    phases = [] if phases is None else phases
    config = pod_config(rt.cgroup_root)
    if userns is not None:
        config.linux.security_context.namespace_options.userns_options.CopyFrom(userns)
    config.log_directory = str(rt.log_root / config.metadata.uid)
    pod_id = rt.stub.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=rt.handler)).pod_sandbox_id
    phases.append(time.perf_counter())
    container = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="sleep"),
        image=api_pb2.ImageSpec(image=rt.image), command=["/bin/sleep", "3600"],
        log_path="sleep/0.log",
        linux=api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
            namespace_options=config.linux.security_context.namespace_options)))
    container_id = rt.stub.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container, sandbox_config=config)).container_id
    phases.append(time.perf_counter())
    rt.stub.StartContainer(api_pb2.StartContainerRequest(container_id=container_id))
    deadline = time.monotonic() + RUNNING_TIMEOUT
    while rt.stub.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=container_id)).status.state != api_pb2.CONTAINER_RUNNING:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{rt.name}: container {container_id} did not run")
        time.sleep(0.002)
    phases.append(time.perf_counter())
    return pod_id, container_id


def stop_pod(rt: Runtime, pod_id: str, container_id: str,
             phases: list[float] | None = None) -> None:
    """Stop and remove a pod and its container; ``phases`` gets the time of each call's end."""
    phases = [] if phases is None else phases
    rt.stub.StopContainer(api_pb2.StopContainerRequest(container_id=container_id, timeout=0))
    phases.append(time.perf_counter())
    rt.stub.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    phases.append(time.perf_counter())
    rt.stub.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=container_id))
    phases.append(time.perf_counter())
    rt.stub.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def meminfo_kib(*fields: str) -> float:
    """The sum of ``fields`` of /proc/meminfo: the median of a few samples a moment apart."""
    samples = []
    for _ in range(5):
        values = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text()
                      .splitlines())
        samples.append(sum(int(values[field].split()[0]) for field in fields))
        time.sleep(0.2)
    return statistics.median(samples)


def mem_available_kib() -> float:
    return meminfo_kib("MemAvailable")


def kernel_kib() -> float:
    return meminfo_kib(*KERNEL_FIELDS)


def runtime_pids(workdir: Path) -> set[int]:
    """The runtime's own processes: the daemon and its monitors (conmons) or
    shims, every process whose command line names its work dir."""
    pids = set()
    marker = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
    return pids


def runtime_pss_kib(rt: Runtime) -> int:
    """Summed PSS of the runtime's processes and of everything in its pods' cgroups."""
    return sum(runtime_pss_by_command(rt).values())


def runtime_pss_by_command(rt: Runtime) -> Counter[str]:
    """``runtime_pss_kib``'s KiB by command name (``/proc/PID/comm``)."""
    pids = runtime_pids(rt.workdir)
    pods = CGROUP_MEMORY / rt.cgroup_root.lstrip("/")
    for procs in pods.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(pid) for pid in procs.read_text().split())
    found: Counter[str] = Counter()
    for pid in pids:
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    found[comm] += int(line.split()[1])
    return found


def measure(rt: Runtime, count: int, memory_pods: int) -> Figures:
    starts: list[float] = []
    phases: list[tuple[float, float, float]] = []
    stops: list[float] = []
    lives: list[float] = []
    for index in range(WARMUP + count):
        began = time.perf_counter()
        ends: list[float] = []
        pod_id, container_id = start_pod(rt, ends)
        running = time.perf_counter()
        gone: list[float] = []
        stop_pod(rt, pod_id, container_id, gone)
        done = time.perf_counter()
        if index >= WARMUP:
            starts.append((running - began) * 1000)
            phases.append(((ends[0] - began) * 1000, (ends[1] - ends[0]) * 1000,
                           (ends[2] - ends[1]) * 1000))
            stops.append((done - running) * 1000)
            # The container's own calls, the pod's left out.
            lives.append((ends[2] - ends[0] + gone[0] - running + gone[2] - gone[1]) * 1000)
    time.sleep(SETTLE_SECONDS)
    before, pss_before, kernel_before = mem_available_kib(), runtime_pss_kib(rt), kernel_kib()
    pods = [start_pod(rt) for _ in range(memory_pods)]
    time.sleep(SETTLE_SECONDS)
    after, pss_after, kernel_after = mem_available_kib(), runtime_pss_kib(rt), kernel_kib()
    for pod_id, container_id in pods:
        stop_pod(rt, pod_id, container_id)
    pss = (pss_after - pss_before) / memory_pods
    return Figures(starts, phases, stops, lives, (before - after) / memory_pods, pss,
                   pss + (kernel_after - kernel_before) / memory_pods)


@contextlib.contextmanager
def log_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="crid-bench-logs-") as directory:
        yield Path(directory)


def run(count: int, memory_pods: int, handler: str) -> dict[str, float]:
    with Registry() as registry, log_root() as logs:
        image = push(registry, "bench/busybox", "1", busybox_image()).reference
        with pod_daemon(extra_args=("--log-level", "warning")) as (crid, crid_net):
            crid.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)))
            crid_figures = measure(Runtime("crid", crid.runtime, handler, crid_net.cgroup_parent,
                                           image, logs / "crid", crid.workdir),
                                   count, memory_pods)
        ctrd_net = PodNet()
        try:
            with containerd_daemon(registry, bridge_conflist(ctrd_net)) as ctrd:
                ctrd.images.PullImage(api_pb2.PullImageRequest(
                    image=api_pb2.ImageSpec(image=image)))
                ctrd_figures = measure(Runtime("containerd", ctrd.runtime, "",
                                               ctrd_net.cgroup_parent, image,
                                               logs / "containerd", ctrd.workdir),
                                       count, memory_pods)
        finally:
            ctrd_net.cleanup()
    return report(crid_figures, ctrd_figures, count, memory_pods, handler)


def report(crid: Figures, ctrd: Figures, count: int, memory_pods: int,
           handler: str) -> dict[str, float]:
    figures = {
        "crid_start_ms": statistics.median(crid.start_ms),
        "containerd_start_ms": statistics.median(ctrd.start_ms),
        **{f"{who}_{phase}_ms": statistics.median(p[i] for p in figs.phases_ms)
           for who, figs in (("crid", crid), ("containerd", ctrd))
           for i, phase in enumerate(PHASES)},
        "crid_stop_remove_ms": statistics.median(crid.stop_ms),
        "containerd_stop_remove_ms": statistics.median(ctrd.stop_ms),
        "crid_container_life_ms": statistics.median(crid.container_life_ms),
        "containerd_container_life_ms": statistics.median(ctrd.container_life_ms),
        "crid_mib_per_pod": crid.memory_kib_per_pod / 1024,
        "containerd_mib_per_pod": ctrd.memory_kib_per_pod / 1024,
        "crid_pss_mib_per_pod": crid.pss_kib_per_pod / 1024,
        "containerd_pss_mib_per_pod": ctrd.pss_kib_per_pod / 1024,
        "crid_pss_kernel_mib_per_pod": crid.kernel_kib_per_pod / 1024,
        "containerd_pss_kernel_mib_per_pod": ctrd.kernel_kib_per_pod / 1024,
    }
    figures["start_ratio"] = figures["crid_start_ms"] / figures["containerd_start_ms"]
    figures["stop_remove_ratio"] = (figures["crid_stop_remove_ms"]
                                    / figures["containerd_stop_remove_ms"])
    figures["container_life_ratio"] = (figures["crid_container_life_ms"]
                                       / figures["containerd_container_life_ms"])
    figures["mib_per_pod_ratio"] = (figures["crid_mib_per_pod"]
                                    / figures["containerd_mib_per_pod"])
    figures["pss_mib_per_pod_ratio"] = (figures["crid_pss_mib_per_pod"]
                                        / figures["containerd_pss_mib_per_pod"])
    figures["pss_kernel_mib_per_pod_ratio"] = (figures["crid_pss_kernel_mib_per_pod"]
                                               / figures["containerd_pss_kernel_mib_per_pod"])
    print(f"Pods with one container (crid handler {handler!r}, containerd runc): "
          f"median of {count} pods each (ms); memory over {memory_pods} running pods")
    print(f"{'':28}{'crid':>10}{'containerd':>12}{'ratio':>8}")
    for phase in PHASES:
        figures[f"{phase}_ratio"] = figures[f"crid_{phase}_ms"] / figures[f"containerd_{phase}_ms"]
    for label, key in (("pod start (until RUNNING)", "start_ms"),
                       ("  RunPodSandbox", "run_ms"),
                       ("  CreateContainer", "create_ms"),
                       ("  StartContainer, RUNNING", "start_container_ms"),
                       ("stop+remove", "stop_remove_ms"),
                       ("container create..remove", "container_life_ms"),
                       ("MemAvailable drop/pod, MiB", "mib_per_pod"),
                       ("runtime+pod PSS/pod, MiB", "pss_mib_per_pod"),
                       ("  + kernel unreclaim., MiB", "pss_kernel_mib_per_pod")):
        print(f"{label:28}{figures[f'crid_{key}']:10.1f}{figures[f'containerd_{key}']:12.1f}"
              f"{figures[f'{key}_ratio'.replace('_ms_ratio', '_ratio')]:8.2f}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = command.parser("e2e.bench.pods", __doc__, count=(20, "timed pods per runtime"),
                            memory_pods=(50, "pods running at once for the memory figure"))
    parser.add_argument("--handler", default="runc",
                        help="crid's runtime handler (default runc, the runtime containerd uses)")
    args = parser.parse_args(argv)
    run(args.count, args.memory_pods, args.handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
