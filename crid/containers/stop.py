"""StopContainer, and stopping every container of a pod when the pod stops.

Stop follows the CRI's idempotence: an unknown or already stopped
container is fine. Stop sends the container's stop signal, waits the
timeout, then SIGKILLs every process in it. A container it stopped gives
its rootfs overlay back at once, as cri-o and containerd do: kubelet keeps
exited containers (for their logs) until it collects them, and they need
no mount meanwhile; the writable layer stays, and RemoveContainer removes it.
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
from crid.containers.records import CREATED, EXITED, RUNNING, UNKNOWN, Container
from crid.errors import FailedPrecondition
from crid.oci.signals import killed_by

log = logs.get("crid.containers")
KILL_WAIT = 10.0


async def stop(ctx: Containers, request: api_pb2.StopContainerRequest
               ) -> api_pb2.StopContainerResponse:
    container = ctx.find(request.container_id)
    if container is not None:
        await stop_container(ctx, container, request.timeout)
    return api_pb2.StopContainerResponse()


async def stop_container(ctx: Containers, container: Container, timeout: float) -> None:
    async with ctx.lock(container.id):
        current = ctx.find(container.id)
        if current is None or current.state not in (CREATED, RUNNING, UNKNOWN):
            return
        await _stop(ctx, current, timeout)
        # Unmounting an overlay syncs its upper dir: a worker thread's wait.
        await asyncio.to_thread(rootfs.unmount, Path(current.bundle) / "rootfs")


async def _stop(ctx: Containers, current: Container, timeout: float) -> None:
    if current.state == UNKNOWN:
        await _stop_unmonitored(ctx, current)
        return
    monitor = ctx.monitor(current.handler)
    if timeout > 0 and current.state == RUNNING:
        signum = signal.Signals[current.stop_signal]
        with contextlib.suppress(RuntimeFailed):  # it may exit under our feet
            await monitor.kill(current.id, signum)
        if await ctx.wait_exited(current.id, timeout):
            await _stop_if_unmonitored(ctx, current.id)
            return
        log.info("container ignored its stop signal; killing it",
                 container_id=current.id, signal=current.stop_signal, timeout=timeout)
    with contextlib.suppress(RuntimeFailed):
        await monitor.kill(current.id, signal.SIGKILL, all_processes=True)
    if not await ctx.wait_exited(current.id, KILL_WAIT):
        raise FailedPrecondition(
            f"container {current.id} did not exit {KILL_WAIT:.0f}s after SIGKILL")
    await _stop_if_unmonitored(ctx, current.id)


async def _stop_if_unmonitored(ctx: Containers, container_id: str) -> None:
    """The wait for an exit also ends when conmon vanishes (UNKNOWN): then the
    process may still run, and a stop that succeeds must leave it EXITED."""
    now = ctx.find(container_id)
    if now is not None and now.state == UNKNOWN:
        await _stop_unmonitored(ctx, now)


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
    ctx.changed(await ctx.records.update(container.id, state=EXITED,
                                         finished_ns=ctx.clock.now_ns(), **fields))


async def _runtime_status(monitor: Monitor, container_id: str) -> str:
    try:
        return str((await monitor.state(container_id)).get("status", ""))
    except RuntimeFailed:
        return ""


async def stop_pod_containers(ctx: Containers, pod_id: str) -> None:
    await asyncio.gather(*(stop_container(ctx, c, 0) for c in ctx.records.of_pod(pod_id)))

