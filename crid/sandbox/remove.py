"""RemovePodSandbox: remove the containers, unpin, delete dirs, cgroup and row.

A pod that is still ready is stopped first. An unknown id is fine. A CNI DEL
still pending from stop is tried once more; if it fails again the pod is
removed anyway (a broken plugin must not pin a pod forever) and the failure
is logged for the operator.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs
from crid.oci.cgroups.pod import Cgroup
from crid.sandbox import records
from crid.sandbox.context import DELETED, Sandboxes, release_pod_dir
from crid.sandbox.stop import detach, stop_sandbox

log = logs.get("crid.sandbox")


async def remove(ctx: Sandboxes, request: api_pb2.RemovePodSandboxRequest
                 ) -> api_pb2.RemovePodSandboxResponse:
    found = ctx.find(request.pod_sandbox_id)
    if found is None:
        return api_pb2.RemovePodSandboxResponse()
    async with ctx.lock(found.id):
        sandbox = ctx.records.get(found.id)
        if sandbox is None:
            return api_pb2.RemovePodSandboxResponse()
        if sandbox.state == records.READY:
            await stop_sandbox(ctx, sandbox)
            sandbox = ctx.records.get(sandbox.id) or sandbox
        await ctx.pod_containers.remove(sandbox.id)
        if sandbox.network_pending and not await detach(ctx, sandbox):
            log.error("removing pod whose network teardown failed twice", pod=sandbox.id)
            ctx.network.cache.delete(sandbox.id)
        await asyncio.to_thread(_release, sandbox)
        await ctx.records.delete(sandbox.id)
    ctx.forget_lock(sandbox.id)
    log.info("pod sandbox removed", pod=sandbox.id)
    ctx.changed(sandbox, DELETED)
    return api_pb2.RemovePodSandboxResponse()


def _release(sandbox: records.Sandbox) -> None:
    release_pod_dir(Path(sandbox.pod_dir))
    if sandbox.cgroup_owned:
        # The pod's containers are gone: anything still in its cgroup is a leak.
        Cgroup(sandbox.cgroup_parent).kill_and_remove()
