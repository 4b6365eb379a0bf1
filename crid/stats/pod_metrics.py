"""ListPodSandboxMetrics (and its streaming form): every pod's cAdvisor-style metrics
(``cri_metrics`` names them), each pod measured on a thread of its own."""

from __future__ import annotations

import asyncio

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.sandbox.context import Sandboxes
from crid.stats.collect import Collector
from crid.stats.selection import containers_by_pod


async def pod_metrics(collector: Collector, containers: Containers, sandboxes: Sandboxes
                      ) -> list[api_pb2.PodSandboxMetrics]:
    names = {c.id: (c.name, c.image_ref) for c in containers.records.all()}
    by_pod = containers_by_pod(containers)
    found = await asyncio.gather(*(
        asyncio.to_thread(collector.pod_metrics, pod, by_pod.get(pod.id, []),
                          lambda cid: names.get(cid, ("", "")))
        for pod in sandboxes.records.all()))
    collector.forget_gone()
    return list(found)
