"""Benchmark: ListContainers, ListPodSandbox, ListContainerStats with 100 running
containers, crid vs containerd, and crid on each of its gRPC transports.

``python -P -m e2e.bench.list_calls`` (root; Debian's containerd installed, as
``make bench`` does). Three daemons get the same pods (10 by default) of 10
busybox containers each running ``sleep`` under runc, from the same loopback
registry: crid on its fast path over grpcio's core, crid on grpc.aio
(``grpc_fast_path = "off"``, what crid runs on with an untested grpcio), and
containerd. All run at once and the same Python CRI client asks each list
call of one, then the next, many times over, so all see the same load on the
machine; the medians are compared.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable

from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench import _command as command
from e2e.bench._side_by_side import side_by_side
from e2e.bench.sandbox import pod_config
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_daemon

CALLS: dict[str, Callable[[api_pb2_grpc.RuntimeServiceStub], object]] = {
    # The cost of any call: what a list call costs beyond it is the listing.
    "Version": lambda r: r.Version(api_pb2.VersionRequest()),
    "ListContainers": lambda r: r.ListContainers(api_pb2.ListContainersRequest()),
    "ListPodSandbox": lambda r: r.ListPodSandbox(api_pb2.ListPodSandboxRequest()),
    "ListContainerStats": lambda r: r.ListContainerStats(api_pb2.ListContainerStatsRequest()),
}
WARMUP = 3


def populate(runtime: api_pb2_grpc.RuntimeServiceStub, image: str, cgroup_root: str,
             pods: int, per_pod: int, handler: str = "") -> list[str]:
    """``pods`` pods of ``per_pod`` running containers; the pod ids."""
    made = [populate_pod(runtime, image, cgroup_root, per_pod, handler) for _ in range(pods)]
    running = runtime.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(state=api_pb2.ContainerStateValue(
            state=api_pb2.CONTAINER_RUNNING)))).containers
    assert len(running) == pods * per_pod, f"{len(running)} containers running"
    return made


def populate_pod(runtime: api_pb2_grpc.RuntimeServiceStub, image: str, cgroup_root: str,
                 per_pod: int, handler: str = "") -> str:
    """One pod of ``per_pod`` started ``sleep`` containers; its id."""
    config = pod_config(cgroup_root)
    pod_id: str = runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id
    for index in range(per_pod):
        container = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=f"c{index}-{uuid.uuid4().hex[:6]}"),
            image=api_pb2.ImageSpec(image=image),
            command=["/bin/sh", "-c", "exec sleep 3600"], labels={"app": "bench"})
        cid = runtime.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=container, sandbox_config=config)).container_id
        runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    return pod_id


def samples(runtimes: list[api_pb2_grpc.RuntimeServiceStub], calls: int
            ) -> list[dict[str, list[float]]]:
    """``calls`` times (ms) of each call for each runtime, after a warm-up, their
    calls interleaved so all see the same load on the machine."""
    found: list[dict[str, list[float]]] = [{} for _ in runtimes]
    for name, call in CALLS.items():
        times: list[list[float]] = [[] for _ in runtimes]
        for index in range(WARMUP + calls):
            for runtime, taken in zip(runtimes, times, strict=True):
                started = time.perf_counter()
                call(runtime)
                if index >= WARMUP:
                    taken.append((time.perf_counter() - started) * 1000)
        for per_runtime, taken in zip(found, times, strict=True):
            per_runtime[name] = taken
    return found


def measure(runtimes: list[api_pb2_grpc.RuntimeServiceStub], calls: int
            ) -> list[dict[str, float]]:
    """Median ms per call for each runtime (see ``samples``)."""
    return [{name: statistics.median(taken) for name, taken in per_runtime.items()}
            for per_runtime in samples(runtimes, calls)]


def teardown(runtime: api_pb2_grpc.RuntimeServiceStub, pod_ids: list[str]) -> None:
    for pod_id in pod_ids:
        runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def run(pods: int, per_pod: int, calls: int,
        report: Callable[[str], None] = print) -> dict[str, float]:
    figures: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        registry = stack.enter_context(Registry())
        both = stack.enter_context(side_by_side(registry, "bench/busybox"))
        crid, containerd = both.crid, both.containerd
        aio, aio_net = stack.enter_context(pod_daemon(
            extra_toml='[crid.api]\ngrpc_fast_path = "off"\n',
            extra_args=("--log-level", "warning")))
        aio.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=both.image)))
        # runc under all: the same OCI runtime, so the CRI servers are what differs.
        crid_pods = populate(crid.runtime, both.image, both.crid_net.cgroup_parent, pods,
                             per_pod, handler="runc")
        stack.callback(teardown, crid.runtime, crid_pods)
        aio_pods = populate(aio.runtime, both.image, aio_net.cgroup_parent, pods, per_pod,
                            handler="runc")
        stack.callback(teardown, aio.runtime, aio_pods)
        ctrd_pods = populate(containerd, both.image, both.containerd_net.cgroup_parent, pods,
                             per_pod)
        stack.callback(teardown, containerd, ctrd_pods)
        crid_figures, aio_figures, ctrd_figures = measure(
            [crid.runtime, aio.runtime, containerd], calls)
    report(f"List calls with {pods * per_pod} running containers in {pods} pods: "
           f"median of {calls} calls (ms), crid vs containerd; 'listing' is the call "
           "minus Version (the cost of any call)")
    report(f"{'':20}{'crid':>10}{'containerd':>12}{'ratio':>8}"
           f"{'crid listing':>14}{'ctrd listing':>14}{'ratio':>8}")
    for name in CALLS:
        ratio = crid_figures[name] / ctrd_figures[name]
        crid_own = crid_figures[name] - crid_figures["Version"]
        ctrd_own = ctrd_figures[name] - ctrd_figures["Version"]
        figures.update({f"crid_{name}_ms": crid_figures[name],
                        f"containerd_{name}_ms": ctrd_figures[name], f"{name}_ratio": ratio})
        # Below the noise of Version's own time there is no ratio to give.
        own_ratio = f"{crid_own / ctrd_own:8.2f}" if min(crid_own, ctrd_own) > 0.01 else \
            f"{'n/a':>8}"
        listing = "" if name == "Version" else f"{crid_own:14.2f}{ctrd_own:14.2f}{own_ratio}"
        report(f"{name:20}{crid_figures[name]:10.2f}{ctrd_figures[name]:12.2f}{ratio:8.2f}"
               + listing)
    report("The same calls to crid on grpc.aio (grpc_fast_path off), in the same run (ms):")
    report(f"{'':20}{'fast path':>10}{'grpc.aio':>10}{'containerd':>12}"
           f"{'aio/fast':>10}{'aio/ctrd':>10}")
    for name in CALLS:
        figures.update({f"crid_aio_{name}_ms": aio_figures[name],
                        f"{name}_aio_ratio": aio_figures[name] / ctrd_figures[name]})
        report(f"{name:20}{crid_figures[name]:10.2f}{aio_figures[name]:10.2f}"
               f"{ctrd_figures[name]:12.2f}{aio_figures[name] / crid_figures[name]:10.2f}"
               f"{aio_figures[name] / ctrd_figures[name]:10.2f}")
    return figures


def main(argv: list[str] | None = None) -> int:
    args = command.parser("e2e.bench.list_calls", __doc__, pods=(10, "pods per runtime"),
                          per_pod=(10, "running containers per pod"),
                          calls=(50, "timed calls of each list call")).parse_args(argv)
    run(args.pods, args.per_pod, args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
