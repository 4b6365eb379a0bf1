"""StartContainer: a created container's process is started by its monitor.

A status call may read the exit file while the runtime is still starting the
process; ``record_started`` keeps that exit rather than overwrite it.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.monitor import RuntimeFailed
from crid.containers.records import (
    CREATED,
    EXITED,
    RUNNING,
    UNKNOWN,
    Container,
    ContainerRecords,
)
from crid.errors import FailedPrecondition


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
        started = await record_started(ctx.records, container.id, ctx.clock.now_ns())
    if started is not None and started.state == RUNNING:  # else its exit was told already
        ctx.changed(started)
    return api_pb2.StartContainerResponse()


async def record_started(records: ContainerRecords, container_id: str, now_ns: int
                         ) -> Container | None:
    """RUNNING from now, unless a status call read the exit file while the runtime
    was starting it, or conmon vanished meanwhile (UNKNOWN: nobody would record
    the exit, and a stop must take the unmonitored path): that is never
    overwritten, only dated."""
    current = records.get(container_id)
    if current is not None and current.state in (EXITED, UNKNOWN):
        started_ns = min(now_ns, current.finished_ns or now_ns)
        return await records.update(container_id, started_ns=started_ns)
    return await records.update(container_id, state=RUNNING, started_ns=now_ns)
