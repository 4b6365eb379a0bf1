"""The composition root: what the daemon is made of, built in one place.

``Parts(config)`` builds every part in dependency order and hands each
exactly what it uses; constructors read and write nothing. ``start`` then
does the work, in this order:

1. open the store (SQLite; checked, migrated; refused when damaged, or when
   new while the node still holds pods or containers: ``crid.lost_state``),
2. open the image store (its dirs; drop what a crash left half-made),
3. ask every runtime handler what it can do (``features``),
4. read the CNI config (writing the default network when there is none),
5. serve NRI plugins, when enabled, and plug their hooks into pods and containers,
6. start the streaming server, and ExecSync's exec fork server (``crid`` handler),
7. remove what pod runs cut off by a crash made (network, pins, cgroup),
   recover pods, then containers (exits that happened while crid was down),
8. start the stats collector, remove what unfinished creates left behind,
   and watch the CNI conf dir.

Before all that, crid becomes a child subreaper, and from the end a sweep
reaps what it adopts (``crid.reaper``): daemonised monitors are orphans.

``stop`` undoes what ``start`` did, in reverse. Only this module and
``crid.daemon`` (the daemon's life: lock, socket, signals, drain) import
the parts' wiring; no part below holds another part it was not given.

Two late relations go through small seams instead of a shared object:
pods stop, remove and report their containers through ``PodContainers``
(``crid.sandbox.containers``), registered here with the container code; and
pods and containers call extensions through ``LifecycleHooks``
(``crid.lifecycle_hooks``), a no-op until NRI is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from crid.clock import Clock
from crid.config import Config
from crid.container_events import ContainerEvents
from crid.containers import leftovers, remove, runtime_in_process, status, stop
from crid.containers import schema as container_schema
from crid.containers.context import Containers, oom_kill_counter
from crid.containers.exec_server import ExecServer
from crid.containers.exec_sync import FORK_SERVER_HANDLER
from crid.containers.records import ContainerRecords
from crid.containers.service import ContainerCalls
from crid.containers.streams import ContainerStreams
from crid.handler_features import Features
from crid.image import schema as image_schema
from crid.image.calls import ImageCalls
from crid.image.store import ImageStore
from crid.lost_state import refuse_if_lost
from crid.metrics import Metrics
from crid.network.cni.manager import NetworkManager
from crid.network.cni.manager import Settings as NetworkSettings
from crid.network.dial import Dialer
from crid.oci.linux import syscalls
from crid.reaper import Reaper, become_subreaper
from crid.runtime_info import RuntimeInfo
from crid.sandbox import schema as sandbox_schema
from crid.sandbox.containers import PodContainers
from crid.sandbox.context import Sandboxes
from crid.sandbox.records import SandboxRecords
from crid.sandbox.service import PodSandboxes
from crid.stats.collect import Collector
from crid.stats.service import Stats
from crid.store import Store
from crid.stream_calls import StreamLists
from crid.streaming.limits import Limits
from crid.streaming.server import StreamingServer

if TYPE_CHECKING:
    from crid.nri.hooks import Nri

DATABASE = "crid.db"


class Parts:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.clock = clock = Clock()
        self.metrics = metrics = Metrics()
        self.store = store = Store(Path(config.root) / DATABASE, migrations={
            "image": image_schema.MIGRATIONS,
            "sandbox": sandbox_schema.MIGRATIONS,
            "containers": container_schema.MIGRATIONS,
        })
        container_records = ContainerRecords(store)
        # An image a container uses is not removed.
        self.images = ImageStore(config, store, metrics, clock,
                                 in_use=container_records.image_in_use)
        self.features = Features(config.handlers, config.default_handler, root_dir=config.root)
        self.network = NetworkManager(network_settings(config))

        pod_containers = PodContainers()
        self.sandboxes = sandboxes = Sandboxes(
            config, SandboxRecords(store), self.network, clock, self.features, pod_containers)
        # crid's own runtime's verbs run in-process; any other handler's as commands.
        self.containers = containers = Containers(
            config, container_records, clock, self.images, self.features,
            verbs_for=runtime_in_process.choose)
        fork_server_handler = config.handler(FORK_SERVER_HANDLER)
        if fork_server_handler is not None:
            containers.exec_server = ExecServer(
                containers.runtime_root(fork_server_handler),
                Path(config.runroot) / "exec-server")
        pod_containers.on_stop(functools.partial(stop.stop_pod_containers, containers))
        pod_containers.on_remove(functools.partial(remove.remove_pod_containers, containers))
        pod_containers.on_statuses(functools.partial(status.statuses_of_pod, containers))
        containers.listeners.append(
            oom_kill_counter(container_records, metrics.containers_oom.inc))
        metrics.count_containers(container_records.count_by_state)

        # Port-forward dials get threads of their own (crid.streaming.dial_workers).
        self.dialer = Dialer(config.stream_dial_workers)
        self.streaming = StreamingServer(
            ContainerStreams(containers, sandboxes, self.dialer), clock,
            address=config.stream_address, port=config.stream_port, observer=metrics,
            limits=Limits.from_config(config))
        self.collector = Collector(containers, sandboxes,
                                   layer_interval=float(config.stats_layer_interval))
        self.nri: Nri | None = None
        if config.nri_enable:
            from crid.nri import hooks as nri  # plugins' code only when they may connect

            # Plugins' CDI devices resolve through the same registry as the request's.
            self.nri = nri.Nri(nri.settings(config), containers, sandboxes, metrics,
                               cdi=lambda names, spec: containers.cdi.apply(spec, names))

        events = ContainerEvents(clock, containers, sandboxes, metrics.events_dropped.inc)
        containers.listeners.append(events.container_changed)
        sandboxes.listeners.append(events.pod_changed)
        images = ImageCalls(self.images, config.root)
        #: The CRI call families, in the order the gRPC server looks a call up.
        self.families: tuple[object, ...] = (
            RuntimeInfo(config, self.network, self.features, store),
            images,
            PodSandboxes(sandboxes),
            ContainerCalls(containers, sandboxes, self.streaming),
            events,
            Stats(containers, sandboxes, self.collector),
            StreamLists(containers, sandboxes, images),
        )
        self.reaper = Reaper()
        self._running = contextlib.AsyncExitStack()

    async def start(self) -> None:
        """Open, recover and start every part in order; what started is stopped
        again when a later step fails."""
        async with contextlib.AsyncExitStack() as started:
            become_subreaper(syscalls())
            self.store.open()
            started.callback(self.store.close)
            refuse_if_lost(self.store, (
                self.sandboxes.pods_dir, self.containers.bundles_dir,
                self.containers.exits_dir, self.images.snapshots.root,
            ), Path(self.config.runroot))
            started.callback(self.images.close)
            self.images.open()
            started.callback(self.dialer.close)
            await self.features.probe()
            self.network.start()
            if self.nri is not None and await self.nri.start():
                started.push_async_callback(self.nri.stop)
                self.sandboxes.hooks = self.containers.hooks = self.nri
            await self.streaming.start()
            started.push_async_callback(self.streaming.close)
            if self.containers.exec_server is not None:
                await self.containers.exec_server.start()
                started.push_async_callback(self.containers.exec_server.stop)
            await self.sandboxes.remove_unrecorded()
            self.sandboxes.recover()
            self.containers.recover()
            self.collector.start()
            started.push_async_callback(self.collector.stop)
            await leftovers.remove_unrecorded(self.containers)
            watcher = asyncio.create_task(self.network.watch(), name="cni-conf-watch")
            started.push_async_callback(_cancel, watcher)
            sweeper = asyncio.create_task(self.reaper.run(), name="reaper")
            started.push_async_callback(_cancel, sweeper)
            self._running = started.pop_all()

    async def stop(self) -> None:
        """Stop what ``start`` started, last first (the store closes last)."""
        await self._running.aclose()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def network_settings(config: Config) -> NetworkSettings:
    return NetworkSettings(
        conf_dir=Path(config.cni_config_dir),
        plugin_dirs=config.cni_plugin_dirs,
        cache_dir=Path(config.root) / "cni" / "results",
        timeout=float(config.cni_timeout),
        write_default=config.cni_default_network,
        default_name=config.cni_default_name,
        default_bridge=config.cni_default_bridge,
        default_subnet=config.cni_default_subnet,
    )
