"""PodSandboxStats and ListPodSandboxStats (and its streaming form): pod cgroup,
network and process figures, each pod measured on a thread of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.sandbox.context import Sandboxes
from crid.sandbox.records import Sandbox
from crid.stats.collect import Collector
from crid.stats.selection import containers_by_pod, selected


async def pod_sandbox_stats(collector: Collector, containers: Containers, sandboxes: Sandboxes,
                            request: api_pb2.PodSandboxStatsRequest
                            ) -> api_pb2.PodSandboxStatsResponse:
    sandbox = sandboxes.require(request.pod_sandbox_id)
    stats = await pod_stats(collector, containers, [sandbox])
    return api_pb2.PodSandboxStatsResponse(stats=stats[0])


def pods(sandboxes: Sandboxes, wanted: api_pb2.PodSandboxStatsFilter) -> list[Sandbox]:
    found = sandboxes.records.by_prefix(wanted.id) if wanted.id else sandboxes.records.all()
    return [s for s in found if selected(s.labels, wanted.label_selector)]


async def pod_stats(collector: Collector, containers: Containers, chosen: Iterable[Sandbox]
                    ) -> list[api_pb2.PodSandboxStats]:
    by_pod = containers_by_pod(containers)
    # Each pod joins its own netns on its own thread; measure them side by side.
    stats = await asyncio.gather(*(
        asyncio.to_thread(collector.pod_stats, pod, by_pod.get(pod.id, []))
        for pod in chosen))
    collector.forget_gone()
    return list(stats)
