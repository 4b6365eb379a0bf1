"""The stats call family: container and pod stats, and the CRI metrics; each RPC
delegates to the module that owns it, all measuring with the one ``Collector``.

Every call reads records once, then does its cgroup and netns reads in
worker threads so the event loop keeps serving while a full node is measured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from cri_api.v1 import api_pb2
from google.protobuf.message import Message

from crid.containers.context import Containers
from crid.sandbox.context import Sandboxes
from crid.stats import container_stats, cri_metrics, pod_metrics, pod_stats
from crid.stats.collect import Collector
from crid.stream_calls import batches


class Stats:
    def __init__(self, containers: Containers, sandboxes: Sandboxes,
                 collector: Collector) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.collector = collector  # started by the root

    # --- containers ----------------------------------------------------------------

    async def ContainerStats(self, request: api_pb2.ContainerStatsRequest
                             ) -> api_pb2.ContainerStatsResponse:
        return await container_stats.container_stats(
            self.collector, self.containers, self.sandboxes, request)

    async def ListContainerStats(self, request: api_pb2.ListContainerStatsRequest
                                 ) -> api_pb2.ListContainerStatsResponse:
        return api_pb2.ListContainerStatsResponse(stats=await container_stats.list_container_stats(
            self.collector, self.containers, request.filter))

    # --- pods ------------------------------------------------------------------------

    async def PodSandboxStats(self, request: api_pb2.PodSandboxStatsRequest
                              ) -> api_pb2.PodSandboxStatsResponse:
        return await pod_stats.pod_sandbox_stats(
            self.collector, self.containers, self.sandboxes, request)

    async def ListPodSandboxStats(self, request: api_pb2.ListPodSandboxStatsRequest
                                  ) -> api_pb2.ListPodSandboxStatsResponse:
        return api_pb2.ListPodSandboxStatsResponse(stats=await pod_stats.pod_stats(
            self.collector, self.containers, pod_stats.pods(self.sandboxes, request.filter)))

    # --- CRI metrics -----------------------------------------------------------------

    async def ListMetricDescriptors(self, request: api_pb2.ListMetricDescriptorsRequest
                                    ) -> api_pb2.ListMetricDescriptorsResponse:
        return api_pb2.ListMetricDescriptorsResponse(descriptors=cri_metrics.descriptors())

    async def ListPodSandboxMetrics(self, request: api_pb2.ListPodSandboxMetricsRequest
                                    ) -> api_pb2.ListPodSandboxMetricsResponse:
        return api_pb2.ListPodSandboxMetricsResponse(pod_metrics=await pod_metrics.pod_metrics(
            self.collector, self.containers, self.sandboxes))

    # --- the streaming forms (k8s 1.36) --------------------------------------------

    async def StreamContainerStats(self, request: Any) -> AsyncIterator[Message]:
        found = await container_stats.list_container_stats(
            self.collector, self.containers, request.filter)
        async for message in batches("StreamContainerStats", found):
            yield message

    async def StreamPodSandboxStats(self, request: Any) -> AsyncIterator[Message]:
        found = await pod_stats.pod_stats(
            self.collector, self.containers, pod_stats.pods(self.sandboxes, request.filter))
        async for message in batches("StreamPodSandboxStats", found):
            yield message

    async def StreamPodSandboxMetrics(self, request: Any) -> AsyncIterator[Message]:
        found = await pod_metrics.pod_metrics(self.collector, self.containers, self.sandboxes)
        async for message in batches("StreamPodSandboxMetrics", found):
            yield message
