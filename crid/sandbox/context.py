"""What every pod call shares: records, network, infra processes, per-pod locks.

Calls on one pod are serialised by a lock per pod id (kubelet may stop and
remove concurrently); calls on different pods run side by side.

A ready pod's infra process (catatonit, only for pods sharing one PID
namespace) is watched through a pidfd, from RunPodSandbox or start-up until
StopPodSandbox: when it dies (someone killed it; the kernel then killed the
rest of its PID namespace) the pod is not whole any more. That is logged, and
the row becomes NOTREADY with its network teardown pending, so the pod is
NOTREADY in its row as in every listing, and the StopPodSandbox the kubelet
sends for it still releases its address.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs, private
from crid.clock import Clock
from crid.config import Config, Handler
from crid.errors import CridError, InvalidArgument, NotFound
from crid.handler_features import Features
from crid.lifecycle_hooks import NO_HOOKS, LifecycleHooks
from crid.listing_cache import ListingCache
from crid.network import namespaces, podfiles
from crid.network.cni.args import PodNetwork, port_mapping
from crid.network.cni.manager import NetworkManager
from crid.oci.cgroups.pod import Cgroup, check_path
from crid.sandbox import records
from crid.sandbox.containers import PodContainers
from crid.sandbox.infra import InfraProcesses, pidfd_if_alive
from crid.sandbox.records import Sandbox, SandboxRecords

log = logs.get("crid.sandbox")

# What happened to a pod, for listeners (events): the CRI's event kinds.
CREATED, STARTED, STOPPED, DELETED = "created", "started", "stopped", "deleted"
# In a pod's state dir: the cgroup RunPodSandbox made, for a restart to remove
# when a crash came before the row that names it.
OWNED_CGROUP = "cgroup"
PodListener = Callable[[Sandbox, str], None]


class Sandboxes:
    def __init__(self, config: Config, records: SandboxRecords, network: NetworkManager,
                 clock: Clock, features: Features, pod_containers: PodContainers) -> None:
        self.config = config
        self.records = records
        self.network = network
        self.clock = clock
        self.features = features
        # Stopping, removing and reporting a pod's containers (the container code's).
        self.pod_containers = pod_containers
        # Extensions (NRI) the composition root plugs in; none until then.
        self.hooks: LifecycleHooks = NO_HOOKS
        self.infra = InfraProcesses()
        self.pods_dir = Path(config.runroot) / "pods"
        self.creating: set[tuple[str, str, str, int]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self.listeners: list[PodListener] = []
        # ListPodSandbox's item per pod, with the record it was made from.
        self.listed: dict[str, tuple[Sandbox, api_pb2.PodSandbox]] = {}
        # ListPodSandbox's whole responses, stamped with the table's generation
        # and the pods' states they were made at.
        self.listings: ListingCache[api_pb2.ListPodSandboxResponse] = ListingCache()
        self._infra_watched: dict[str, int] = {}  # pod id: pidfd of its infra process

    def changed(self, sandbox: Sandbox, *kinds: str) -> None:
        """Tell listeners (events) what just happened to ``sandbox``, in order."""
        for kind in kinds:
            for listener in self.listeners:
                listener(sandbox, kind)

    def watch_infra(self, sandbox: Sandbox) -> None:
        """Notice when the infra process of ``sandbox`` (ready) dies; at once when
        it is gone already. Call on the loop."""
        if sandbox.infra is None or sandbox.state != records.READY \
                or sandbox.id in self._infra_watched:
            return
        pidfd = pidfd_if_alive(sandbox.infra)
        if pidfd is None:
            self._infra_died(sandbox.id)
            return
        self._infra_watched[sandbox.id] = pidfd
        asyncio.get_running_loop().add_reader(pidfd, self._infra_died, sandbox.id)

    def unwatch_infra(self, sandbox_id: str) -> None:
        """Before crid stops the infra process itself (its death is then no news)."""
        pidfd = self._infra_watched.pop(sandbox_id, None)
        if pidfd is not None:
            asyncio.get_running_loop().remove_reader(pidfd)
            os.close(pidfd)

    def _infra_died(self, sandbox_id: str) -> None:
        self.unwatch_infra(sandbox_id)
        sandbox = self.records.get(sandbox_id)
        if sandbox is None or sandbox.state != records.READY or sandbox.infra is None:
            return
        log.warning("pod's infra process died; the pod is not ready", pod=sandbox_id,
                    pid=sandbox.infra.pid)
        updated = self.records.update_soon(
            sandbox_id, state=records.NOTREADY,
            network_pending=sandbox.network_pending or bool(sandbox.netns))
        self.changed(updated or sandbox, STOPPED)

    def lock(self, sandbox_id: str) -> asyncio.Lock:
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    def forget_lock(self, sandbox_id: str) -> None:
        self._locks.pop(sandbox_id, None)

    def handler(self, name: str) -> Handler:
        found = self.config.handler(name)
        if found is None:
            known = ", ".join(h.name for h in self.config.handlers) or "none"
            raise NotFound(f"runtime handler {name!r} is not configured (known: {known})")
        return found

    def find(self, sandbox_id: str) -> Sandbox | None:
        """The pod with this id or unique id prefix; None when there is none."""
        if not sandbox_id:
            raise InvalidArgument("pod_sandbox_id is required")
        exact = self.records.get(sandbox_id)
        if exact is not None:
            return exact
        found = self.records.by_prefix(sandbox_id)
        if len(found) > 1:
            raise InvalidArgument(f"pod sandbox id prefix {sandbox_id!r} is ambiguous")
        return found[0] if found else None

    def require(self, sandbox_id: str) -> Sandbox:
        found = self.find(sandbox_id)
        if found is None:
            raise NotFound(f"pod sandbox {sandbox_id!r} not found")
        return found

    def pod_network(self, sandbox: Sandbox) -> PodNetwork:
        config = sandbox.config
        mappings = [
            port_mapping(_protocol(m.protocol), m.container_port, m.host_port, m.host_ip)
            for m in config.port_mappings
        ]
        dns = config.dns_config
        return PodNetwork(
            id=sandbox.id, name=sandbox.name, namespace=sandbox.namespace, uid=sandbox.uid,
            netns=sandbox.netns, port_mappings=mappings, annotations=dict(config.annotations),
            dns={"servers": list(dns.servers), "searches": list(dns.searches),
                 "options": list(dns.options)},
        )

    async def remove_unrecorded(self) -> None:
        """After a restart: remove what a RunPodSandbox cut off by a crash made before
        its row: the network attachment (IPAM lease, CNI result, port rules), the
        pins and files in its state dir, and the cgroup it made."""
        private.directory(self.pods_dir, private.PASSABLE_DIR_MODE)  # no one plants a pod dir
        known = {s.id for s in self.records.all()}
        leftovers = await asyncio.to_thread(
            lambda: sorted(p for p in self.pods_dir.iterdir() if p.name not in known))
        for pod_dir in leftovers:
            log.warning("removing leftovers of an unfinished pod", pod=pod_dir.name)
            netns = str(pod_dir / "net")
            if await asyncio.to_thread(namespaces.is_pinned, netns):
                # With the cached ADD, or today's network when the ADD was cut off.
                pod_net = PodNetwork(id=pod_dir.name, name="", namespace="", uid="",
                                     netns=netns)
                try:
                    await self.network.delete(pod_net)
                except CridError as exc:
                    log.warning("cannot detach an unfinished pod", pod=pod_dir.name,
                                error=exc.message)
            owned = pod_dir / OWNED_CGROUP
            cgroup = await asyncio.to_thread(owned.read_text) if owned.is_file() else ""
            await asyncio.to_thread(release_pod_dir, pod_dir)
            if cgroup:
                try:
                    await asyncio.to_thread(Cgroup(check_path(cgroup)).kill_and_remove)
                except (CridError, OSError) as exc:
                    log.warning("cannot remove the cgroup of an unfinished pod",
                                pod=pod_dir.name, error=str(exc))

    def recover(self) -> None:
        """After a restart: a pod whose namespaces vanished (a reboot emptied the
        state dir) is not ready; so is one whose infra process died while crid
        was down. The infra processes still alive are watched from now on."""
        for sandbox in self.records.all():
            lost = [k for k, p in sandbox.namespaces.items() if not namespaces.is_pinned(p)]
            if lost and sandbox.state == records.READY:
                log.warning("pod lost its namespaces", pod=sandbox.id, kinds=lost)
                self.records.update_soon(sandbox.id, state=records.NOTREADY)
                continue
            self.watch_infra(sandbox)


def release_pod_dir(pod_dir: Path) -> None:
    """Unpin, unmount and delete whatever is in a pod's state dir."""
    pins = {p.name: str(p) for p in pod_dir.iterdir() if p.name in namespaces.PIN_FILES} \
        if pod_dir.is_dir() else {}
    namespaces.unpin(namespaces.Pinned(pins))
    podfiles.unmount_shm(pod_dir / "shm")
    shutil.rmtree(pod_dir, ignore_errors=True)


def _protocol(value: int) -> str:
    return "udp" if value == api_pb2.UDP else "sctp" if value == api_pb2.SCTP else "tcp"
