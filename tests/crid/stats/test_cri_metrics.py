"""cAdvisor-style CRI metrics built from stats messages."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from crid.stats import cri_metrics

U = api_pb2.UInt64Value


def test_descriptors_name_their_labels() -> None:
    found = {d.name: list(d.label_keys) for d in cri_metrics.descriptors()}
    assert found["container_cpu_usage_seconds_total"] == ["id", "name", "image"]
    assert found["container_network_transmit_bytes_total"] == ["id", "name", "image",
                                                               "interface"]


def test_pod_metrics_carry_label_values_for_every_key() -> None:
    container = api_pb2.ContainerStats(
        attributes=api_pb2.ContainerAttributes(id="c1"),
        cpu=api_pb2.CpuUsage(timestamp=5, usage_core_nano_seconds=U(value=3_500_000_000)),
        memory=api_pb2.MemoryUsage(timestamp=5, working_set_bytes=U(value=100),
                                   available_bytes=U(value=900)))
    pod = api_pb2.PodSandboxStats(
        attributes=api_pb2.PodSandboxAttributes(
            id="p1", metadata=api_pb2.PodSandboxMetadata(name="web")),
        linux=api_pb2.LinuxPodSandboxStats(
            containers=[container],
            network=api_pb2.NetworkUsage(timestamp=6, interfaces=[
                api_pb2.NetworkInterfaceUsage(name="eth0", rx_bytes=U(value=10),
                                              tx_bytes=U(value=20))])))
    metrics = cri_metrics.pod_metrics(pod, lambda cid: ("app", "busybox@sha256:x"))
    assert metrics.pod_sandbox_id == "p1"
    values = {m.name: (list(m.label_values), m.value.value)
              for m in metrics.container_metrics[0].metrics}
    assert values["container_cpu_usage_seconds_total"] == (["c1", "app", "busybox@sha256:x"], 3)
    assert values["container_spec_memory_limit_bytes"][1] == 1000
    assert "container_memory_rss" not in values  # absent in the stats, absent here
    network = {m.name: (list(m.label_values), m.value.value) for m in metrics.metrics}
    assert network["container_network_receive_bytes_total"] == (["p1", "web", "", "eth0"], 10)
    assert network["container_network_transmit_bytes_total"][1] == 20
