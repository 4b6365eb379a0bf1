"""The streaming list calls (k8s 1.36): the list calls' items, sent in batches.

Each returns exactly what its list call returns, cut into responses of at
most ``BATCH`` items, so a full node never needs one huge message. The stats
ones live with the stats family (they share its CPU rate samples).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from cri_api.v1 import api_pb2
from google.protobuf.message import Message

from crid.api import stream_lists
from crid.containers import status as container_status
from crid.containers.context import Containers
from crid.image.calls import ImageCalls
from crid.sandbox import status as sandbox_status
from crid.sandbox.context import Sandboxes

BATCH = 100


async def batches(rpc: str, items: Sequence[Any], size: int = BATCH
                  ) -> AsyncIterator[Message]:
    """``items`` as responses of ``rpc``; one empty response when there are none, so a
    client reading the first message learns the answer is empty."""
    response = stream_lists.message(f"{rpc}Response")
    field = stream_lists.item_field(rpc)
    for start in range(0, max(len(items), 1), size):
        message = response()
        getattr(message, field).extend(items[start:start + size])
        yield message


class StreamLists:
    def __init__(self, containers: Containers, sandboxes: Sandboxes,
                 images: ImageCalls) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.images = images

    async def StreamPodSandboxes(self, request: Any) -> AsyncIterator[Message]:
        found = sandbox_status.list_sandboxes(
            self.sandboxes, api_pb2.ListPodSandboxRequest(filter=request.filter))
        async for message in batches("StreamPodSandboxes", found.items):
            yield message

    async def StreamContainers(self, request: Any) -> AsyncIterator[Message]:
        found = await container_status.list_containers(
            self.containers, api_pb2.ListContainersRequest(filter=request.filter))
        async for message in batches("StreamContainers", found.containers):
            yield message

    async def StreamImages(self, request: Any) -> AsyncIterator[Message]:
        found = await self.images.ListImages(api_pb2.ListImagesRequest(filter=request.filter))
        async for message in batches("StreamImages", found.images):
            yield message
