"""Prometheus metrics: one registry per daemon, served on loopback.

Names follow Prometheus conventions and cri-o's (``crio_operations_total``
becomes ``crid_operations_total``): counters end in ``_total``, durations are
seconds. Domains add their metrics here so the whole set is visible in one
place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.operations = Counter(
            "crid_operations", "CRI calls served, by operation.",
            ["operation"], registry=self.registry,
        )
        self.operation_errors = Counter(
            "crid_operations_errors", "CRI calls that failed, by operation and gRPC code.",
            ["operation", "code"], registry=self.registry,
        )
        self.operation_latency = Histogram(
            "crid_operations_latency_seconds", "Time to serve a CRI call, by operation.",
            ["operation"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.image_pull_bytes = Counter(
            "crid_image_pulls_bytes", "Bytes received from registries by image pulls.",
            registry=self.registry,
        )
        self.image_pull_failures = Counter(
            "crid_image_pulls_failures", "Image pulls that failed.", registry=self.registry,
        )
        self.image_pulls_in_progress = Gauge(
            "crid_image_pulls_in_progress", "Image pulls running now.", registry=self.registry,
        )

        self.containers_oom = Counter(
            "crid_containers_oom", "Containers whose exit was an OOM kill.",
            registry=self.registry,
        )
        self.nri_plugins = Gauge(
            "crid_nri_plugins", "NRI plugins connected and synchronized now.",
            registry=self.registry,
        )
        self.nri_plugin_errors = Counter(
            "crid_nri_plugin_errors",
            "NRI plugin failures, by plugin and kind (setup, error, timeout).",
            ["plugin", "kind"], registry=self.registry,
        )
        self.events_dropped = Counter(
            "crid_container_events_dropped",
            "GetContainerEvents subscribers dropped because they fell behind.",
            registry=self.registry,
        )
        self.streaming_sessions = Counter(
            "crid_streaming_sessions", "Streaming sessions served, by kind.", ["kind"],
            registry=self.registry,
        )
        self.streaming_sessions_active = Gauge(
            "crid_streaming_sessions_active", "Streaming sessions open now, by kind.", ["kind"],
            registry=self.registry,
        )

    def session_started(self, kind: str) -> None:
        self.streaming_sessions.labels(kind).inc()
        self.streaming_sessions_active.labels(kind).inc()

    def session_ended(self, kind: str) -> None:
        self.streaming_sessions_active.labels(kind).dec()

    def count_containers(self, by_state: Callable[[], Mapping[str, int]]) -> None:
        """Report ``crid_containers{state}`` from ``by_state()`` at every scrape."""
        self.registry.register(_ContainersByState(by_state))

    def serve(self, address: str) -> tuple[str, int]:
        """Serve ``/metrics`` on HOST:PORT in a thread; returns the bound address."""
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host, registry=self.registry)
        bound_host, bound_port = server.server_address[:2]
        return str(bound_host), int(bound_port)


class _ContainersByState(Collector):
    """A gauge read at scrape time, so it can never drift from the records."""

    def __init__(self, by_state: Callable[[], Mapping[str, int]]) -> None:
        self._by_state = by_state

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("crid_containers", "Containers by state.", labels=["state"])
        for state, count in sorted(self._by_state().items()):
            family.add_metric([state], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        # Describing without collecting: registering must not read the store.
        yield GaugeMetricFamily("crid_containers", "Containers by state.", labels=["state"])
