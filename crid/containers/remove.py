"""RemoveContainer, and removing every container of a pod when the pod goes.

Removal stops the container first (SIGKILL, no grace), then deletes it from
the runtime, its bundle, its writable layer and its record; an unknown
container is fine, as the CRI's idempotence asks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs
from crid.containers import rootfs
from crid.containers.context import Containers
from crid.containers.records import Container
from crid.containers.stop import stop_container

log = logs.get("crid.containers")


async def remove(ctx: Containers, request: api_pb2.RemoveContainerRequest
                 ) -> api_pb2.RemoveContainerResponse:
    container = ctx.find(request.container_id)
    if container is not None:
        await remove_container(ctx, container)
    return api_pb2.RemoveContainerResponse()


async def remove_container(ctx: Containers, container: Container) -> None:
    await stop_container(ctx, container, 0)
    async with ctx.lock(container.id):
        monitor = ctx.monitor(container.handler)
        await monitor.delete(container.id, force=True)
        # One trip to a worker thread for both: under load each trip back
        # waits for the loop behind other calls.
        await asyncio.to_thread(_remove_files, container)
        # The row goes before the exit file: a crash between them leaves no
        # row, rather than a row whose exit is lost.
        await ctx.records.delete(container.id)
        monitor.forget(container.id)
    ctx.unwatch(container.id)
    ctx.changed(container)  # listeners see the last state of a container now gone
    log.info("container removed", container_id=container.id)


def _remove_files(container: Container) -> None:
    rootfs.remove_bundle(Path(container.bundle))
    rootfs.remove_layer(Path(container.layer_dir))


async def remove_pod_containers(ctx: Containers, pod_id: str) -> None:
    await asyncio.gather(*(remove_container(ctx, c) for c in ctx.records.of_pod(pod_id)))
