"""RunPodSandbox: make a pod's namespaces, cgroup, network and files.

Each step registers its undo on an ``AsyncExitStack`` as soon as it has
made something, so a failure at any step (a CNI plugin error, a bad sysctl,
a full disk) unwinds everything made so far: no pin file, mount, cgroup,
CNI attachment, iptables rule or row is left. The row is written last.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs, private
from crid.api import names
from crid.api.validation import require
from crid.errors import AlreadyExists, CridError, FailedPrecondition, InvalidArgument
from crid.network import namespaces, podfiles, sysctls
from crid.network.cni.args import PodNetwork
from crid.oci.cgroups.pod import Cgroup, check_path
from crid.sandbox import records, userns
from crid.sandbox.context import CREATED, OWNED_CGROUP, STARTED, Sandboxes
from crid.sandbox.infra import Infra

log = logs.get("crid.sandbox")
NODE, POD = api_pb2.NODE, api_pb2.POD


async def run(ctx: Sandboxes, request: api_pb2.RunPodSandboxRequest
              ) -> api_pb2.RunPodSandboxResponse:
    require(request, "config", "config.metadata", "config.metadata.name",
            "config.metadata.uid", "config.metadata.namespace")
    config = request.config
    names.check_pod(config)
    meta = config.metadata
    handler = ctx.handler(request.runtime_handler)
    options = config.linux.security_context.namespace_options
    if options.network not in (POD, NODE):
        raise InvalidArgument("a pod's network namespace mode must be POD or NODE")
    host_network, host_ipc = options.network == NODE, options.ipc == NODE
    mapping = userns.pod_mapping(options)
    if mapping is not None and config.linux.security_context.privileged:
        raise InvalidArgument("a privileged pod cannot have a user namespace (hostUsers: false)")
    if mapping is not None and not ctx.features.of(handler.name).user_namespaces:
        raise InvalidArgument(
            f"runtime handler {handler.name!r} does not support user namespaces (its runtime "
            "lacks idmapped mounts, or the kernel or filesystem does)")
    pod_sysctls = dict(config.linux.sysctls)
    sysctls.check(pod_sysctls, host_network=host_network, host_ipc=host_ipc)
    sandbox_id = secrets.token_hex(32)
    cgroup_path = check_path(config.linux.cgroup_parent
                             or f"{ctx.config.cgroup_parent.rstrip('/')}/crid-{sandbox_id}")

    key = (meta.name, meta.namespace, meta.uid, meta.attempt)
    if key in ctx.creating or ctx.records.by_name(*key) is not None:
        raise AlreadyExists(
            f"pod sandbox {meta.namespace}/{meta.name} (uid {meta.uid}, attempt {meta.attempt}) "
            "already exists"
        )
    if not host_network and ctx.network.network() is None:
        raise FailedPrecondition(f"pod network is not ready: {ctx.network.not_ready_reason()}")
    ctx.creating.add(key)
    try:
        async with ctx.lock(sandbox_id):
            sandbox = await _create(ctx, request, sandbox_id, handler.name, cgroup_path,
                                    host_network, host_ipc, pod_sysctls)
    except BaseException:
        ctx.forget_lock(sandbox_id)
        raise
    finally:
        ctx.creating.discard(key)
    ctx.changed(sandbox, CREATED, STARTED)
    ctx.watch_infra(sandbox)
    log.info("pod sandbox ready", pod=sandbox.id, name=meta.name, namespace=meta.namespace,
             ips=list(sandbox.ips))
    return api_pb2.RunPodSandboxResponse(pod_sandbox_id=sandbox.id)


async def _create(ctx: Sandboxes, request: api_pb2.RunPodSandboxRequest, sandbox_id: str,
                  handler: str, cgroup_path: str, host_network: bool, host_ipc: bool,
                  pod_sysctls: dict[str, str]) -> records.Sandbox:
    config = request.config
    options = config.linux.security_context.namespace_options
    pod_dir = ctx.pods_dir / sandbox_id
    async with contextlib.AsyncExitStack() as undo:
        await asyncio.to_thread(pod_dir.mkdir, parents=True, mode=0o711)
        undo.push_async_callback(asyncio.to_thread, shutil.rmtree, pod_dir, True)

        kinds = tuple(k for k, host in (("net", host_network), ("ipc", host_ipc),
                                        ("uts", host_network)) if not host)
        hostname = config.hostname or socket.gethostname()
        mapping = userns.of_pod(config)
        pinned = await asyncio.to_thread(
            namespaces.pin, pod_dir, kinds, hostname=hostname, pod_sysctls=pod_sysctls,
            id_map=mapping.proc_line() if mapping else "")
        undo.push_async_callback(asyncio.to_thread, namespaces.unpin, pinned)

        shm = podfiles.HOST_SHM
        if not host_ipc:
            shm = str(pod_dir / "shm")
            await asyncio.to_thread(podfiles.mount_shm, Path(shm))
            undo.push_async_callback(asyncio.to_thread, podfiles.unmount_shm, Path(shm))

        cgroup = Cgroup(cgroup_path)
        owned = not await asyncio.to_thread(cgroup.exists)
        if owned:  # for a restart after a crash before the row names it
            # Private: the pod dir is passable for the container's own files only.
            await asyncio.to_thread(private.write_text, pod_dir / OWNED_CGROUP, cgroup_path)
        await asyncio.to_thread(cgroup.create)
        if owned:
            undo.push_async_callback(asyncio.to_thread, cgroup.remove)
        await asyncio.to_thread(cgroup.apply, _resources(config.linux))

        infra: Infra | None = None
        if options.pid == POD:
            infra = await asyncio.to_thread(ctx.infra.start, pinned.paths)
            undo.push_async_callback(asyncio.to_thread, ctx.infra.stop, infra)
            await asyncio.to_thread(cgroup.add_process, infra.parent_pid)
            await asyncio.to_thread(cgroup.add_process, infra.pid)

        sandbox = records.Sandbox(
            id=sandbox_id, name=config.metadata.name, namespace=config.metadata.namespace,
            uid=config.metadata.uid, attempt=config.metadata.attempt, state=records.READY,
            created_ns=ctx.clock.now_ns(), runtime_handler=handler,
            config_bytes=config.SerializeToString(),
            pod_dir=str(pod_dir), namespaces=dict(pinned.paths), shm=shm,
            cgroup_parent=cgroup_path, infra=infra, ips=(), network_pending=False,
            cgroup_owned=owned,
        )
        if not host_network:
            pod_net = ctx.pod_network(sandbox)
            attachment = await ctx.network.add(pod_net)
            undo.push_async_callback(_detach, ctx, pod_net)
            sandbox = dataclasses.replace(sandbox, ips=attachment.ips)

        await asyncio.to_thread(_write_files, pod_dir, config, hostname, host_network,
                                sandbox.ips)
        await ctx.hooks.run_pod(sandbox, undo)  # plugins see the pod before anyone can list it
        await ctx.records.insert(sandbox)
        undo.pop_all()
    return sandbox


async def _detach(ctx: Sandboxes, pod_net: PodNetwork) -> None:
    try:
        await ctx.network.delete(pod_net)
    except CridError as exc:
        log.error("cannot undo the network of a failed pod", pod=pod_net.id, error=exc.message)


def _resources(linux: api_pb2.LinuxPodSandboxConfig
               ) -> list[api_pb2.LinuxContainerResources | None]:
    return [linux.resources if linux.HasField("resources") else None,
            linux.overhead if linux.HasField("overhead") else None]


def _write_files(pod_dir: Path, config: api_pb2.PodSandboxConfig, hostname: str,
                 host_network: bool, ips: Sequence[str]) -> None:
    dns = config.dns_config
    podfiles.write(pod_dir / "resolv.conf", podfiles.resolv_conf(
        list(dns.servers), list(dns.searches), list(dns.options), podfiles.host_resolv_conf()))
    if host_network:
        hosts_text = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
    else:
        hosts_text = podfiles.hosts(hostname, list(ips))
    podfiles.write(pod_dir / "hosts", hosts_text)
    podfiles.write(pod_dir / "hostname", hostname + "\n")
