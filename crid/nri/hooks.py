"""Where crid's pod and container life meets NRI: the hook points and the state plugins see.

The CRI code calls one method per hook point, awaited, inside the step
that makes the object, before its record is written (so it is not listed
while plugins decide): ``run_pod`` (a plugin error fails RunPodSandbox and
the undo stack takes everything back), ``create_container`` (adjusts the
spec), ``start_container``, ``stop_pod`` (after the pod's containers are
stopped, while the pod is still listable). What follows a call (post-create,
post-start, a container's stop — asked for or not — its removal, the pod's
removal) is told to plugins from the records' change listeners, in order per
object, without holding up the CRI call.

Plugins' container updates and evictions go through the CRI's own
UpdateContainerResources and StopContainer code.

With no plugin connected (NRI's default state on most nodes) each hook
returns after an empty-list check; only the in-flight mark a late plugin's
Synchronize relies on is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping, Sequence

from cri_api.v1 import api_pb2

from crid import __version__, logs
from crid.api import nri_pb2
from crid.config import Config
from crid.containers.context import Containers
from crid.containers.records import CREATED, RUNNING, Container
from crid.errors import CridError
from crid.metrics import Metrics
from crid.nri import convert
from crid.nri.adaptation import Adaptation, Settings, SocketBusy
from crid.nri.adjust import CdiInjector
from crid.oci.runtime_spec import Spec
from crid.sandbox import context as pods
from crid.sandbox.context import Sandboxes
from crid.sandbox.records import Sandbox

log = logs.get("crid.nri")


def settings(config: Config) -> Settings:
    return Settings(
        socket_path=config.nri_socket_path, plugin_path=config.nri_plugin_path,
        plugin_config_path=config.nri_plugin_config_path,
        registration_timeout=config.nri_registration_timeout_ms / 1000,
        request_timeout=config.nri_request_timeout_ms / 1000, runtime_version=__version__)


class Nri:
    """crid's ``LifecycleHooks`` (``crid.lifecycle_hooks``) while plugins are served."""

    def __init__(self, settings: Settings, containers: Containers, sandboxes: Sandboxes,
                 metrics: Metrics, cdi: CdiInjector | None = None) -> None:
        self._containers = containers
        self._sandboxes = sandboxes
        self.adaptation = Adaptation(settings, self, _Counters(metrics), cdi)
        self._told: dict[str, str] = {}  # container id -> last state plugins heard of
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    async def start(self) -> bool:
        """Serve plugins; False (logged) when another runtime holds the socket."""
        try:
            await self.adaptation.start()
        except SocketBusy as exc:
            log.error("nri disabled: socket in use; set crid.nri.socket_path to another path "
                      "to run plugins for crid", reason=str(exc))
            return False
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        for container in self._containers.records.all():
            self._told[container.id] = container.state
        self._containers.listeners.append(self._container_changed)
        self._sandboxes.listeners.append(self._pod_changed)
        return True

    async def stop(self) -> None:
        await self.adaptation.stop()

    # --- hook points ------------------------------------------------------------

    async def run_pod(self, sandbox: Sandbox, undo: contextlib.AsyncExitStack) -> None:
        self.adaptation.begin(sandbox.id)
        undo.callback(self.adaptation.settle, sandbox.id)
        if not self.adaptation.plugins:
            return
        await self.adaptation.pod_event(nri_pb2.RUN_POD_SANDBOX, convert.pod(sandbox), fail=True)

    async def stop_pod(self, sandbox: Sandbox) -> None:
        if not self.adaptation.plugins:
            return
        containers = self._containers.records.of_pod(sandbox.id)
        await self.adaptation.drained(c.id for c in containers)
        await self.adaptation.pod_event(nri_pb2.STOP_POD_SANDBOX, convert.pod(sandbox),
                                        fail=False)

    async def create_container(self, pod: Sandbox, container_id: str,
                               config: api_pb2.ContainerConfig, spec: Spec,
                               undo: contextlib.AsyncExitStack) -> None:
        self.adaptation.begin(container_id)
        undo.callback(self.adaptation.settle, container_id)
        if not self.adaptation.plugins:  # the common case: nothing to describe it to
            return
        message = convert.creating(container_id, pod.id, config.metadata.name, config.labels,
                                   config.annotations, spec)
        await self.adaptation.create_container(convert.pod(pod), message, spec)

    async def start_container(self, container: Container) -> None:
        if not self.adaptation.plugins:
            return
        await self.adaptation.drained([container.id])  # PostCreate before StartContainer
        await self.adaptation.container_event(
            nri_pb2.START_CONTAINER, self._pod(container.pod_id), convert.container(container),
            fail=True)

    async def update_container(self, request: api_pb2.UpdateContainerResourcesRequest
                               ) -> api_pb2.UpdateContainerResourcesRequest:
        """UpdateContainer: plugins see the new resources and may amend them (an update
        they return for this container is merged in; one for another is applied after)."""
        if not self.adaptation.plugins:
            return request
        container = self._containers.require(request.container_id)
        updates = await self.adaptation.update_container(
            self._pod(container.pod_id), convert.container(container),
            convert.nri_resources(request.linux))
        amended = api_pb2.UpdateContainerResourcesRequest()
        amended.CopyFrom(request)
        others = []
        for update in updates:
            if update.container_id == container.id:
                fields = convert.cri_resources(update.linux.resources)
                for key, value in fields.items():
                    if key == "unified":
                        amended.linux.unified.update(value)
                    else:
                        setattr(amended.linux, key, value)
            else:
                others.append(update)
        if others:
            self.adaptation.later(container.id, self._update_others(others))
        return amended

    async def _update_others(self, updates: Sequence[nri_pb2.ContainerUpdate]) -> None:
        await self.update(updates)

    def container_updated(self, container_id: str) -> None:
        if not self.adaptation.plugins:
            return
        container = self._containers.records.get(container_id)
        if container is not None:
            self.adaptation.later(container.id, self.adaptation.container_event(
                nri_pb2.POST_UPDATE_CONTAINER, self._pod(container.pod_id),
                convert.container(container), fail=False))

    async def update_pod(self, sandbox: Sandbox,
                         request: api_pb2.UpdatePodSandboxResourcesRequest) -> None:
        if not self.adaptation.plugins:
            return
        pod = convert.pod(sandbox)
        message = nri_pb2.UpdatePodSandboxRequest(pod=pod)
        if request.HasField("resources"):
            message.linux_resources.CopyFrom(convert.nri_resources(request.resources))
        if request.HasField("overhead"):
            message.overhead_linux_resources.CopyFrom(convert.nri_resources(request.overhead))
        await self.adaptation.pod_event(nri_pb2.UPDATE_POD_SANDBOX, pod, fail=True,
                                        request=message)

    def pod_updated(self, sandbox: Sandbox) -> None:
        if not self.adaptation.plugins:
            return
        self.adaptation.later(sandbox.id, self.adaptation.pod_event(
            nri_pb2.POST_UPDATE_POD_SANDBOX, convert.pod(sandbox), fail=False))

    # --- what follows, from the records' listeners ----------------------------------

    def _on_loop(self, call: object, *args: object) -> None:
        assert callable(call) and self._loop is not None
        if threading.get_ident() == self._loop_thread:
            call(*args)
        else:
            self._loop.call_soon_threadsafe(call, *args)

    def _container_changed(self, container: Container) -> None:
        self._on_loop(self._container_event, container)

    def _pod_changed(self, sandbox: Sandbox, kind: str) -> None:
        self._on_loop(self._pod_event, sandbox, kind)

    def _container_event(self, container: Container) -> None:
        told = self._told.get(container.id)
        gone = self._containers.records.get(container.id) is None
        events: list[int] = []
        if told is None and container.state == CREATED and not gone:
            self.adaptation.settle(container.id)
            events.append(nri_pb2.POST_CREATE_CONTAINER)
        if container.state == RUNNING and told not in (RUNNING, "stopped"):
            # (a record that says RUNNING after its exit was told: never PostStart after Stop)
            events.append(nri_pb2.POST_START_CONTAINER)
        if container.state not in (CREATED, RUNNING) and told not in ("stopped", "gone"):
            events.append(nri_pb2.STOP_CONTAINER)
        elif gone and told is not None and told not in ("stopped", "gone"):
            events.append(nri_pb2.STOP_CONTAINER)  # removed before its exit was seen
        if gone:
            if told is not None:
                events.append(nri_pb2.REMOVE_CONTAINER)
            self._told.pop(container.id, None)
        elif nri_pb2.STOP_CONTAINER in events or told == "stopped":
            self._told[container.id] = "stopped"
        else:
            self._told[container.id] = container.state
        if not events or not self.adaptation.plugins:
            return
        pod, message = self._pod(container.pod_id), convert.container(container)
        for event in events:
            self.adaptation.later(container.id, self.adaptation.container_event(
                event, pod, message, fail=False))

    def _pod_event(self, sandbox: Sandbox, kind: str) -> None:
        if kind == pods.STARTED:
            self.adaptation.settle(sandbox.id)
        elif kind == pods.DELETED and self.adaptation.plugins:
            self.adaptation.later(sandbox.id, self._removed(convert.pod(sandbox)))

    async def _removed(self, pod: nri_pb2.PodSandbox) -> None:
        """RemovePodSandbox, after what is queued for containers (their removal)."""
        await self.adaptation.drained(self.adaptation.pending(but=pod.id))
        await self.adaptation.pod_event(nri_pb2.REMOVE_POD_SANDBOX, pod, fail=False)

    def _pod(self, pod_id: str) -> nri_pb2.PodSandbox:
        sandbox = self._sandboxes.records.get(pod_id)
        return convert.pod(sandbox) if sandbox is not None else nri_pb2.PodSandbox(id=pod_id)

    # --- the adaptation's view of crid ------------------------------------------------

    def snapshot(self) -> tuple[list[nri_pb2.PodSandbox], list[nri_pb2.Container]]:
        sandboxes = [convert.pod(s) for s in self._sandboxes.records.all()]
        containers = [convert.container(c) for c in self._containers.records.all()]
        return sandboxes, containers

    async def update(self, updates: Sequence[nri_pb2.ContainerUpdate]
                     ) -> list[nri_pb2.ContainerUpdate]:
        from crid.containers.update import update_resources

        failed: list[nri_pb2.ContainerUpdate] = []
        for update in updates:
            fields: Mapping[str, object] = convert.cri_resources(update.linux.resources)
            request = api_pb2.UpdateContainerResourcesRequest(
                container_id=update.container_id,
                linux=api_pb2.LinuxContainerResources(**fields))  # type: ignore[arg-type]
            try:
                await update_resources(self._containers, request)
            except CridError as exc:
                log.warning("nri container update failed", container_id=update.container_id,
                            error=exc.message)
                if not update.ignore_failure:
                    failed.append(update)
        return failed

    async def evict(self, evictions: Sequence[nri_pb2.ContainerEviction]) -> None:
        from crid.containers import stop

        for eviction in evictions:
            log.info("nri plugin evicts a container", container_id=eviction.container_id,
                     reason=eviction.reason)
            with contextlib.suppress(CridError):
                await stop.stop(self._containers, api_pb2.StopContainerRequest(
                    container_id=eviction.container_id, timeout=0))


class _Counters:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def connected(self, delta: int) -> None:
        self._metrics.nri_plugins.inc(delta)

    def failed(self, plugin: str, kind: str) -> None:
        self._metrics.nri_plugin_errors.labels(plugin=plugin, kind=kind).inc()
