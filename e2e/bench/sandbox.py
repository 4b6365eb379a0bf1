"""Benchmark: RunPodSandbox and StopPodSandbox+RemovePodSandbox, crid vs containerd.

``python -m e2e.bench.sandbox`` (root; Debian's containerd installed, as
``make bench`` does). Both runtimes get kubelet-shaped pod configs (own
network namespace, PID per container, a cgroup parent), the same CNI plugins
(/usr/lib/cni: bridge + host-local + portmap, each on its own bridge and
subnet) and are driven by the same Python CRI client, one call at a time.
containerd starts its pause container for every pod; crid pins namespaces.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable

from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench import _command as command
from e2e.bench._containerd import private_containerd
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_daemon

WARMUP = 3


def pod_config(cgroup_root: str) -> api_pb2.PodSandboxConfig:
    uid = uuid.uuid4().hex
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=f"bench-{uid[:8]}", uid=uid,
                                            namespace="bench"),
        hostname=f"bench-{uid[:8]}",
        dns_config=api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["bench.svc"],
                                     options=["ndots:5"]),
        labels={"app": "bench"},
    )
    options = config.linux.security_context.namespace_options
    options.network, options.pid, options.ipc = api_pb2.POD, api_pb2.CONTAINER, api_pb2.POD
    config.linux.cgroup_parent = f"{cgroup_root}/pod{uid}"
    return config


def measure(runtime: api_pb2_grpc.RuntimeServiceStub, cgroup_root: str, count: int
            ) -> tuple[list[float], list[float]]:
    runs: list[float] = []
    stops: list[float] = []
    for index in range(WARMUP + count):
        config = pod_config(cgroup_root)
        started = time.perf_counter()
        pod = runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
        ran = time.perf_counter()
        runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        done = time.perf_counter()
        if index >= WARMUP:
            runs.append((ran - started) * 1000)
            stops.append((done - ran) * 1000)
    return runs, stops


def bridge_conflist(net: PodNet) -> dict[str, object]:
    return {"cniVersion": "1.0.0", "name": net.name, "plugins": [
        {"type": "bridge", "bridge": net.bridge, "isGateway": True, "ipMasq": True,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                  "ranges": [[{"subnet": net.subnet}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]}


def run(count: int, report: Callable[[str], None] = print) -> dict[str, float]:
    with pod_daemon(extra_args=("--log-level", "warning")) as (crid, crid_net):
        crid_runs, crid_stops = measure(crid.runtime, crid_net.cgroup_parent, count)
    ctrd_net = PodNet()
    try:
        with Registry() as registry, private_containerd(registry, bridge_conflist(ctrd_net)) \
                as containerd:
            ctrd_runs, ctrd_stops = measure(containerd, ctrd_net.cgroup_parent, count)
    finally:
        ctrd_net.cleanup()
    figures = {
        "crid_run_ms": statistics.median(crid_runs),
        "containerd_run_ms": statistics.median(ctrd_runs),
        "crid_stop_remove_ms": statistics.median(crid_stops),
        "containerd_stop_remove_ms": statistics.median(ctrd_stops),
    }
    figures["run_ratio"] = figures["crid_run_ms"] / figures["containerd_run_ms"]
    figures["stop_remove_ratio"] = (figures["crid_stop_remove_ms"]
                                    / figures["containerd_stop_remove_ms"])
    report(f"Pod sandboxes: median of {count} pods each (ms), crid vs containerd")
    report(f"{'':22}{'crid':>10}{'containerd':>12}{'ratio':>8}")
    report(f"{'RunPodSandbox':22}{figures['crid_run_ms']:10.1f}"
           f"{figures['containerd_run_ms']:12.1f}{figures['run_ratio']:8.2f}")
    report(f"{'Stop+RemovePodSandbox':22}{figures['crid_stop_remove_ms']:10.1f}"
           f"{figures['containerd_stop_remove_ms']:12.1f}{figures['stop_remove_ratio']:8.2f}")
    return figures


def main(argv: list[str] | None = None) -> int:
    run(command.parser("e2e.bench.sandbox", __doc__, count=(30, "pods per runtime"))
        .parse_args(argv).count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
