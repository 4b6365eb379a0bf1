"""The seam between pods and their containers.

Pods come first and know nothing of containers; the container code, when it
exists, registers what "stop every container of pod X" and "remove every
container of pod X" mean, and StopPodSandbox / RemovePodSandbox call them
before tearing the pod down. Until then both do nothing. PodSandboxStatus
asks it for the statuses of the pod's containers the same way. The
composition root (``crid.wiring``) does the registering:

    pod_containers.on_stop(stop_pod_containers)
    pod_containers.on_remove(remove_pod_containers)
    pod_containers.on_statuses(statuses_of_pod)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cri_api.v1 import api_pb2

PodHook = Callable[[str], Awaitable[None]]  # called with the pod id
StatusHook = Callable[[str], list[api_pb2.ContainerStatus]]


class PodContainers:
    def __init__(self) -> None:
        self._on_stop: list[PodHook] = []
        self._on_remove: list[PodHook] = []
        self._statuses: StatusHook = lambda pod_id: []

    def on_stop(self, hook: PodHook) -> None:
        self._on_stop.append(hook)

    def on_remove(self, hook: PodHook) -> None:
        self._on_remove.append(hook)

    def on_statuses(self, hook: StatusHook) -> None:
        self._statuses = hook

    def statuses(self, pod_id: str) -> list[api_pb2.ContainerStatus]:
        return self._statuses(pod_id)

    async def stop(self, pod_id: str) -> None:
        for hook in self._on_stop:
            await hook(pod_id)

    async def remove(self, pod_id: str) -> None:
        for hook in self._on_remove:
            await hook(pod_id)
