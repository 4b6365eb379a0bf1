"""Building the CRI stats messages from cgroups, the layer cache and the netns.

``Collector`` holds what the stats calls share: the cgroup reader for this
node, CPU rate tracking, the writable-layer cache and the node's memory. It
reads a few small files per container; the only slow things (walking layers)
happen in the layer cache's background task. The node's cgroup layout and
memory are read by ``start`` (or on first use), never by the constructor.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs
from crid.containers.context import Containers
from crid.containers.records import CREATED, RUNNING, Container
from crid.oci.spec.resources import cgroups_path
from crid.sandbox.context import Sandboxes
from crid.sandbox.records import READY, Sandbox
from crid.stats import cgroup_detail, cgroups, cri_metrics, layers, netdev, processes
from crid.stats.cpu import CpuRates
from crid.stats.layers import LayerCache

log = logs.get("crid.stats")
U64 = api_pb2.UInt64Value


def _u64(value: int | None) -> api_pb2.UInt64Value | None:
    return U64(value=value) if value is not None else None


class Collector:
    def __init__(self, containers: Containers, sandboxes: Sandboxes,
                 reader: cgroups.Reader | None = None, layer_interval: float = 10.0,
                 detail: cgroup_detail.DetailReader | None = None,
                 memory_total: int | None = None) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.clock = containers.clock
        self._given = (reader, detail, memory_total)
        self.rates = CpuRates()
        self.layers = LayerCache(self._layer_dirs, self.clock.now_ns, layer_interval)
        self._refresher: asyncio.Task[None] | None = None

    @functools.cached_property
    def reader(self) -> cgroups.Reader:
        return self._given[0] or cgroups.detect()

    @functools.cached_property
    def detail(self) -> cgroup_detail.DetailReader:
        return self._given[1] or cgroup_detail.detect()

    @functools.cached_property
    def memory_total(self) -> int:
        given = self._given[2]
        return given if given is not None else cgroups.memory_total()

    def start(self) -> None:
        """Read the node's cgroup layout and memory, and start the background
        layer refresh (once, on the running loop)."""
        if self._refresher is None:
            _ = self.reader, self.detail, self.memory_total
            self._refresher = asyncio.get_running_loop().create_task(
                self.layers.run(), name="writable-layer-usage")
            self.containers.listeners.append(self._container_changed)

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)

    def _container_changed(self, container: Container) -> None:
        # A new container's layer is measured at once (it holds what the image's
        # entrypoint wrote before start, often nothing) rather than reading as unknown.
        if container.state == CREATED and self.layers.get(container.id) is None:
            asyncio.get_running_loop().run_in_executor(
                None, self.layers.measure_one, container.id, Path(container.layer_dir) / "upper")

    def _layer_dirs(self) -> Iterable[tuple[str, Path]]:
        return [(c.id, Path(c.layer_dir) / "upper") for c in self.containers.records.all()]

    # --- cgroups ---------------------------------------------------------------

    @staticmethod
    def container_cgroup(container: Container, pod_cgroup: str) -> str:
        return cgroups_path(pod_cgroup, container.id)

    def _cpu(self, key: str, usage: cgroups.Usage, now: int) -> api_pb2.CpuUsage:
        if usage.cpu_ns is None:
            return api_pb2.CpuUsage(timestamp=now)
        return api_pb2.CpuUsage(
            timestamp=now, usage_core_nano_seconds=U64(value=usage.cpu_ns),
            usage_nano_cores=_u64(self.rates.rate(key, now, usage.cpu_ns)))

    def _memory(self, usage: cgroups.Usage, now: int) -> api_pb2.MemoryUsage:
        limit = usage.memory_limit if usage.memory_limit is not None else self.memory_total
        available = None
        if usage.working_set is not None:
            available = max(limit - usage.working_set, 0)
        return api_pb2.MemoryUsage(
            timestamp=now, working_set_bytes=_u64(usage.working_set),
            available_bytes=_u64(available), usage_bytes=_u64(usage.memory_usage),
            rss_bytes=_u64(usage.rss), page_faults=_u64(usage.page_faults),
            major_page_faults=_u64(usage.major_page_faults))

    def _swap(self, usage: cgroups.Usage, now: int) -> api_pb2.SwapUsage:
        available = None
        if usage.swap_limit is not None and usage.swap_usage is not None:
            available = max(usage.swap_limit - usage.swap_usage, 0)
        return api_pb2.SwapUsage(timestamp=now, swap_usage_bytes=_u64(usage.swap_usage),
                                 swap_available_bytes=_u64(available))

    # --- containers --------------------------------------------------------------

    def container_stats(self, container: Container, pod_cgroup: str) -> api_pb2.ContainerStats:
        """Blocking (reads cgroup files)."""
        now = self.clock.now_ns()
        stats = api_pb2.ContainerStats(attributes=api_pb2.ContainerAttributes(
            id=container.id, metadata=container.metadata,
            labels=container.labels, annotations=container.annotations))
        layer = self.layers.get(container.id)
        stats.writable_layer.CopyFrom(api_pb2.FilesystemUsage(
            timestamp=layer.at_ns if layer else now,
            fs_id=api_pb2.FilesystemIdentifier(mountpoint=str(Path(container.layer_dir))),
            used_bytes=U64(value=layer.used_bytes if layer else 0),
            inodes_used=U64(value=layer.inodes if layer else 0)))
        if container.state != RUNNING:
            return stats
        usage = self.reader.read(self.container_cgroup(container, pod_cgroup))
        if usage is None:
            return stats
        stats.cpu.CopyFrom(self._cpu(container.id, usage, now))
        stats.memory.CopyFrom(self._memory(usage, now))
        stats.swap.CopyFrom(self._swap(usage, now))
        return stats

    def pod_cgroups(self) -> dict[str, str]:
        return {s.id: s.cgroup_parent for s in self.sandboxes.records.all()}

    # --- pods ----------------------------------------------------------------------

    def pod_stats(self, sandbox: Sandbox, containers: Iterable[Container]
                  ) -> api_pb2.PodSandboxStats:
        """Blocking (reads cgroup files and joins the pod's netns)."""
        return self._pod_stats(sandbox, containers, self.pod_interfaces(sandbox))

    def _pod_stats(self, sandbox: Sandbox, containers: Iterable[Container],
                   interfaces: list[netdev.Interface]) -> api_pb2.PodSandboxStats:
        now = self.clock.now_ns()
        linux = api_pb2.LinuxPodSandboxStats(containers=[
            self.container_stats(c, sandbox.cgroup_parent) for c in containers
            if c.state == RUNNING])
        usage = self.reader.read(sandbox.cgroup_parent) if sandbox.state == READY else None
        if usage is not None:
            linux.cpu.CopyFrom(self._cpu("pod:" + sandbox.id, usage, now))
            linux.memory.CopyFrom(self._memory(usage, now))
            if usage.pids is not None:
                linux.process.CopyFrom(api_pb2.ProcessUsage(
                    timestamp=now, process_count=U64(value=usage.pids)))
        if interfaces:
            used = [_interface(i) for i in interfaces]
            default = next((u for u in used if u.name == "eth0"), used[0])
            linux.network.CopyFrom(api_pb2.NetworkUsage(
                timestamp=now, default_interface=default, interfaces=used))
        return api_pb2.PodSandboxStats(
            attributes=api_pb2.PodSandboxAttributes(
                id=sandbox.id, metadata=sandbox.metadata, labels=sandbox.labels,
                annotations=sandbox.annotations),
            linux=linux)

    def pod_metrics(self, sandbox: Sandbox, containers: list[Container],
                    image_of: Callable[[str], tuple[str, str]]) -> api_pb2.PodSandboxMetrics:
        """Blocking: the pod's stats plus the readings only the metrics carry."""
        interfaces = self.pod_interfaces(sandbox)
        stats = self._pod_stats(sandbox, containers, interfaces)
        readings = {c.id: self.readings(c, sandbox.cgroup_parent)
                    for c in containers if c.state == RUNNING}
        return cri_metrics.pod_metrics(stats, image_of, interfaces, readings)

    def readings(self, container: Container, pod_cgroup: str) -> cri_metrics.Readings:
        """Blocking: the container's finer cgroup files, its processes' /proc entries
        and a statfs of its writable layer."""
        detail = self.detail.read(self.container_cgroup(container, pod_cgroup))
        return cri_metrics.Readings(
            detail=detail,
            counts=processes.count(detail.pids) if detail is not None else None,
            fs=layers.space(Path(container.layer_dir)),
            resources=container.resources, started_ns=container.started_ns,
            now_ns=self.clock.now_ns())

    @staticmethod
    def pod_interfaces(sandbox: Sandbox) -> list[netdev.Interface]:
        """Blocking. A host-network pod has no netns of its own: nothing to report."""
        if sandbox.state != READY or not sandbox.netns:
            return []
        try:
            return netdev.pod_interfaces(sandbox.netns)
        except OSError as exc:  # the pod is being torn down under us
            log.debug("pod network counters unreadable", pod=sandbox.id, error=str(exc))
            return []

    def forget_gone(self) -> None:
        """Drop CPU samples of containers and pods that no longer exist."""
        keys = {c.id for c in self.containers.records.all()}
        keys |= {"pod:" + s.id for s in self.sandboxes.records.all()}
        self.rates.forget_except(keys)


def _interface(found: netdev.Interface) -> api_pb2.NetworkInterfaceUsage:
    return api_pb2.NetworkInterfaceUsage(
        name=found.name, rx_bytes=U64(value=found.rx_bytes),
        rx_errors=U64(value=found.rx_errors), tx_bytes=U64(value=found.tx_bytes),
        tx_errors=U64(value=found.tx_errors))
