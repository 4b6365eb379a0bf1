"""The NRI adaptation: the socket plugins connect to, the plugins, and the event fan-out.

Plugins are called in index order (then name). A plugin is added to the
list the moment its Synchronize snapshot is taken, and every event for it
waits until that Synchronize has returned; a pod or container whose hook
started before that moment but is not stored yet ("in flight") is waited
for before the snapshot. So a plugin learns about every pod and container
exactly one way: in the snapshot, or by its event after Synchronize (the
contract critest checks with a plugin that blocks in Synchronize).

A plugin that times out, hangs up or breaks the framing is dropped and the
call goes on without it; an error a plugin returns fails the CRI call
(``HookFailed``). Registration, Configure and Synchronize failures drop the
plugin; nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from google.protobuf.message import Message

from crid import logs
from crid.api import nri_pb2
from crid.errors import FailedPrecondition
from crid.nri import ttrpc
from crid.nri.adjust import Adjuster, CdiInjector
from crid.nri.plugin import Plugin, PluginClosed
from crid.oci.runtime_spec import Spec

log = logs.get("crid.nri")
# A Synchronize message's share of ttrpc's 4 MiB, leaving room for the envelope.
SYNC_MESSAGE_BYTES = 3 << 20


class SocketBusy(Exception):
    """Something is already listening on the NRI socket."""


class HookFailed(FailedPrecondition):
    """An NRI plugin answered a hook with an error: the CRI call fails with it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    socket_path: str
    plugin_path: str
    plugin_config_path: str
    registration_timeout: float
    request_timeout: float
    runtime_version: str


class Runtime(Protocol):
    """What the adaptation needs from crid: its state, and the CRI update/stop paths."""

    def snapshot(self) -> tuple[list[nri_pb2.PodSandbox], list[nri_pb2.Container]]: ...

    async def update(self, updates: Sequence[nri_pb2.ContainerUpdate]
                     ) -> list[nri_pb2.ContainerUpdate]: ...

    async def evict(self, evictions: Sequence[nri_pb2.ContainerEviction]) -> None: ...


class Counters(Protocol):
    def connected(self, delta: int) -> None: ...

    def failed(self, plugin: str, kind: str) -> None: ...


class Adaptation:
    def __init__(self, settings: Settings, runtime: Runtime, counters: Counters,
                 cdi: CdiInjector | None = None) -> None:
        self.settings = settings
        self._runtime = runtime
        self._counters = counters
        self._cdi = cdi
        self.plugins: list[Plugin] = []
        self._server: asyncio.AbstractServer | None = None
        self._sync_lock = asyncio.Lock()
        self._in_flight: dict[str, asyncio.Event] = {}
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._launched: list[asyncio.subprocess.Process] = []

    # --- life ------------------------------------------------------------------

    async def start(self) -> None:
        """Listen and start the pre-installed plugins; ``SocketBusy`` when another
        runtime (containerd, cri-o) is serving plugins on the socket."""
        path = Path(self.settings.socket_path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        if path.is_socket():
            if await _listening(path):
                raise SocketBusy(f"another runtime serves NRI plugins on {path}")
            path.unlink()  # a stale socket of ours (a crash): take it over
        old = os.umask(0o177)  # the socket is born 0600: only root may plug in
        try:
            self._server = await asyncio.start_unix_server(self._accept, path=str(path))
        finally:
            os.umask(old)
        log.info("nri listening", socket=str(path))
        await self._launch_installed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                Path(self.settings.socket_path).unlink()
        await asyncio.gather(*(p.shutdown() for p in self.plugins), return_exceptions=True)
        for task in list(self._connections):
            task.cancel()
        for process in self._launched:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def _launch_installed(self) -> None:
        """Start the pre-installed plugins: ``NN-name`` executables in plugin_path,
        each handed one end of a socket pair (NRI_PLUGIN_SOCKET) and its config."""
        directory = Path(self.settings.plugin_path) if self.settings.plugin_path else None
        if directory is None or not directory.is_dir():
            return
        for entry in sorted(directory.iterdir()):
            index, _, name = entry.name.partition("-")
            if not (len(index) == 2 and index.isdigit() and name and os.access(entry, os.X_OK)):
                continue
            if not _root_only(directory) or not _root_only(entry):
                log.error("not starting nri plugin: it or its directory is not root's alone",
                          plugin=str(entry))
                continue
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            env = {**os.environ, "NRI_PLUGIN_NAME": name, "NRI_PLUGIN_IDX": index,
                   "NRI_PLUGIN_SOCKET": str(theirs.fileno())}
            try:
                process = await asyncio.create_subprocess_exec(
                    str(entry), env=env, pass_fds=(theirs.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL)
            except OSError as exc:
                log.error("cannot start nri plugin", plugin=entry.name, error=str(exc))
                ours.close()
                continue
            finally:
                theirs.close()
            self._launched.append(process)
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            await self._accept(reader, writer, self._plugin_config(index, name))

    def _plugin_config(self, index: str, name: str) -> str:
        """What Configure hands a pre-installed plugin: ``NN-name.conf`` or ``name.conf``
        from plugin_config_path (at most 1 MiB), as NRI looks them up; else nothing."""
        if not self.settings.plugin_config_path:
            return ""
        directory = Path(self.settings.plugin_config_path)
        for candidate in (directory / f"{index}-{name}.conf", directory / f"{name}.conf"):
            with contextlib.suppress(OSError), candidate.open() as file:
                return file.read(1 << 20)
        return ""

    # --- connections -------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      config: str = "") -> None:
        task = asyncio.create_task(self._connect(reader, writer, config))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       config: str) -> None:
        settings = self.settings
        plugin = Plugin(reader, writer, settings.request_timeout, self._plugin_update)
        plugin.start()
        try:
            try:
                async with asyncio.timeout(settings.registration_timeout):
                    await plugin.registered
            except TimeoutError:
                plugin.close("did not register in time")
                raise PluginClosed("registration timed out") from None
            await plugin.configure(settings.runtime_version, config,
                                   settings.registration_timeout)
            await self._synchronize(plugin)
        except (PluginClosed, ttrpc.RpcError) as exc:
            plugin.close(f"setup failed: {exc}")
            self._counters.failed(plugin.label, "setup")
            log.warning("nri plugin setup failed", plugin=plugin.label, error=str(exc))
            return
        self._counters.connected(1)
        log.info("nri plugin ready", plugin=plugin.label, events=hex(plugin.events))
        await plugin.closed.wait()
        self._counters.connected(-1)
        with contextlib.suppress(ValueError):
            self.plugins.remove(plugin)

    async def _synchronize(self, plugin: Plugin) -> None:
        async with self._sync_lock:
            self.plugins = sorted([*self.plugins, plugin], key=Plugin.sort_key)
            try:
                waiting = [e.wait() for e in self._in_flight.values()]
                if waiting:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.registration_timeout):
                            await asyncio.gather(*waiting)
                pods, containers = self._runtime.snapshot()
                updates: list[nri_pb2.ContainerUpdate] = []
                for request in sync_messages(pods, containers):
                    reply = await plugin.call("Synchronize", request,
                                              nri_pb2.SynchronizeResponse)
                    assert isinstance(reply, nri_pb2.SynchronizeResponse)
                    updates.extend(reply.update)
                    if request.more and (reply.update or not reply.more):
                        raise PluginClosed(f"plugin {plugin.label} does not handle a "
                                           "Synchronize split over several messages")
            except BaseException:
                with contextlib.suppress(ValueError):
                    self.plugins.remove(plugin)
                raise
            plugin.synced.set()
        if updates:
            await self._runtime.update(updates)

    async def _plugin_update(self, plugin: Plugin, request: nri_pb2.UpdateContainersRequest
                             ) -> nri_pb2.UpdateContainersResponse:
        log.info("nri plugin updates containers", plugin=plugin.label,
                 updates=len(request.update), evictions=len(request.evict))
        failed = await self._runtime.update(request.update)
        await self._runtime.evict(request.evict)
        return nri_pb2.UpdateContainersResponse(failed=failed)

    # --- in-flight pods and containers ------------------------------------------

    def begin(self, object_id: str) -> None:
        """``object_id`` is between its hook and its record; a new plugin's snapshot waits."""
        self._in_flight[object_id] = asyncio.Event()

    def settle(self, object_id: str) -> None:
        event = self._in_flight.pop(object_id, None)
        if event is not None:
            event.set()

    # --- calls -----------------------------------------------------------------

    def _subscribed(self, event: int) -> list[Plugin]:
        return [p for p in self.plugins if p.wants(event) and not p.closed.is_set()]

    async def _each(self, event: int, call: Callable[[Plugin], Awaitable[Message | None]],
                    fail: bool) -> list[tuple[Plugin, Message | None]]:
        """``call`` on each subscribed plugin in order; its answers."""
        answers: list[tuple[Plugin, Message | None]] = []
        for plugin in self._subscribed(event):
            if not plugin.synced.is_set():
                await _first(plugin.synced.wait(), plugin.closed.wait())
                if plugin.closed.is_set():
                    continue
            try:
                answers.append((plugin, await call(plugin)))
            except PluginClosed as exc:
                self._counters.failed(plugin.label, "timeout")
                log.warning("nri plugin dropped", plugin=plugin.label, error=str(exc))
            except ttrpc.RpcError as exc:
                self._counters.failed(plugin.label, "error")
                name = nri_pb2.Event.Name(event)
                if fail:
                    raise HookFailed(
                        f"NRI plugin {plugin.label} failed {name}: {exc.message}") from exc
                log.warning("nri plugin failed an event", plugin=plugin.label, event=name,
                            error=exc.message)
        return answers

    async def pod_event(self, event: int, pod: nri_pb2.PodSandbox, fail: bool,
                        request: Message | None = None) -> None:
        """An event on a pod; ``request`` when it carries more than the pod."""
        method, request_type, reply = _POD_EVENTS[event]
        message = request if request is not None else request_type(pod=pod)

        async def call(plugin: Plugin) -> None:
            await plugin.event(method, event, message, reply, pod, None)
        await self._each(event, call, fail)

    async def update_container(self, pod: nri_pb2.PodSandbox, container: nri_pb2.Container,
                               resources: nri_pb2.LinuxResources
                               ) -> list[nri_pb2.ContainerUpdate]:
        """UpdateContainer: the updates plugins ask for in return (this container's
        included); evictions are carried out after."""
        request = nri_pb2.UpdateContainerRequest(pod=pod, container=container,
                                                 linux_resources=resources)
        updates: list[nri_pb2.ContainerUpdate] = []
        evictions: list[nri_pb2.ContainerEviction] = []

        async def call(plugin: Plugin) -> None:
            answer = await plugin.call("UpdateContainer", request,
                                       nri_pb2.UpdateContainerResponse)
            assert isinstance(answer, nri_pb2.UpdateContainerResponse)
            updates.extend(answer.update)
            evictions.extend(answer.evict)
        await self._each(nri_pb2.UPDATE_CONTAINER, call, fail=True)
        if evictions:
            self.later(container.id, self._others([], evictions))
        return updates

    async def container_event(self, event: int, pod: nri_pb2.PodSandbox,
                              container: nri_pb2.Container, fail: bool) -> None:
        method, request, reply = _CONTAINER_EVENTS[event]
        updates: list[nri_pb2.ContainerUpdate] = []

        async def call(plugin: Plugin) -> None:
            if event == nri_pb2.STOP_CONTAINER:
                answer = await plugin.call(method, request(pod=pod, container=container), reply)
                assert isinstance(answer, nri_pb2.StopContainerResponse)
                updates.extend(answer.update)
            else:
                await plugin.event(method, event, request(pod=pod, container=container), reply,
                                   pod, container)
        await self._each(event, call, fail)
        if updates:
            await self._runtime.update(updates)

    async def create_container(self, pod: nri_pb2.PodSandbox, container: nri_pb2.Container,
                               spec: Spec) -> None:
        """CreateContainer: each plugin's adjustment applied to ``spec`` in place."""
        request = nri_pb2.CreateContainerRequest(pod=pod, container=container)

        async def call(plugin: Plugin) -> Message:
            return await plugin.call("CreateContainer", request,
                                     nri_pb2.CreateContainerResponse)
        answers = await self._each(nri_pb2.CREATE_CONTAINER, call, fail=True)
        adjuster = Adjuster(spec, self._cdi)
        updates: list[nri_pb2.ContainerUpdate] = []
        evictions: list[nri_pb2.ContainerEviction] = []
        for plugin, answer in answers:
            assert isinstance(answer, nri_pb2.CreateContainerResponse)
            if answer.HasField("adjust"):
                adjuster.apply(plugin.label, answer.adjust)
            updates.extend(answer.update)
            evictions.extend(answer.evict)
        if updates or evictions:
            self.later(container.id, self._others(updates, evictions))

    async def _others(self, updates: Sequence[nri_pb2.ContainerUpdate],
                      evictions: Sequence[nri_pb2.ContainerEviction]) -> None:
        await self._runtime.update(updates)
        await self._runtime.evict(evictions)

    # --- events that follow the CRI call, in order per pod or container --------------

    def later(self, key: str, work: Awaitable[None]) -> None:
        """Run ``work`` after the earlier work queued under ``key``."""
        previous = self._chains.get(key)

        async def chained() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            try:
                await work
            except Exception as exc:  # an event nobody waits for: log it
                log.warning("nri event failed", key=key, error=str(exc))

        task = asyncio.create_task(chained())
        self._chains[key] = task
        task.add_done_callback(lambda t: self._chains.pop(key, None)
                               if self._chains.get(key) is t else None)

    def pending(self, but: str) -> list[str]:
        """The keys with queued work, ``but`` one."""
        return [key for key in self._chains if key != but]

    async def drained(self, keys: Iterable[str]) -> None:
        """Wait for the queued work of ``keys`` (a pod's containers before the pod's event)."""
        tasks = [t for k in keys if (t := self._chains.get(k)) is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def sync_messages(pods: Sequence[nri_pb2.PodSandbox], containers: Sequence[nri_pb2.Container],
                  limit: int = SYNC_MESSAGE_BYTES) -> list[nri_pb2.SynchronizeRequest]:
    """The Synchronize requests for this state: one, or (when it would pass ttrpc's
    limit) several of at most ``limit`` bytes of pods and containers each, all but
    the last with ``more`` set, as NRI splits them."""
    messages = [nri_pb2.SynchronizeRequest()]
    size = 0
    for item in [*pods, *containers]:
        item_size = item.ByteSize() + 8  # its tag and length, generously
        if size and size + item_size > limit:
            messages[-1].more = True
            messages.append(nri_pb2.SynchronizeRequest())
            size = 0
        target = messages[-1].pods if isinstance(item, nri_pb2.PodSandbox) else \
            messages[-1].containers
        target.append(item)  # type: ignore[arg-type]
        size += item_size
    return messages


def _root_only(path: Path) -> bool:
    """Owned by root and writable by nobody else: what crid may run as root."""
    st = path.stat()
    return st.st_uid == 0 and not st.st_mode & 0o022


async def _listening(path: Path) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    return True


async def _first(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


_EventCall = tuple[str, type[Message], type[Message]]


def _calls(names: dict[int, str]) -> dict[int, _EventCall]:
    """Each event's plugin method, with its request and response messages: NRI
    names them ``<Method>Request`` and ``<Method>Response``."""
    return {event: (name, getattr(nri_pb2, f"{name}Request"), getattr(nri_pb2, f"{name}Response"))
            for event, name in names.items()}


_POD_EVENTS = _calls({
    nri_pb2.RUN_POD_SANDBOX: "RunPodSandbox",
    nri_pb2.STOP_POD_SANDBOX: "StopPodSandbox",
    nri_pb2.REMOVE_POD_SANDBOX: "RemovePodSandbox",
    nri_pb2.UPDATE_POD_SANDBOX: "UpdatePodSandbox",
    nri_pb2.POST_UPDATE_POD_SANDBOX: "PostUpdatePodSandbox",
})
_CONTAINER_EVENTS = _calls({
    nri_pb2.POST_CREATE_CONTAINER: "PostCreateContainer",
    nri_pb2.START_CONTAINER: "StartContainer",
    nri_pb2.POST_START_CONTAINER: "PostStartContainer",
    nri_pb2.POST_UPDATE_CONTAINER: "PostUpdateContainer",
    nri_pb2.STOP_CONTAINER: "StopContainer",
    nri_pb2.REMOVE_CONTAINER: "RemoveContainer",
})
