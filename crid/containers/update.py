"""UpdateContainerResources: new cgroup limits for a created or running container.

NRI plugins see the request first and may amend or refuse it; an update an NRI
plugin asks for itself applies directly (``update_resources``), without that round.
"""

from __future__ import annotations

from pathlib import Path

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.records import CREATED, RUNNING
from crid.errors import FailedPrecondition
from crid.oci.spec.host import Host
from crid.oci.spec.resources import linux_resources


async def update(ctx: Containers, request: api_pb2.UpdateContainerResourcesRequest
                 ) -> api_pb2.UpdateContainerResourcesResponse:
    # plugins see the update first and may amend or refuse it
    request = await ctx.hooks.update_container(request)
    response = await update_resources(ctx, request)
    ctx.hooks.container_updated(request.container_id)
    return response


async def update_resources(ctx: Containers, request: api_pb2.UpdateContainerResourcesRequest
                           ) -> api_pb2.UpdateContainerResourcesResponse:
    container = ctx.require(request.container_id)
    if container.state not in (RUNNING, CREATED):
        raise FailedPrecondition(
            f"UpdateContainerResources: container {container.id} is {container.state}")
    resources = request.linux
    async with ctx.lock(container.id):
        await ctx.monitor(container.handler).update(
            container.id, linux_resources(resources, Host()), Path(container.bundle))
        await ctx.records.update(container.id, resources_bytes=resources.SerializeToString())
    return api_pb2.UpdateContainerResourcesResponse()
