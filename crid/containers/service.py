"""The container call family: each RPC delegates to the module that owns it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cri_api.v1 import api_pb2

from crid.containers import create, exec_sync, lifecycle, status
from crid.containers.context import Containers
from crid.containers.exec_sync import require_running
from crid.errors import NotFound, Unimplemented
from crid.sandbox.context import Sandboxes
from crid.streaming import tokens
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
        return await lifecycle.start(self.containers, request)

    async def StopContainer(self, request: api_pb2.StopContainerRequest
                            ) -> api_pb2.StopContainerResponse:
        return await lifecycle.stop(self.containers, request)

    async def RemoveContainer(self, request: api_pb2.RemoveContainerRequest
                              ) -> api_pb2.RemoveContainerResponse:
        return await lifecycle.remove(self.containers, request)

    async def ContainerStatus(self, request: api_pb2.ContainerStatusRequest
                              ) -> api_pb2.ContainerStatusResponse:
        return await status.status(self.containers, request)

    def inline_calls(self) -> dict[str, Callable[[Any], Any]]:
        """Calls the gRPC layer may answer outside the loop (``crid.grpc_server``):
        only an unchanged listing, which reads nothing but the cache."""
        return {"ListContainers": lambda request: status.cached_listing(self.containers, request)}

    async def ListContainers(self, request: api_pb2.ListContainersRequest
                             ) -> api_pb2.ListContainersResponse:
        return await status.list_containers(self.containers, request)

    async def ExecSync(self, request: api_pb2.ExecSyncRequest) -> api_pb2.ExecSyncResponse:
        return await exec_sync.exec_sync(self.containers, request)

    async def ReopenContainerLog(self, request: api_pb2.ReopenContainerLogRequest
                                 ) -> api_pb2.ReopenContainerLogResponse:
        return await exec_sync.reopen_log(self.containers, request)

    async def CheckpointContainer(self, request: api_pb2.CheckpointContainerRequest
                                  ) -> api_pb2.CheckpointContainerResponse:
        raise Unimplemented(
            "CheckpointContainer is not supported by crid: checkpointing needs CRIU, which "
            "neither runc's nor crid-runtime's integration here provides; restart the pod "
            "instead of migrating it")

    async def UpdateContainerResources(
        self, request: api_pb2.UpdateContainerResourcesRequest
    ) -> api_pb2.UpdateContainerResourcesResponse:
        hooks = self.containers.hooks
        # plugins see the update first and may amend or refuse it
        request = await hooks.update_container(request)
        response = await exec_sync.update_resources(self.containers, request)
        hooks.container_updated(request.container_id)
        return response

    # --- streaming: a one-time URL on the streaming server --------------------

    async def Exec(self, request: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
        container = require_running(self.containers, request.container_id, "Exec")
        return api_pb2.ExecResponse(url=self.streaming.url_for(tokens.ExecRequest(
            container.id, tuple(request.cmd), tty=request.tty, stdin=request.stdin,
            stdout=request.stdout, stderr=request.stderr)))

    async def Attach(self, request: api_pb2.AttachRequest) -> api_pb2.AttachResponse:
        container = require_running(self.containers, request.container_id, "Attach")
        return api_pb2.AttachResponse(url=self.streaming.url_for(tokens.AttachRequest(
            container.id, tty=request.tty, stdin=request.stdin, stdout=request.stdout,
            stderr=request.stderr)))

    async def PortForward(self, request: api_pb2.PortForwardRequest
                          ) -> api_pb2.PortForwardResponse:
        pod = self.sandboxes.find(request.pod_sandbox_id)
        if pod is None:
            raise NotFound(f"pod sandbox {request.pod_sandbox_id!r} not found")
        return api_pb2.PortForwardResponse(url=self.streaming.url_for(
            tokens.PortForwardRequest(pod.id, tuple(request.port))))
