"""StopPodSandbox: stop the containers, tear the network down, stop the infra process.

Idempotent: an unknown or already stopped pod is fine. A CNI DEL that fails
is logged and marked on the row (``network_pending``), to be tried again on
the next stop or on remove; it never leaves the pod unstoppable.
The namespaces stay pinned until RemovePodSandbox.
"""

from __future__ import annotations

import asyncio

from cri_api.v1 import api_pb2

from crid import logs
from crid.errors import CridError
from crid.sandbox import records
from crid.sandbox.context import STOPPED, Sandboxes

log = logs.get("crid.sandbox")


async def stop(ctx: Sandboxes, request: api_pb2.StopPodSandboxRequest
               ) -> api_pb2.StopPodSandboxResponse:
    found = ctx.find(request.pod_sandbox_id)
    if found is not None:
        async with ctx.lock(found.id):
            current = ctx.records.get(found.id)
            if current is not None:
                await stop_sandbox(ctx, current)
    return api_pb2.StopPodSandboxResponse()


async def stop_sandbox(ctx: Sandboxes, sandbox: records.Sandbox) -> None:
    """Bring ``sandbox`` to NOTREADY; call with its lock held."""
    ctx.unwatch_infra(sandbox.id)  # its infra is about to die at our hands
    await ctx.pod_containers.stop(sandbox.id)
    if sandbox.state == records.READY or sandbox.network_pending:
        # Containers stopped, pod still listable. A pending network is a pod
        # whose infra died (NOTREADY, never stopped: plugins still hold it) or
        # whose last teardown failed (they hear of the stop again).
        await ctx.hooks.stop_pod(sandbox)
    if sandbox.infra is not None:
        await asyncio.to_thread(ctx.infra.stop, sandbox.infra)
    pending = sandbox.network_pending
    if sandbox.netns and (sandbox.state == records.READY or pending):
        pending = not await detach(ctx, sandbox)
    if sandbox.state != records.NOTREADY or pending != sandbox.network_pending:
        await ctx.records.update(sandbox.id, state=records.NOTREADY,
                                 network_pending=pending)
        log.info("pod sandbox stopped", pod=sandbox.id, network_pending=pending)
        if sandbox.state == records.READY:
            ctx.changed(ctx.records.get(sandbox.id) or sandbox, STOPPED)


async def detach(ctx: Sandboxes, sandbox: records.Sandbox) -> bool:
    """CNI DEL; False (logged) when it failed."""
    try:
        await ctx.network.delete(ctx.pod_network(sandbox))
    except CridError as exc:
        log.warning("pod network teardown failed; will retry", pod=sandbox.id, error=exc.message)
        return False
    return True
