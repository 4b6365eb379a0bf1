"""The streaming list calls' messages: api/cri_supplement.proto on the CRI's own types."""

from __future__ import annotations

import asyncio

import pytest
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


# What the hand-built descriptor this module replaced wrote for these messages
# (recorded from it): the .proto keeps the wire format byte for byte.
_FILTERS_AND_ITEMS = {
    "StreamContainers": (api_pb2.ContainerFilter(id="x", label_selector={"a": "b"}),
                         api_pb2.Container(id="c", labels={"k": "v"}),
                         "0a0b0a017822060a0161120162",
                         "0a0b0a016342060a016b1201760a0b0a016342060a016b120176"),
    "StreamImages": (api_pb2.ImageFilter(image=api_pb2.ImageSpec(image="i")),
                     api_pb2.Image(id="i", size=5),
                     "0a050a030a0169", "0a050a016920050a050a01692005"),
    "StreamPodSandboxes": (api_pb2.PodSandboxFilter(id="p"),
                           api_pb2.PodSandbox(id="p", state=api_pb2.SANDBOX_NOTREADY),
                           "0a030a0170", "0a050a017018010a050a01701801"),
    "StreamContainerStats": (api_pb2.ContainerStatsFilter(id="s"),
                             api_pb2.ContainerStats(attributes=api_pb2.ContainerAttributes(id="s")),
                             "0a030a0173", "0a050a030a01730a050a030a0173"),
    "StreamPodSandboxStats": (api_pb2.PodSandboxStatsFilter(id="s"),
                              api_pb2.PodSandboxStats(
                                  attributes=api_pb2.PodSandboxAttributes(id="s")),
                              "0a030a0173", "0a050a030a01730a050a030a0173"),
}


@pytest.mark.parametrize("rpc", sorted(_FILTERS_AND_ITEMS))
def test_wire_bytes_are_those_of_the_hand_built_descriptor(rpc: str) -> None:
    filter_, item, request_hex, response_hex = _FILTERS_AND_ITEMS[rpc]
    request = stream_lists.message(f"{rpc}Request")(filter=filter_)
    response = stream_lists.message(f"{rpc}Response")(
        **{stream_lists.item_field(rpc): [item, item]})
    assert request.SerializeToString().hex() == request_hex
    assert response.SerializeToString().hex() == response_hex
    again = stream_lists.message(f"{rpc}Response").FromString(bytes.fromhex(response_hex))
    assert list(getattr(again, stream_lists.item_field(rpc))) == [item, item]


def test_pod_sandbox_metrics_take_no_filter() -> None:
    assert stream_lists.message("StreamPodSandboxMetricsRequest")().SerializeToString() == b""
    response = stream_lists.message("StreamPodSandboxMetricsResponse")(
        pod_sandbox_metrics=[api_pb2.PodSandboxMetrics(pod_sandbox_id="m")])
    assert response.SerializeToString().hex() == "0a030a016d"
