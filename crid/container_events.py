"""GetContainerEvents: what happens to containers and pods, as the CRI reports it.

Container records and pods tell their listeners about every change; this
family turns each into a ``ContainerEventResponse`` (the container's or
pod's id, the event type, the pod's status and its containers' statuses at
that moment) and publishes it on the ``EventHub``. Events are only built
while someone is subscribed. For a pod, ``container_id`` is the pod's id, as
containerd reports sandbox events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from cri_api.v1 import api_pb2

from crid.clock import Clock
from crid.containers import status as container_status
from crid.containers.context import Containers
from crid.containers.records import CREATED, RUNNING, Container
from crid.events import EventHub
from crid.sandbox import context as pods
from crid.sandbox import status as pod_status
from crid.sandbox.context import Sandboxes
from crid.sandbox.records import Sandbox

_CONTAINER_EVENT = {
    CREATED: api_pb2.CONTAINER_CREATED_EVENT,
    RUNNING: api_pb2.CONTAINER_STARTED_EVENT,
}
_POD_EVENT = {
    pods.CREATED: api_pb2.CONTAINER_CREATED_EVENT,
    pods.STARTED: api_pb2.CONTAINER_STARTED_EVENT,
    pods.STOPPED: api_pb2.CONTAINER_STOPPED_EVENT,
    pods.DELETED: api_pb2.CONTAINER_DELETED_EVENT,
}


class ContainerEvents:
    """The root makes ``container_changed`` and ``pod_changed`` listeners of the
    containers' and the pods' changes."""

    def __init__(self, clock: Clock, containers: Containers, sandboxes: Sandboxes,
                 on_dropped: Callable[[], None]) -> None:
        self.clock = clock
        self.containers = containers
        self.sandboxes = sandboxes
        self.hub = EventHub(on_dropped=on_dropped)

    async def GetContainerEvents(self, request: api_pb2.GetEventsRequest
                                 ) -> AsyncIterator[api_pb2.ContainerEventResponse]:
        async for event in self.hub.subscribe():
            yield event

    def _statuses(self, pod_id: str) -> list[api_pb2.ContainerStatus]:
        return [container_status.to_status(c) for c in self.containers.records.of_pod(pod_id)]

    def container_changed(self, container: Container) -> None:
        if not self.hub.subscribers:
            return
        if self.containers.records.get(container.id) is None:
            kind = api_pb2.CONTAINER_DELETED_EVENT
        else:
            kind = _CONTAINER_EVENT.get(container.state, api_pb2.CONTAINER_STOPPED_EVENT)
        event = api_pb2.ContainerEventResponse(
            container_id=container.id, container_event_type=kind,
            created_at=self.clock.now_ns(), containers_statuses=self._statuses(container.pod_id))
        pod = self.sandboxes.records.get(container.pod_id)
        if pod is not None:
            event.pod_sandbox_status.CopyFrom(pod_status.pod_status(pod))
        self.hub.publish(event)

    def pod_changed(self, sandbox: Sandbox, kind: str) -> None:
        if not self.hub.subscribers:
            return
        self.hub.publish(api_pb2.ContainerEventResponse(
            container_id=sandbox.id, container_event_type=_POD_EVENT[kind],
            created_at=self.clock.now_ns(), pod_sandbox_status=pod_status.pod_status(sandbox),
            containers_statuses=self._statuses(sandbox.id)))
