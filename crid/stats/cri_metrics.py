"""ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor-style metrics.

kubelet (``PodAndContainerStatsFromCRI``) turns these into its
``/metrics/cadvisor`` series, so the names are cAdvisor's and every metric
carries the label keys its descriptor declares, in that order: ``id``,
``name``, ``image`` (as cri-o) and ``interface`` for network counters.
Values are integers, so ``*_seconds_total`` counts whole seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cri_api.v1 import api_pb2

BASE_LABELS = ("id", "name", "image")
NETWORK_LABELS = (*BASE_LABELS, "interface")
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
)
SPECS = {s.name: s for s in (*CONTAINER_SPECS, *NETWORK_SPECS)}


def descriptors() -> list[api_pb2.MetricDescriptor]:
    return [api_pb2.MetricDescriptor(name=s.name, help=s.help, label_keys=list(s.labels))
            for s in SPECS.values()]


def _value(message: object, field: str) -> int | None:
    holder = getattr(message, field)
    return int(holder.value) if message.HasField(field) else None  # type: ignore[attr-defined]


def container_metrics(stats: api_pb2.ContainerStats, name: str, image: str
                      ) -> list[api_pb2.Metric]:
    """The container metrics for one ContainerStats (fields it lacks are left out)."""
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
    return _metrics(found, labels, cpu.timestamp or memory.timestamp or layer.timestamp)


def network_metrics(network: api_pb2.NetworkUsage, pod_id: str, name: str
                    ) -> list[api_pb2.Metric]:
    found: list[api_pb2.Metric] = []
    for interface in network.interfaces:
        labels = [pod_id, name, "", interface.name]
        found += _metrics({
            "container_network_receive_bytes_total": _value(interface, "rx_bytes"),
            "container_network_transmit_bytes_total": _value(interface, "tx_bytes"),
            "container_network_receive_errors_total": _value(interface, "rx_errors"),
            "container_network_transmit_errors_total": _value(interface, "tx_errors"),
        }, labels, network.timestamp)
    return found


def _metrics(values: dict[str, int | None], labels: list[str], at: int) -> list[api_pb2.Metric]:
    return [api_pb2.Metric(name=name, timestamp=at, metric_type=SPECS[name].kind,
                           label_values=labels, value=api_pb2.UInt64Value(value=value))
            for name, value in values.items() if value is not None]


def pod_metrics(stats: api_pb2.PodSandboxStats, image_of: Callable[[str], tuple[str, str]]
                ) -> api_pb2.PodSandboxMetrics:
    """``image_of(container id) -> (container name, image)``."""
    pod = stats.attributes
    return api_pb2.PodSandboxMetrics(
        pod_sandbox_id=pod.id,
        metrics=network_metrics(stats.linux.network, pod.id, pod.metadata.name),
        container_metrics=[
            api_pb2.ContainerMetrics(container_id=c.attributes.id,
                                     metrics=container_metrics(c, *image_of(c.attributes.id)))
            for c in stats.linux.containers])
