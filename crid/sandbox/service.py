"""The pod sandbox call family: each RPC delegates to its module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cri_api.v1 import api_pb2

from crid.sandbox import remove, run, status, stop, update
from crid.sandbox.context import Sandboxes


class PodSandboxes:
    def __init__(self, sandboxes: Sandboxes) -> None:
        self.sandboxes = sandboxes

    async def RunPodSandbox(self, request: api_pb2.RunPodSandboxRequest
                            ) -> api_pb2.RunPodSandboxResponse:
        return await run.run(self.sandboxes, request)

    async def StopPodSandbox(self, request: api_pb2.StopPodSandboxRequest
                             ) -> api_pb2.StopPodSandboxResponse:
        return await stop.stop(self.sandboxes, request)

    async def RemovePodSandbox(self, request: api_pb2.RemovePodSandboxRequest
                               ) -> api_pb2.RemovePodSandboxResponse:
        return await remove.remove(self.sandboxes, request)

    async def PodSandboxStatus(self, request: api_pb2.PodSandboxStatusRequest
                               ) -> api_pb2.PodSandboxStatusResponse:
        return await status.status(self.sandboxes, request)

    def inline_calls(self) -> dict[str, Callable[[Any], Any]]:
        """Calls the gRPC layer may answer outside the loop (``crid.grpc_server``):
        the listing reads the records' locked copy and the infra pidfds only."""
        return {"ListPodSandbox": lambda request: status.list_sandboxes(self.sandboxes, request)}

    async def ListPodSandbox(self, request: api_pb2.ListPodSandboxRequest
                             ) -> api_pb2.ListPodSandboxResponse:
        return status.list_sandboxes(self.sandboxes, request)

    async def UpdatePodSandboxResources(
        self, request: api_pb2.UpdatePodSandboxResourcesRequest
    ) -> api_pb2.UpdatePodSandboxResourcesResponse:
        return await update.update_resources(self.sandboxes, request)
