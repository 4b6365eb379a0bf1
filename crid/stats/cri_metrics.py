"""ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor-style metrics.

kubelet (``PodAndContainerStatsFromCRI``) turns these into its
``/metrics/cadvisor`` series, so the names are cAdvisor's and every metric
carries the label keys its descriptor declares, in that order: ``id``,
``name``, ``image`` (as cri-o), then ``interface`` for network counters and
``device`` (and the block device's numbers and the operation) for I/O.
Values are integers, so ``*_seconds`` metrics count whole seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from cri_api.v1 import api_pb2

from crid.stats.cgroup_detail import Detail
from crid.stats.layers import FsSpace
from crid.stats.netdev import Interface
from crid.stats.processes import Counts

BASE_LABELS = ("id", "name", "image")
NETWORK_LABELS = (*BASE_LABELS, "interface")
DEVICE_LABELS = (*BASE_LABELS, "device")
BLKIO_LABELS = (*DEVICE_LABELS, "major", "minor", "operation")
SECOND = 1_000_000_000
COUNTER, GAUGE = api_pb2.COUNTER, api_pb2.GAUGE


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    help: str
    kind: api_pb2.MetricType.ValueType
    labels: tuple[str, ...] = BASE_LABELS


CONTAINER_SPECS = (
    Spec("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.",
         COUNTER),
    Spec("container_memory_usage_bytes",
         "Current memory usage in bytes, including all memory regardless of when it was "
         "accessed.", GAUGE),
    Spec("container_memory_working_set_bytes", "Current working set in bytes.", GAUGE),
    Spec("container_memory_rss", "Size of RSS in bytes.", GAUGE),
    Spec("container_memory_swap", "Container swap usage in bytes.", GAUGE),
    Spec("container_memory_failures_total",
         "Cumulative count of memory allocation failures (page faults).", COUNTER),
    Spec("container_memory_major_failures_total",
         "Cumulative count of major page faults.", COUNTER),
    Spec("container_spec_memory_limit_bytes", "Memory limit for the container.", GAUGE),
    Spec("container_fs_usage_bytes", "Number of bytes consumed by the container's writable "
         "layer.", GAUGE),
    Spec("container_fs_inodes_total", "Number of inodes used by the container's writable "
         "layer.", GAUGE),
    Spec("container_fs_limit_bytes", "Number of bytes that can be consumed by the container "
         "on the writable layer's filesystem.", GAUGE),
    Spec("container_fs_inodes_free", "Number of available inodes on the writable layer's "
         "filesystem.", GAUGE),
    Spec("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.",
         COUNTER),
    Spec("container_cpu_system_seconds_total",
         "Cumulative system cpu time consumed in seconds.", COUNTER),
    Spec("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.",
         COUNTER),
    Spec("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
         COUNTER),
    Spec("container_cpu_cfs_throttled_seconds_total",
         "Total time duration the container has been throttled.", COUNTER),
    Spec("container_memory_cache", "Number of bytes of page cache memory.", GAUGE),
    Spec("container_memory_mapped_file", "Size of memory mapped files in bytes.", GAUGE),
    Spec("container_memory_failcnt", "Number of memory usage hits limits.", COUNTER),
    Spec("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", GAUGE),
    Spec("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", GAUGE),
    Spec("container_oom_events_total", "Count of out of memory events observed for the "
         "container.", COUNTER),
    Spec("container_processes", "Number of processes running inside the container.", GAUGE),
    Spec("container_threads", "Number of threads running inside the container.", GAUGE),
    Spec("container_threads_max", "Maximum number of threads allowed inside the container, "
         "0 if unlimited.", GAUGE),
    Spec("container_file_descriptors", "Number of open file descriptors for the container.",
         GAUGE),
    Spec("container_sockets", "Number of open sockets for the container.", GAUGE),
    Spec("container_spec_cpu_period", "CPU period of the container.", GAUGE),
    Spec("container_spec_cpu_shares", "CPU share of the container.", GAUGE),
    Spec("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.",
         GAUGE),
    Spec("container_start_time_seconds", "Start time of the container since unix epoch in "
         "seconds.", GAUGE),
    Spec("container_last_seen", "Last time a container was seen by the exporter.", GAUGE),
)
IO_SPECS = (
    Spec("container_blkio_device_usage_total", "Blkio device bytes usage.", COUNTER,
         BLKIO_LABELS),
    Spec("container_fs_reads_bytes_total", "Cumulative count of bytes read.", COUNTER,
         DEVICE_LABELS),
    Spec("container_fs_writes_bytes_total", "Cumulative count of bytes written.", COUNTER,
         DEVICE_LABELS),
    Spec("container_fs_reads_total", "Cumulative count of reads completed.", COUNTER,
         DEVICE_LABELS),
    Spec("container_fs_writes_total", "Cumulative count of writes completed.", COUNTER,
         DEVICE_LABELS),
)
NETWORK_SPECS = (
    Spec("container_network_receive_bytes_total", "Cumulative count of bytes received.",
         COUNTER, NETWORK_LABELS),
    Spec("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.",
         COUNTER, NETWORK_LABELS),
    Spec("container_network_receive_errors_total",
         "Cumulative count of errors encountered while receiving.", COUNTER, NETWORK_LABELS),
    Spec("container_network_transmit_errors_total",
         "Cumulative count of errors encountered while transmitting.", COUNTER, NETWORK_LABELS),
    Spec("container_network_receive_packets_total", "Cumulative count of packets received.",
         COUNTER, NETWORK_LABELS),
    Spec("container_network_transmit_packets_total",
         "Cumulative count of packets transmitted.", COUNTER, NETWORK_LABELS),
    Spec("container_network_receive_packets_dropped_total",
         "Cumulative count of packets dropped while receiving.", COUNTER, NETWORK_LABELS),
    Spec("container_network_transmit_packets_dropped_total",
         "Cumulative count of packets dropped while transmitting.", COUNTER, NETWORK_LABELS),
)
SPECS = {s.name: s for s in (*CONTAINER_SPECS, *IO_SPECS, *NETWORK_SPECS)}


@dataclasses.dataclass(frozen=True)
class Readings:
    """What a running container's metrics read besides its ContainerStats."""
    detail: Detail | None
    counts: Counts | None
    fs: FsSpace | None
    resources: api_pb2.LinuxContainerResources
    started_ns: int
    now_ns: int


def descriptors() -> list[api_pb2.MetricDescriptor]:
    return [api_pb2.MetricDescriptor(name=s.name, help=s.help, label_keys=list(s.labels))
            for s in SPECS.values()]


def _value(message: object, field: str) -> int | None:
    holder = getattr(message, field)
    return int(holder.value) if message.HasField(field) else None  # type: ignore[attr-defined]


def container_metrics(stats: api_pb2.ContainerStats, name: str, image: str,
                      readings: Readings | None = None) -> list[api_pb2.Metric]:
    """The container metrics for one ContainerStats and its other readings (what
    they lack is left out)."""
    labels = [stats.attributes.id, name, image]
    cpu, memory, layer = stats.cpu, stats.memory, stats.writable_layer
    seconds = _value(cpu, "usage_core_nano_seconds")
    limit = _value(memory, "available_bytes")
    working = _value(memory, "working_set_bytes")
    found = {
        "container_cpu_usage_seconds_total": seconds // 1_000_000_000 if seconds is not None
        else None,
        "container_memory_usage_bytes": _value(memory, "usage_bytes"),
        "container_memory_working_set_bytes": working,
        "container_memory_rss": _value(memory, "rss_bytes"),
        "container_memory_swap": _value(stats.swap, "swap_usage_bytes"),
        "container_memory_failures_total": _value(memory, "page_faults"),
        "container_memory_major_failures_total": _value(memory, "major_page_faults"),
        "container_spec_memory_limit_bytes": limit + working
        if limit is not None and working is not None else None,
        "container_fs_usage_bytes": _value(layer, "used_bytes"),
        "container_fs_inodes_total": _value(layer, "inodes_used"),
    }
    at = cpu.timestamp or memory.timestamp or layer.timestamp
    if readings is None:
        return _metrics(found, labels, at)
    found |= _reading_values(readings)
    return _metrics(found, labels, at) + _io_metrics(readings.detail, labels, at)


def _seconds(ns: int | None) -> int | None:
    return ns // SECOND if ns is not None else None


def _reading_values(readings: Readings) -> dict[str, int | None]:
    detail, counts, fs = readings.detail or Detail(), readings.counts, readings.fs
    resources = readings.resources
    return {
        "container_fs_limit_bytes": fs.limit_bytes if fs else None,
        "container_fs_inodes_free": fs.inodes_free if fs else None,
        "container_cpu_user_seconds_total": _seconds(detail.cpu_user_ns),
        "container_cpu_system_seconds_total": _seconds(detail.cpu_system_ns),
        "container_cpu_cfs_periods_total": detail.cfs_periods,
        "container_cpu_cfs_throttled_periods_total": detail.cfs_throttled_periods,
        "container_cpu_cfs_throttled_seconds_total": _seconds(detail.cfs_throttled_ns),
        "container_memory_cache": detail.memory_cache,
        "container_memory_mapped_file": detail.mapped_file,
        "container_memory_failcnt": detail.failcnt,
        "container_memory_max_usage_bytes": detail.max_usage,
        "container_memory_kernel_usage": detail.kernel_usage,
        "container_oom_events_total": detail.oom_events,
        "container_threads_max": detail.threads_max,
        "container_processes": counts.processes if counts else None,
        "container_threads": counts.threads if counts else None,
        "container_file_descriptors": counts.file_descriptors if counts else None,
        "container_sockets": counts.sockets if counts else None,
        # What the container asked for; the cgroup's own value when it asked nothing.
        "container_spec_cpu_period": resources.cpu_period or detail.cpu_period_us,
        "container_spec_cpu_shares": resources.cpu_shares or detail.cpu_shares,
        "container_spec_memory_swap_limit_bytes": resources.memory_swap_limit_in_bytes or None,
        "container_start_time_seconds": _seconds(readings.started_ns or None),
        "container_last_seen": _seconds(readings.now_ns),
    }


def _io_metrics(detail: Detail | None, labels: list[str], at: int) -> list[api_pb2.Metric]:
    found: list[api_pb2.Metric] = []
    for device in detail.io if detail else ():
        on_device = [*labels, device.name]
        numbers = [*on_device, str(device.major), str(device.minor)]
        found += _metrics({
            "container_fs_reads_bytes_total": device.read_bytes,
            "container_fs_writes_bytes_total": device.write_bytes,
            "container_fs_reads_total": device.reads,
            "container_fs_writes_total": device.writes,
        }, on_device, at)
        found += _metrics({"container_blkio_device_usage_total": device.read_bytes},
                          [*numbers, "Read"], at)
        found += _metrics({"container_blkio_device_usage_total": device.write_bytes},
                          [*numbers, "Write"], at)
    return found


def network_metrics(interfaces: list[Interface], pod_id: str, name: str, at: int
                    ) -> list[api_pb2.Metric]:
    found: list[api_pb2.Metric] = []
    for interface in interfaces:
        labels = [pod_id, name, "", interface.name]
        found += _metrics({
            "container_network_receive_bytes_total": interface.rx_bytes,
            "container_network_transmit_bytes_total": interface.tx_bytes,
            "container_network_receive_errors_total": interface.rx_errors,
            "container_network_transmit_errors_total": interface.tx_errors,
            "container_network_receive_packets_total": interface.rx_packets,
            "container_network_transmit_packets_total": interface.tx_packets,
            "container_network_receive_packets_dropped_total": interface.rx_dropped,
            "container_network_transmit_packets_dropped_total": interface.tx_dropped,
        }, labels, at)
    return found


def _metrics(values: dict[str, int | None], labels: list[str], at: int) -> list[api_pb2.Metric]:
    return [api_pb2.Metric(name=name, timestamp=at, metric_type=SPECS[name].kind,
                           label_values=labels, value=api_pb2.UInt64Value(value=value))
            for name, value in values.items() if value is not None]


def pod_metrics(stats: api_pb2.PodSandboxStats, image_of: Callable[[str], tuple[str, str]],
                interfaces: list[Interface], readings: Mapping[str, Readings]
                ) -> api_pb2.PodSandboxMetrics:
    """``image_of(container id) -> (container name, image)``; ``interfaces`` are the
    pod's, ``readings`` by container id."""
    pod = stats.attributes
    return api_pb2.PodSandboxMetrics(
        pod_sandbox_id=pod.id,
        metrics=network_metrics(interfaces, pod.id, pod.metadata.name,
                                stats.linux.network.timestamp),
        container_metrics=[
            api_pb2.ContainerMetrics(
                container_id=c.attributes.id,
                metrics=container_metrics(c, *image_of(c.attributes.id),
                                          readings.get(c.attributes.id)))
            for c in stats.linux.containers])
