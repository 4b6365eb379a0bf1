"""cAdvisor-style CRI metrics built from stats messages."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from crid.stats import cri_metrics
from crid.stats.cgroup_detail import Detail, IoDevice
from crid.stats.layers import FsSpace
from crid.stats.netdev import Interface
from crid.stats.processes import Counts

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
            containers=[container], network=api_pb2.NetworkUsage(timestamp=6)))
    eth0 = Interface("eth0", rx_bytes=10, rx_errors=0, tx_bytes=20, tx_errors=0,
                     rx_packets=3, rx_dropped=1, tx_packets=4, tx_dropped=0)
    metrics = cri_metrics.pod_metrics(pod, lambda cid: ("app", "busybox@sha256:x"), [eth0], {})
    assert metrics.pod_sandbox_id == "p1"
    values = {m.name: (list(m.label_values), m.value.value)
              for m in metrics.container_metrics[0].metrics}
    assert values["container_cpu_usage_seconds_total"] == (["c1", "app", "busybox@sha256:x"], 3)
    assert values["container_spec_memory_limit_bytes"][1] == 1000
    assert "container_memory_rss" not in values  # absent in the stats, absent here
    network = {m.name: (list(m.label_values), m.value.value) for m in metrics.metrics}
    assert network["container_network_receive_bytes_total"] == (["p1", "web", "", "eth0"], 10)
    assert network["container_network_transmit_bytes_total"][1] == 20
    assert network["container_network_receive_packets_total"][1] == 3
    assert network["container_network_receive_packets_dropped_total"][1] == 1
    assert network["container_network_transmit_packets_total"][1] == 4


def test_readings_become_metrics_with_their_descriptors_labels() -> None:
    stats = api_pb2.ContainerStats(attributes=api_pb2.ContainerAttributes(id="c1"),
                                   cpu=api_pb2.CpuUsage(timestamp=5))
    readings = cri_metrics.Readings(
        detail=Detail(cpu_user_ns=2_500_000_000, cfs_periods=40, cfs_throttled_periods=7,
                      cfs_throttled_ns=3_000_000_000, cpu_period_us=100000, cpu_shares=2,
                      oom_events=0, threads_max=0,
                      io=(IoDevice(8, 0, read_bytes=4096, write_bytes=8192, reads=1,
                                   writes=2, name="/dev/sda"),)),
        counts=Counts(processes=2, threads=5, file_descriptors=9, sockets=1),
        fs=FsSpace(limit_bytes=10_000, inodes_free=77),
        resources=api_pb2.LinuxContainerResources(cpu_shares=512,
                                                  memory_swap_limit_in_bytes=64),
        started_ns=1_700_000_000_900_000_000, now_ns=1_800_000_000_000_000_000)
    metrics = cri_metrics.container_metrics(stats, "app", "img", readings)
    keys = {d.name: len(d.label_keys) for d in cri_metrics.descriptors()}
    assert all(len(m.label_values) == keys[m.name] for m in metrics)
    values = {(m.name, tuple(m.label_values[3:])): m.value.value for m in metrics}
    assert values[("container_cpu_user_seconds_total", ())] == 2
    assert values[("container_cpu_cfs_throttled_seconds_total", ())] == 3
    assert values[("container_cpu_cfs_periods_total", ())] == 40
    assert values[("container_spec_cpu_shares", ())] == 512  # asked for wins over the cgroup
    assert values[("container_spec_cpu_period", ())] == 100000  # nothing asked: the cgroup's
    assert values[("container_spec_memory_swap_limit_bytes", ())] == 64
    assert values[("container_start_time_seconds", ())] == 1_700_000_000
    assert values[("container_last_seen", ())] == 1_800_000_000
    assert values[("container_threads", ())] == 5
    assert values[("container_sockets", ())] == 1
    assert values[("container_fs_inodes_free", ())] == 77
    assert values[("container_fs_writes_bytes_total", ("/dev/sda",))] == 8192
    assert values[("container_blkio_device_usage_total", ("/dev/sda", "8", "0", "Read"))] == 4096
    assert ("container_cpu_system_seconds_total", ()) not in values  # not read, not reported
