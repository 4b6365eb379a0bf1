"""ContainerStats and ListContainerStats (and its streaming form): container cgroup
figures, read in one worker thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.records import Container
from crid.errors import NotFound
from crid.sandbox.context import Sandboxes
from crid.stats.collect import Collector
from crid.stats.selection import selected


async def container_stats(collector: Collector, containers: Containers, sandboxes: Sandboxes,
                          request: api_pb2.ContainerStatsRequest
                          ) -> api_pb2.ContainerStatsResponse:
    container = containers.require(request.container_id)
    pod = sandboxes.records.get(container.pod_id)
    if pod is None:
        raise NotFound(f"pod sandbox {container.pod_id} of container {container.id} is gone")
    stats = await asyncio.to_thread(collector.container_stats, container, pod.cgroup_parent)
    return api_pb2.ContainerStatsResponse(stats=stats)


async def list_container_stats(collector: Collector, containers: Containers,
                               wanted: api_pb2.ContainerStatsFilter
                               ) -> list[api_pb2.ContainerStats]:
    chosen = _chosen(containers, wanted)
    pods = collector.pod_cgroups()

    def measure() -> list[api_pb2.ContainerStats]:
        return [collector.container_stats(c, pods[c.pod_id]) for c in chosen if c.pod_id in pods]

    found = await asyncio.to_thread(measure)
    collector.forget_gone()
    return found


def _chosen(containers: Containers, wanted: api_pb2.ContainerStatsFilter) -> list[Container]:
    found = []
    for container in containers.records.all():
        if wanted.id and not container.id.startswith(wanted.id):
            continue
        if wanted.pod_sandbox_id and not container.pod_id.startswith(wanted.pod_sandbox_id):
            continue
        if not selected(container.labels, wanted.label_selector):
            continue
        found.append(containers.current(container))
    return found
