"""CreateContainer: an overlay rootfs, a runtime-spec, and conmon holding it.

Every step registers its undo on an ``AsyncExitStack``; only when the
runtime has the container and its row is written is the stack released, so
a failure part-way leaves no mount, dir, runtime state or row behind. A
full disk on the way (bundle, writable layer, config.json, log dir, the
row) is ``DiskFull``: RESOURCE_EXHAUSTED naming the dir that ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import stat
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs, private
from crid.api import names
from crid.cdi import names as cdi_names
from crid.containers import image_volumes, leftovers, rootfs
from crid.containers.context import Containers
from crid.containers.records import CREATED, Container, User
from crid.disk_full import disk_full_under
from crid.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crid.oci.spec import ImageConfig, PodFacts, build_spec
from crid.sandbox import records as sandbox_records
from crid.sandbox import userns
from crid.sandbox.context import Sandboxes
from crid.sandbox.records import Sandbox

log = logs.get("crid.containers")


async def create(ctx: Containers, sandboxes: Sandboxes,
                 request: api_pb2.CreateContainerRequest) -> api_pb2.CreateContainerResponse:
    config = request.config
    if not request.pod_sandbox_id:
        raise InvalidArgument("CreateContainer: pod_sandbox_id is required")
    if not config.metadata.name:
        raise InvalidArgument("CreateContainer: config.metadata.name is required")
    if not config.image.image:
        raise InvalidArgument("CreateContainer: config.image.image is required")
    names.check_container(config)
    pod = sandboxes.require(request.pod_sandbox_id)
    if pod.state != sandbox_records.READY:
        raise FailedPrecondition(f"pod sandbox {pod.id} is not ready; cannot add containers")
    meta = config.metadata
    existing = ctx.records.by_name(pod.id, meta.name, meta.attempt)
    if existing is not None:
        raise AlreadyExists(
            f"container {meta.name!r} (attempt {meta.attempt}) already exists in pod "
            f"{pod.id} as {existing.id}; remove it first")
    image = ctx.images.status(config.image.image)
    if image is None:
        raise NotFound(f"image {config.image.image!r} not found; pull it first")

    _check_handler_features(ctx, pod.runtime_handler, config)

    container_id = secrets.token_hex(32)
    bundle, layer_dir = ctx.bundle(container_id), ctx.layer_dir(container_id)
    monitor = ctx.monitor(pod.runtime_handler)
    async with contextlib.AsyncExitStack() as undo:
        with disk_full_under(bundle.parent, "creating the container's bundle"):
            bundle.mkdir(parents=True, mode=0o700)
        undo.push_async_callback(asyncio.to_thread, shutil.rmtree, bundle, True)
        undo.push_async_callback(asyncio.to_thread, rootfs.remove_layer, layer_dir)
        target = bundle / "rootfs"
        mapping = userns.of_pod(pod.config) if pod.namespaces.get("user") else None
        if mapping is not None:
            await asyncio.to_thread(_make_reachable, bundle, mapping.host_id)
        with disk_full_under(layer_dir.parent, "creating the container's writable layer"):
            await asyncio.to_thread(
                rootfs.mount, ctx.images.lower_dirs(image.id), layer_dir, target,
                userns=pod.namespaces.get("user", ""),
                root_id=mapping.host_id if mapping else 0)
        undo.push_async_callback(asyncio.to_thread, rootfs.unmount, target)
        spec_config = config  # the request's, with image volumes as binds of their mounts
        if image_volumes.uses_images(config):
            undo.push_async_callback(asyncio.to_thread, image_volumes.unmount_all, bundle)
            spec_config = await asyncio.to_thread(
                image_volumes.mount_all, config, ctx.images, bundle, None,
                pod.namespaces.get("user", ""))

        built = await asyncio.to_thread(
            # The pod's own config, never the copy in the request: that one
            # could claim, say, a privileged pod (containerd and cri-o do the same).
            build_spec, container_id, spec_config, pod.config,
            ImageConfig.from_json(image.config_json),
            _pod_facts(ctx, pod, config, image_volumes.premapped(config, spec_config)),
            str(target), image_name=config.image.image,
            passwd_group_limit=ctx.config.max_passwd_group_bytes,
        )
        if cdi_devices := cdi_names.requested(config):  # CDI devices: nodes, mounts, env, hooks
            await asyncio.to_thread(ctx.cdi.apply, built.spec, cdi_devices)
        # plugins adjust the spec before anyone can list it
        await ctx.hooks.create_container(pod, container_id, config, built.spec, undo)
        with disk_full_under(bundle, "writing the container's config.json"):
            private.write_text(bundle / "config.json", json.dumps(built.spec))  # env: secrets
        with disk_full_under(pod.config.log_directory, "making the container's log dir"):
            log_path = _log_path(pod, config, undo)

        # Before create: a runtime that fails part-way may leave its state and
        # the container's cgroup (even a process in it) behind.
        undo.push_async_callback(leftovers.forget_exit, monitor, bundle, container_id)
        undo.push_async_callback(leftovers.discard_runtime, [monitor], container_id,
                                 built.spec["linux"]["cgroupsPath"])
        created = await monitor.create(
            container_id, _monitor_name(pod, config), bundle, log_path,
            tty=config.tty, stdin=config.stdin, stdin_once=config.stdin_once)

        resolved = built.user
        container = Container(
            id=container_id, pod_id=pod.id, name=meta.name, attempt=meta.attempt,
            state=CREATED, created_ns=ctx.clock.now_ns(), handler=monitor.handler.name,
            image=config.image.image, image_ref=_image_ref(image), image_id=image.id,
            config_bytes=config.SerializeToString(),
            resources_bytes=config.linux.resources.SerializeToString(), log_path=str(log_path),
            bundle=str(bundle), layer_dir=str(layer_dir),
            user=User(resolved.uid, resolved.gid, tuple(resolved.additional_gids)),
            stop_signal=built.stop_signal, pid=created.pid, monitor_pid=created.monitor_pid,
        )
        await ctx.records.insert(container)
        undo.pop_all()
    ctx.watch(container)
    ctx.changed(container)
    log.info("container created", container_id=container_id, pod_sandbox_id=pod.id,
             name=meta.name, image=config.image.image)
    return api_pb2.CreateContainerResponse(container_id=container_id)


def _check_handler_features(ctx: Containers, handler: str,
                            config: api_pb2.ContainerConfig) -> None:
    """Refuse, before anything is made, what the pod's runtime handler cannot do."""
    features = ctx.features.of(handler)
    for mount in config.mounts:
        if (mount.uidMappings or mount.gidMappings) and not features.user_namespaces:
            raise InvalidArgument(
                f"id-mapped mount {mount.container_path}: runtime handler "
                f"{handler or ctx.config.default_handler!r} does not support idmapped mounts")
        if mount.recursive_read_only and not features.recursive_read_only_mounts:
            raise InvalidArgument(
                f"recursive read-only mount {mount.container_path}: runtime handler "
                f"{handler or ctx.config.default_handler!r} does not support it (its runtime "
                "lacks the rro mount option, or the kernel is older than 5.12)")


def _pod_facts(ctx: Containers, pod: Sandbox, config: api_pb2.ContainerConfig,
               premapped: set[str]) -> PodFacts:
    pod_dir = Path(pod.pod_dir)
    options = config.linux.security_context.namespace_options
    target = ""
    if options.pid == api_pb2.TARGET:
        target_container = ctx.require(options.target_id)
        if target_container.pod_id != pod.id or not target_container.pid:
            raise InvalidArgument(
                f"target container {options.target_id!r} is not a running container of pod "
                f"{pod.id}")
        target = f"/proc/{target_container.pid}/ns/pid"
    mapping = userns.of_pod(pod.config) if pod.namespaces.get("user") else None
    return PodFacts(
        pod.id,
        net_ns_path=pod.namespaces.get("net"),
        ipc_ns_path=pod.namespaces.get("ipc"),
        uts_ns_path=pod.namespaces.get("uts"),
        user_ns_path=pod.namespaces.get("user"),
        id_mapping=((mapping.container_id, mapping.host_id, mapping.length),) if mapping else (),
        premapped=frozenset(premapped) if mapping else frozenset(),
        pid_ns_path=f"/proc/{pod.infra.pid}/ns/pid" if pod.infra else None,
        target_pid_ns_path=target or None,
        resolv_conf_path=str(pod_dir / "resolv.conf"),
        hosts_path=str(pod_dir / "hosts"),
        hostname_path=str(pod_dir / "hostname"),
        shm_path=pod.shm,
        cgroup_parent=pod.cgroup_parent,
    )


def _log_path(pod: Sandbox, config: api_pb2.ContainerConfig,
              undo: contextlib.AsyncExitStack) -> Path:
    """kubelet's log file: the pod's log directory joined with the container's log path.

    A failed create takes away the file (conmon makes it) and the dirs made
    for it, unless they were there before.
    """
    directory, name = pod.config.log_directory, config.log_path
    if not directory or not name:
        # No place asked for: keep the log beside the bundle so conmon has one.
        return Path("/dev/null")
    path = Path(directory) / name
    if not path.is_absolute() or ".." in Path(name).parts:
        raise InvalidArgument(f"log path {path} must be absolute and stay inside "
                              f"{directory}")
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in reversed(made):  # the undo stack runs last-in first: deepest dir first
        undo.callback(_remove_empty_dir, parent)
    if not path.exists():
        undo.callback(path.unlink, True)
    return path


def _make_reachable(bundle: Path, root_gid: int) -> None:
    """Let a user namespace's root (to the host, an unprivileged uid) walk the
    path to the rootfs: search (x) for others on each dir above the bundle
    that lacks it, as cri-o does; no dir becomes readable. The runtime's init
    resolves its rootfs and its mount targets by path from inside. The bundle
    itself only opens to the pod's root group: it holds conmon's control
    FIFOs and attach socket, which no other user of the node may reach."""
    os.chown(bundle, -1, root_gid)
    bundle.chmod(stat.S_IMODE(bundle.stat().st_mode) | stat.S_IXGRP)
    for directory in bundle.parents:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _remove_empty_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _monitor_name(pod: Sandbox, config: api_pb2.ContainerConfig) -> str:
    m = config.metadata
    return f"k8s_{m.name}_{pod.name}_{pod.namespace}_{pod.uid}_{m.attempt}"


def _image_ref(image: object) -> str:
    digests = getattr(image, "repo_digests", ())
    return str(digests[0]) if digests else str(getattr(image, "id", ""))
