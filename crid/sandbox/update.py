"""UpdatePodSandboxResources: new pod-level limits on the pod cgroup."""

from __future__ import annotations

import asyncio

from cri_api.v1 import api_pb2

from crid.oci.cgroups.pod import Cgroup
from crid.sandbox.context import Sandboxes


async def update_resources(ctx: Sandboxes, request: api_pb2.UpdatePodSandboxResourcesRequest
                           ) -> api_pb2.UpdatePodSandboxResourcesResponse:
    sandbox = ctx.require(request.pod_sandbox_id)
    resources = [request.resources if request.HasField("resources") else None,
                 request.overhead if request.HasField("overhead") else None]
    async with ctx.lock(sandbox.id):
        # plugins see the new pod resources first and may refuse them
        await ctx.hooks.update_pod(sandbox, request)
        await asyncio.to_thread(Cgroup(sandbox.cgroup_parent).apply, resources)
    ctx.hooks.pod_updated(sandbox)
    return api_pb2.UpdatePodSandboxResourcesResponse()
