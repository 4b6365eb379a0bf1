"""The container call family: each RPC delegates to the module that owns it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cri_api.v1 import api_pb2

from crid.containers import (
    attach,
    checkpoint,
    create,
    exec_sync,
    port_forward,
    remove,
    reopen_log,
    start,
    status,
    stop,
    update,
)
from crid.containers import exec as exec_call
from crid.containers.context import Containers
from crid.sandbox.context import Sandboxes
from crid.streaming.server import StreamingServer


class ContainerCalls:
    def __init__(self, containers: Containers, sandboxes: Sandboxes,
                 streaming: StreamingServer) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.streaming = streaming

    async def CreateContainer(self, request: api_pb2.CreateContainerRequest
                              ) -> api_pb2.CreateContainerResponse:
        return await create.create(self.containers, self.sandboxes, request)

    async def StartContainer(self, request: api_pb2.StartContainerRequest
                             ) -> api_pb2.StartContainerResponse:
        return await start.start(self.containers, request)

    async def StopContainer(self, request: api_pb2.StopContainerRequest
                            ) -> api_pb2.StopContainerResponse:
        return await stop.stop(self.containers, request)

    async def RemoveContainer(self, request: api_pb2.RemoveContainerRequest
                              ) -> api_pb2.RemoveContainerResponse:
        return await remove.remove(self.containers, request)

    async def ContainerStatus(self, request: api_pb2.ContainerStatusRequest
                              ) -> api_pb2.ContainerStatusResponse:
        return await status.status(self.containers, request)

    def inline_calls(self) -> dict[str, Callable[[Any], Any]]:
        """Calls the gRPC layer may answer outside the loop (``crid.grpc_server``):
        an unchanged listing, which reads nothing but the cache, and the status
        of a container with no exit to record."""
        return {"ListContainers": lambda request: status.cached_listing(self.containers, request),
                "ContainerStatus": lambda request: status.inline_status(self.containers, request)}

    async def ListContainers(self, request: api_pb2.ListContainersRequest
                             ) -> api_pb2.ListContainersResponse:
        return await status.list_containers(self.containers, request)

    async def ExecSync(self, request: api_pb2.ExecSyncRequest) -> api_pb2.ExecSyncResponse:
        return await exec_sync.exec_sync(self.containers, request)

    async def ReopenContainerLog(self, request: api_pb2.ReopenContainerLogRequest
                                 ) -> api_pb2.ReopenContainerLogResponse:
        return await reopen_log.reopen_log(self.containers, request)

    async def CheckpointContainer(self, request: api_pb2.CheckpointContainerRequest
                                  ) -> api_pb2.CheckpointContainerResponse:
        return await checkpoint.checkpoint(request)

    async def UpdateContainerResources(
        self, request: api_pb2.UpdateContainerResourcesRequest
    ) -> api_pb2.UpdateContainerResourcesResponse:
        return await update.update(self.containers, request)

    # --- streaming: a one-time URL on the streaming server --------------------

    async def Exec(self, request: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
        return await exec_call.exec_url(self.containers, self.streaming, request)

    async def Attach(self, request: api_pb2.AttachRequest) -> api_pb2.AttachResponse:
        return await attach.attach_url(self.containers, self.streaming, request)

    async def PortForward(self, request: api_pb2.PortForwardRequest
                          ) -> api_pb2.PortForwardResponse:
        return await port_forward.port_forward_url(self.sandboxes, self.streaming, request)
