"""The stats call family: container and pod stats, and the CRI metrics.

Every call reads records once, then does its cgroup and netns reads in one
worker thread so the event loop keeps serving while a full node is measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from cri_api.v1 import api_pb2
from google.protobuf.message import Message

from crid.containers.context import Containers
from crid.containers.records import Container
from crid.errors import NotFound
from crid.sandbox.context import Sandboxes
from crid.sandbox.records import Sandbox
from crid.stats import cri_metrics
from crid.stats.collect import Collector
from crid.stream_calls import batches


def _selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class Stats:
    def __init__(self, containers: Containers, sandboxes: Sandboxes,
                 collector: Collector) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.collector = collector  # started by the root

    # --- containers ----------------------------------------------------------------

    async def ContainerStats(self, request: api_pb2.ContainerStatsRequest
                             ) -> api_pb2.ContainerStatsResponse:
        container = self.containers.require(request.container_id)
        pod = self.sandboxes.records.get(container.pod_id)
        if pod is None:
            raise NotFound(f"pod sandbox {container.pod_id} of container {container.id} is gone")
        stats = await asyncio.to_thread(self.collector.container_stats, container,
                                        pod.cgroup_parent)
        return api_pb2.ContainerStatsResponse(stats=stats)

    async def ListContainerStats(self, request: api_pb2.ListContainerStatsRequest
                                 ) -> api_pb2.ListContainerStatsResponse:
        return api_pb2.ListContainerStatsResponse(
            stats=await self.container_stats(request.filter))

    async def container_stats(self, wanted: api_pb2.ContainerStatsFilter
                              ) -> list[api_pb2.ContainerStats]:
        chosen = self._containers(wanted)
        pods = self.collector.pod_cgroups()

        def measure() -> list[api_pb2.ContainerStats]:
            return [self.collector.container_stats(c, pods[c.pod_id])
                    for c in chosen if c.pod_id in pods]

        found = await asyncio.to_thread(measure)
        self.collector.forget_gone()
        return found

    def _containers(self, wanted: api_pb2.ContainerStatsFilter) -> list[Container]:
        found = []
        for container in self.containers.records.all():
            if wanted.id and not container.id.startswith(wanted.id):
                continue
            if wanted.pod_sandbox_id and not container.pod_id.startswith(wanted.pod_sandbox_id):
                continue
            if not _selected(container.labels, wanted.label_selector):
                continue
            found.append(self.containers.current(container))
        return found

    # --- pods ------------------------------------------------------------------------

    async def PodSandboxStats(self, request: api_pb2.PodSandboxStatsRequest
                              ) -> api_pb2.PodSandboxStatsResponse:
        sandbox = self.sandboxes.require(request.pod_sandbox_id)
        stats = await self.pod_stats([sandbox])
        return api_pb2.PodSandboxStatsResponse(stats=stats[0])

    async def ListPodSandboxStats(self, request: api_pb2.ListPodSandboxStatsRequest
                                  ) -> api_pb2.ListPodSandboxStatsResponse:
        return api_pb2.ListPodSandboxStatsResponse(
            stats=await self.pod_stats(self._pods(request.filter)))

    def _pods(self, wanted: api_pb2.PodSandboxStatsFilter) -> list[Sandbox]:
        found = (self.sandboxes.records.by_prefix(wanted.id) if wanted.id
                 else self.sandboxes.records.all())
        return [s for s in found if _selected(s.labels, wanted.label_selector)]

    def _containers_by_pod(self) -> dict[str, list[Container]]:
        by_pod: dict[str, list[Container]] = {}
        for container in self.containers.records.all():
            by_pod.setdefault(container.pod_id, []).append(self.containers.current(container))
        return by_pod

    async def pod_stats(self, pods: Iterable[Sandbox]) -> list[api_pb2.PodSandboxStats]:
        by_pod = self._containers_by_pod()
        # Each pod joins its own netns on its own thread; measure them side by side.
        stats = await asyncio.gather(*(
            asyncio.to_thread(self.collector.pod_stats, pod, by_pod.get(pod.id, []))
            for pod in pods))
        self.collector.forget_gone()
        return list(stats)

    # --- CRI metrics -----------------------------------------------------------------

    async def ListMetricDescriptors(self, request: api_pb2.ListMetricDescriptorsRequest
                                    ) -> api_pb2.ListMetricDescriptorsResponse:
        return api_pb2.ListMetricDescriptorsResponse(descriptors=cri_metrics.descriptors())

    async def ListPodSandboxMetrics(self, request: api_pb2.ListPodSandboxMetricsRequest
                                    ) -> api_pb2.ListPodSandboxMetricsResponse:
        return api_pb2.ListPodSandboxMetricsResponse(pod_metrics=await self.pod_metrics())

    async def pod_metrics(self) -> list[api_pb2.PodSandboxMetrics]:
        names = {c.id: (c.name, c.image_ref) for c in self.containers.records.all()}
        by_pod = self._containers_by_pod()
        found = await asyncio.gather(*(
            asyncio.to_thread(self.collector.pod_metrics, pod, by_pod.get(pod.id, []),
                              lambda cid: names.get(cid, ("", "")))
            for pod in self.sandboxes.records.all()))
        self.collector.forget_gone()
        return list(found)

    # --- the streaming forms (k8s 1.36) --------------------------------------------

    async def StreamContainerStats(self, request: Any) -> AsyncIterator[Message]:
        async for message in batches("StreamContainerStats",
                                     await self.container_stats(request.filter)):
            yield message

    async def StreamPodSandboxStats(self, request: Any) -> AsyncIterator[Message]:
        async for message in batches("StreamPodSandboxStats",
                                     await self.pod_stats(self._pods(request.filter))):
            yield message

    async def StreamPodSandboxMetrics(self, request: Any) -> AsyncIterator[Message]:
        async for message in batches("StreamPodSandboxMetrics", await self.pod_metrics()):
            yield message
