"""The streaming list calls' messages, built in code on the CRI's own types."""

from __future__ import annotations

import asyncio

from cri_api.v1 import api_pb2
from crid.api import stream_lists

from crid.stream_calls import batches


def test_messages_reuse_the_cri_types_and_keep_the_wire_format() -> None:
    request = stream_lists.message("StreamContainersRequest")(
        filter=api_pb2.ContainerFilter(id="abc"))
    response = stream_lists.message("StreamContainersResponse")(
        containers=[api_pb2.Container(id="abc")])
    # Field 1 of each, encoded as the CRI's list messages encode theirs.
    assert request.SerializeToString() == api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(id="abc")).SerializeToString()
    assert response.SerializeToString() == api_pb2.ListContainersResponse(
        containers=[api_pb2.Container(id="abc")]).SerializeToString()


def test_rpcs_are_server_streaming_on_the_cri_services() -> None:
    paths = {r.path for r in stream_lists.rpcs()}
    assert "/runtime.v1.RuntimeService/StreamPodSandboxMetrics" in paths
    assert "/runtime.v1.ImageService/StreamImages" in paths
    assert all(r.server_streaming for r in stream_lists.rpcs())
    assert stream_lists.item_field("StreamPodSandboxStats") == "pod_sandbox_stats"


def test_items_are_sent_in_batches_and_nothing_is_one_empty_batch() -> None:
    async def collect(count: int) -> list[int]:
        items = [api_pb2.Image(id=str(n)) for n in range(count)]
        return [len(m.images) async for m in batches("StreamImages", items, size=2)]  # type: ignore[attr-defined]

    assert asyncio.run(collect(5)) == [2, 2, 1]
    assert asyncio.run(collect(0)) == [0]
