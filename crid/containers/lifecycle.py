"""StartContainer, StopContainer, RemoveContainer, and the pod's hooks for them.

Stop and remove follow the CRI's idempotence: an unknown or already stopped
container is fine. Stop sends the container's stop signal, waits the
timeout, then SIGKILLs every process in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs
from crid.containers import rootfs
from crid.containers.context import Containers
from crid.containers.monitor import Monitor, RuntimeFailed
from crid.containers.records import (
    CREATED,
    EXITED,
    RUNNING,
    UNKNOWN,
    Container,
    ContainerRecords,
)
from crid.errors import FailedPrecondition
from crid.oci.signals import killed_by

log = logs.get("crid.containers")
KILL_WAIT = 10.0


async def start(ctx: Containers, request: api_pb2.StartContainerRequest
                ) -> api_pb2.StartContainerResponse:
    container = ctx.require(request.container_id)
    async with ctx.lock(container.id):
        container = ctx.require(container.id)
        if container.state != CREATED:
            raise FailedPrecondition(
                f"container {container.id} is {container.state}; only a created container "
                "can be started")
        await ctx.hooks.start_container(container)
        monitor = ctx.monitor(container.handler)
        try:
            await monitor.start(container.id)
        except RuntimeFailed:
            ctx.refresh(container)
            raise
        started = record_started(ctx.records, container.id, ctx.clock.now_ns())
    if started is not None and started.state == RUNNING:  # else its exit was told already
        ctx.changed(started)
    return api_pb2.StartContainerResponse()


def record_started(records: ContainerRecords, container_id: str, now_ns: int
                   ) -> Container | None:
    """RUNNING from now, unless a status call read the exit file while the runtime
    was starting it: a recorded exit is never overwritten, only dated."""
    current = records.get(container_id)
    if current is not None and current.state == EXITED:
        started_ns = min(now_ns, current.finished_ns or now_ns)
        return records.update(container_id, started_ns=started_ns)
    return records.update(container_id, state=RUNNING, started_ns=now_ns)


async def stop(ctx: Containers, request: api_pb2.StopContainerRequest
               ) -> api_pb2.StopContainerResponse:
    container = ctx.find(request.container_id)
    if container is not None:
        await stop_container(ctx, container, request.timeout)
    return api_pb2.StopContainerResponse()


async def stop_container(ctx: Containers, container: Container, timeout: float) -> None:
    async with ctx.lock(container.id):
        current = ctx.find(container.id)
        if current is not None and current.state == UNKNOWN:
            await _stop_unmonitored(ctx, current)
            return
        if current is None or current.state not in (CREATED, RUNNING):
            return
        monitor = ctx.monitor(current.handler)
        if timeout > 0 and current.state == RUNNING:
            signum = signal.Signals[current.stop_signal]
            with contextlib.suppress(RuntimeFailed):  # it may exit under our feet
                await monitor.kill(current.id, signum)
            if await ctx.wait_exited(current.id, timeout):
                return
            log.info("container ignored its stop signal; killing it",
                     container_id=current.id, signal=current.stop_signal, timeout=timeout)
        with contextlib.suppress(RuntimeFailed):
            await monitor.kill(current.id, signal.SIGKILL, all_processes=True)
        if not await ctx.wait_exited(current.id, KILL_WAIT):
            raise FailedPrecondition(
                f"container {current.id} did not exit {KILL_WAIT:.0f}s after SIGKILL")


async def _stop_unmonitored(ctx: Containers, container: Container) -> None:
    """Stop a container whose conmon vanished: its process may still run.

    Nobody is left to record the exit, so once the runtime says it stopped
    the exit is recorded here: 137 when our SIGKILL ended it.
    """
    monitor = ctx.monitor(container.handler)
    try:
        await monitor.kill(container.id, signal.SIGKILL, all_processes=True)
        killed = True
    except RuntimeFailed:  # not running any more, or unknown to the runtime
        killed = False
    deadline = asyncio.get_running_loop().time() + KILL_WAIT
    while await _runtime_status(monitor, container.id) in ("running", "created", "paused"):
        if asyncio.get_running_loop().time() > deadline:
            raise FailedPrecondition(
                f"container {container.id} did not exit {KILL_WAIT:.0f}s after SIGKILL")
        await asyncio.sleep(0.05)
    fields = {"exit_code": killed_by(signal.SIGKILL)} if killed else {}
    ctx.changed(ctx.records.update(container.id, state=EXITED, finished_ns=ctx.clock.now_ns(),
                                   **fields))


async def _runtime_status(monitor: Monitor, container_id: str) -> str:
    try:
        return str((await monitor.state(container_id)).get("status", ""))
    except RuntimeFailed:
        return ""


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
        await asyncio.to_thread(rootfs.remove_bundle, Path(container.bundle))
        await asyncio.to_thread(rootfs.remove_layer, Path(container.layer_dir))
        monitor.forget(container.id)
        ctx.records.delete(container.id)
    ctx.unwatch(container.id)
    ctx.changed(container)  # listeners see the last state of a container now gone
    log.info("container removed", container_id=container.id)


async def stop_pod_containers(ctx: Containers, pod_id: str) -> None:
    await asyncio.gather(*(stop_container(ctx, c, 0) for c in ctx.records.of_pod(pod_id)))


async def remove_pod_containers(ctx: Containers, pod_id: str) -> None:
    await asyncio.gather(*(remove_container(ctx, c) for c in ctx.records.of_pod(pod_id)))
