"""ListPodSandboxMetrics of a real container: the cAdvisor series carry readings
of its cgroup, its processes and its spec, under the labels their descriptors name."""

from __future__ import annotations

import time

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import status
from e2e.stats.helpers import eventually, run

Values = dict[tuple[str, tuple[str, ...]], int]


def pod_metrics(env: Env, pod_id: str) -> api_pb2.PodSandboxMetrics:
    found = env.daemon.runtime.ListPodSandboxMetrics(
        api_pb2.ListPodSandboxMetricsRequest()).pod_metrics
    mine: api_pb2.PodSandboxMetrics = next(m for m in found if m.pod_sandbox_id == pod_id)
    return mine


def values(metrics: list[api_pb2.Metric]) -> Values:
    """By (name, labels after id/name/image)."""
    return {(m.name, tuple(m.label_values[3:])): m.value.value for m in metrics}


def test_a_throttled_container_reports_what_it_does(env: Env, pod: Pod) -> None:
    # A busy loop at a fifth of a core is throttled every period; sleep is a second process.
    cid = run(env, pod, "sleep 600 & while :; do :; done",
              linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
                  cpu_period=100000, cpu_quota=20000, cpu_shares=512)))

    def throttled() -> tuple[api_pb2.PodSandboxMetrics, Values] | None:
        metrics = pod_metrics(env, pod.id)
        mine = next(c for c in metrics.container_metrics if c.container_id == cid)
        found = values(list(mine.metrics))
        return (metrics, found) if found.get(("container_cpu_cfs_throttled_periods_total", ())) \
            else None

    metrics, found = eventually(throttled, what="CFS throttling reported")
    now = time.time()
    assert found[("container_cpu_cfs_periods_total", ())] >= \
        found[("container_cpu_cfs_throttled_periods_total", ())] > 0
    assert found[("container_processes", ())] == 2
    assert found[("container_threads", ())] >= 2
    assert found[("container_file_descriptors", ())] >= 3  # stdio of each, at least
    assert (found[("container_spec_cpu_period", ())],
            found[("container_spec_cpu_shares", ())]) == (100000, 512)
    started = status(env.daemon, cid).started_at
    assert found[("container_start_time_seconds", ())] == started // 1_000_000_000
    assert now - 10 <= found[("container_last_seen", ())] <= now + 1
    assert found[("container_fs_limit_bytes", ())] > 0
    assert found[("container_fs_inodes_free", ())] > 0
    assert found[("container_oom_events_total", ())] == 0
    assert found[("container_memory_max_usage_bytes", ())] > 0

    descriptors = {d.name: len(d.label_keys) for d in env.daemon.runtime.ListMetricDescriptors(
        api_pb2.ListMetricDescriptorsRequest()).descriptors}
    every = list(metrics.metrics) + [m for c in metrics.container_metrics for m in c.metrics]
    assert all(len(m.label_values) == descriptors[m.name] for m in every)
    network = values(list(metrics.metrics))
    assert ("container_network_transmit_packets_total", ("eth0",)) in network
    assert ("container_network_receive_packets_dropped_total", ("eth0",)) in network


def test_a_listening_container_counts_its_socket(env: Env, pod: Pod) -> None:
    cid = run(env, pod, "exec nc -l -p 9000")

    def listening() -> Values | None:
        mine = next(c for c in pod_metrics(env, pod.id).container_metrics
                    if c.container_id == cid)
        found = values(list(mine.metrics))
        return found if found.get(("container_sockets", ())) else None

    found = eventually(listening, what="the listening socket counted")
    assert found[("container_sockets", ())] == 1
    assert found[("container_processes", ())] == found[("container_threads", ())] == 1
