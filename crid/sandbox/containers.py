"""The seam between pods and their containers.

Pods come first and know nothing of containers; the container code, when it
exists, registers what "stop every container of pod X" and "remove every
container of pod X" mean, and StopPodSandbox / RemovePodSandbox call them
before tearing the pod down. Until then both do nothing.

    daemon.pod_containers.on_stop(containers.stop_pod_containers)
    daemon.pod_containers.on_remove(containers.remove_pod_containers)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

PodHook = Callable[[str], Awaitable[None]]  # called with the pod id


class PodContainers:
    def __init__(self) -> None:
        self._on_stop: list[PodHook] = []
        self._on_remove: list[PodHook] = []

    def on_stop(self, hook: PodHook) -> None:
        self._on_stop.append(hook)

    def on_remove(self, hook: PodHook) -> None:
        self._on_remove.append(hook)

    async def stop(self, pod_id: str) -> None:
        for hook in self._on_stop:
            await hook(pod_id)

    async def remove(self, pod_id: str) -> None:
        for hook in self._on_remove:
            await hook(pod_id)
