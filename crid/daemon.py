"""The daemon's shared context and its life: start, serve, drain, exit.

``Daemon`` is what every CRI call family is built with: the config, the state
store, the metrics, the clock, and the domains the families share (images,
the pod network, pod sandboxes, containers, the streaming server).
``serve`` owns the order of start-up (lock the root, claim the socket, open
the store, listen) and of shutdown (stop taking calls, let in-flight ones
finish, release everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from crid import handler_features, listener, logs, private
from crid.clock import Clock
from crid.config import Config
from crid.errors import FailedPrecondition
from crid.handler_features import HandlerFeatures
from crid.image import schema as image_schema
from crid.image.store import ImageStore
from crid.metrics import Metrics
from crid.network.cni.manager import NetworkManager
from crid.network.cni.manager import Settings as NetworkSettings
from crid.sandbox import schema as sandbox_schema
from crid.sandbox.containers import PodContainers
from crid.store import Store

if TYPE_CHECKING:  # built in serve(); their modules import this one
    from crid.containers.context import Containers
    from crid.nri.hooks import Nri
    from crid.sandbox.context import Sandboxes
    from crid.streaming.server import StreamingServer

DRAIN_SECONDS = 10.0
DATABASE = "crid.db"


@dataclasses.dataclass
class Daemon:
    config: Config
    store: Store
    metrics: Metrics
    clock: Clock
    images: ImageStore
    # The pod network (CNI); built from the config, cheap (reads nothing yet).
    network: NetworkManager = dataclasses.field(init=False)
    # Where the container code plugs "stop/remove a pod's containers" in.
    pod_containers: PodContainers = dataclasses.field(default_factory=PodContainers)
    # What each runtime handler can do, by handler name (asked at start-up).
    handler_features: dict[str, HandlerFeatures] = dataclasses.field(default_factory=dict)
    sandboxes: Sandboxes = dataclasses.field(init=False)
    containers: Containers = dataclasses.field(init=False)
    streaming: StreamingServer = dataclasses.field(init=False)
    # NRI plugins; None (and no hook costs more than this test) when off.
    nri: Nri | None = None

    def __post_init__(self) -> None:
        self.network = NetworkManager(network_settings(self.config))

    def features(self, handler_name: str) -> HandlerFeatures:
        """What the handler can do; ``""`` is the default handler."""
        return self.handler_features.get(handler_name or self.config.default_handler,
                                         handler_features.NONE)


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
        ipam_dir=Path(config.root) / "cni" / "networks",
    )


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight calls and return."""
    # The gRPC layer and the domains; imported here to keep `crid version` light.
    from crid import grpc_transport, server
    from crid.containers import leftovers
    from crid.containers import schema as container_schema
    from crid.containers.context import Containers
    from crid.containers.streams import ContainerStreams
    from crid.network.dial import Dialer
    from crid.sandbox.context import Sandboxes
    from crid.streaming.server import start_streaming_server as start_streaming

    log = logs.get("crid")
    root, runroot, socket_path = Path(config.root), Path(config.runroot), Path(config.listen)
    socket_group = listener.group_id(config.listen_group)  # before anything is made
    with contextlib.ExitStack() as cleanup:
        # The root holds the database, whose rows hold containers' specs (their
        # env: secrets). The state dir stays passable, for the socket's group;
        # what in it holds specs is private (bundles, the runtimes' state).
        private.directory(root)
        runroot.mkdir(parents=True, exist_ok=True, mode=0o711)
        private.directory(runroot / "runtimes")
        cleanup.enter_context(_exclusive(root / "crid.lock"))
        listener.claim(socket_path)
        store = Store(root / DATABASE, migrations={
            "image": image_schema.MIGRATIONS,
            "sandbox": sandbox_schema.MIGRATIONS,
            "containers": container_schema.MIGRATIONS,
        })
        cleanup.callback(store.close)
        metrics = Metrics()
        clock = Clock()
        images = ImageStore(config, store, metrics, clock)
        cleanup.callback(images.close)
        daemon = Daemon(config=config, store=store, metrics=metrics, clock=clock, images=images,
                        handler_features=await handler_features.probe_all(
                            config.handlers, root_dir=config.root))
        daemon.network.start()
        daemon.sandboxes = Sandboxes(daemon)
        daemon.containers = Containers(daemon)
        metrics.count_containers(daemon.containers.records.count_by_state)
        # Port-forward dials get threads of their own (crid.streaming.dial_workers).
        dialer = Dialer(config.stream_dial_workers)
        cleanup.callback(dialer.close)

        if config.nri_enable:
            from crid.nri.hooks import Nri

            # Plugins' CDI devices resolve through the same registry as the request's.
            nri = Nri(daemon, cdi=lambda names, spec: daemon.containers.cdi.apply(spec, names))
            if await nri.start():
                daemon.nri = nri
        daemon.streaming, _ = await start_streaming(
            config, ContainerStreams(daemon.containers, daemon.sandboxes, dialer), clock, metrics)

        transport = grpc_transport.choose(config.grpc_fast_path)
        log.info("grpc transport", transport=transport.name, reason=transport.reason)
        grpc_server = server.build(daemon, transport)
        await leftovers.remove_unrecorded(daemon.containers)
        # Metrics first: a daemon whose socket answers has its /metrics up too,
        # and a metrics port in use fails start-up before any client connects.
        if config.metrics_address:
            host, port = metrics.serve(config.metrics_address)
            log.info("metrics listening", address=f"{host}:{port}")
        with listener.staged(socket_path, socket_group) as private_path:
            grpc_server.add_insecure_port(f"unix://{private_path}")
            await grpc_server.start()
        cleanup.callback(lambda: socket_path.unlink(missing_ok=True))
        log.info("crid serving", socket=str(socket_path), root=str(root), runroot=str(runroot))

        watcher = asyncio.create_task(daemon.network.watch(), name="cni-conf-watch")
        cleanup.callback(watcher.cancel)

        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        log.info("shutting down", drain_seconds=DRAIN_SECONDS)
        await grpc_server.stop(grace=DRAIN_SECONDS)
        await daemon.streaming.close()
        if daemon.nri is not None:
            await daemon.nri.stop()
    log.info("stopped")


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[IO[str]]:
    """Hold an flock on the root for the daemon's life: one crid per root."""
    private.create(lock_path)
    handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the daemon's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise FailedPrecondition(
            f"{lock_path.parent} is in use by another crid (pid {owner}); "
            "stop it or choose another --root"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield handle
    finally:
        handle.close()
