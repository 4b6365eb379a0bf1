"""The streaming list calls, the daemon's Prometheus metrics, and the small calls
(UpdateRuntimeConfig, CheckpointContainer)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from crid.api import stream_lists
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import WSClient, get_websocket_url
from prometheus_client.parser import text_string_to_metric_families

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import wait_state
from e2e.stats.helpers import eventually, run

MIB = 1024 * 1024


def stream(env: Env, service: str, rpc: str, request: Any) -> list[Any]:
    """Every item of a Stream* call, batches joined."""
    with grpc.insecure_channel(f"unix://{env.daemon.socket}") as channel:
        call: Any = channel.unary_stream(
            f"/runtime.v1.{service}/{rpc}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=stream_lists.message(f"{rpc}Response").FromString)
        field = stream_lists.item_field(rpc)
        return [item for response in call(request) for item in getattr(response, field)]


def request(rpc: str, **fields: Any) -> Any:
    return stream_lists.message(f"{rpc}Request")(**fields)


def test_stream_calls_return_what_the_list_calls_return(env: Env, pod: Pod) -> None:
    d = env.daemon
    cids = [run(env, pod, "exec sleep 600", labels={"n": str(i)}) for i in range(3)]
    listed = d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    assert stream(env, "RuntimeService", "StreamContainers",
                  request("StreamContainers")) == list(listed)
    only = api_pb2.ContainerFilter(label_selector={"n": "1"})
    assert [c.id for c in stream(env, "RuntimeService", "StreamContainers",
                                 request("StreamContainers", filter=only))] == [cids[1]]
    pods = d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert stream(env, "RuntimeService", "StreamPodSandboxes",
                  request("StreamPodSandboxes")) == list(pods)
    images = d.image.ListImages(api_pb2.ListImagesRequest()).images
    assert stream(env, "ImageService", "StreamImages", request("StreamImages")) == list(images)

    stats_filter = api_pb2.ContainerStatsFilter(pod_sandbox_id=pod.id)
    listed_stats = d.runtime.ListContainerStats(
        api_pb2.ListContainerStatsRequest(filter=stats_filter)).stats
    streamed_stats = stream(env, "RuntimeService", "StreamContainerStats",
                            request("StreamContainerStats", filter=stats_filter))
    assert [s.attributes for s in streamed_stats] == [s.attributes for s in listed_stats]
    assert sorted(s.attributes.id for s in streamed_stats) == sorted(cids)
    pod_stats = stream(env, "RuntimeService", "StreamPodSandboxStats",
                       request("StreamPodSandboxStats"))
    assert [s.attributes.id for s in pod_stats] == [p.id for p in pods]
    metrics = stream(env, "RuntimeService", "StreamPodSandboxMetrics",
                     request("StreamPodSandboxMetrics"))
    assert [m.pod_sandbox_id for m in metrics] == [p.id for p in pods]


def scrape(env: Env) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(env.daemon.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_what_happened(env: Env, pod: Pod) -> None:
    d = env.daemon
    before = scrape(env)
    running = run(env, pod, "exec sleep 600")
    hog = run(env, pod, "head -c 209715200 /dev/zero | tail",
              linux=api_pb2.LinuxContainerConfig(
                  resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=32 * MIB)))
    exited = wait_state(d, hog, api_pb2.CONTAINER_EXITED)
    assert exited.reason == "OOMKilled"
    for _ in range(3):
        d.runtime.ContainerStats(api_pb2.ContainerStatsRequest(container_id=running))
    url = d.runtime.Exec(api_pb2.ExecRequest(container_id=running, cmd=["/bin/true"],
                                             stdout=True)).url
    session = WSClient(Configuration(), get_websocket_url(url), {}, capture_all=True,
                       binary=True)
    session.run_forever(timeout=30)
    assert session.returncode == 0

    def session_closed() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = scrape(env)
        return found if found.get(("crid_streaming_sessions_active", (("kind", "exec"),))) == 0 \
            else None

    after = eventually(session_closed, what="the exec session closed")

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("crid_containers_oom_total") == 1
    assert grew("crid_operations_total", operation="ContainerStats") == 3
    assert grew("crid_operations_total", operation="StartContainer") == 2
    states = d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    running_now = sum(c.state == api_pb2.CONTAINER_RUNNING for c in states)
    assert after[("crid_containers", (("state", "running"),))] == running_now
    assert after[("crid_containers", (("state", "exited"),))] >= 1
    assert ("crid_container_events_dropped_total", ()) in after
    assert grew("crid_streaming_sessions_total", kind="exec") == 1


def test_update_runtime_config_keeps_the_pod_cidr(env: Env) -> None:
    d = env.daemon
    d.runtime.UpdateRuntimeConfig(api_pb2.UpdateRuntimeConfigRequest(
        runtime_config=api_pb2.RuntimeConfig(
            network_config=api_pb2.NetworkConfig(pod_cidr="10.244.1.0/24"))))
    info = d.runtime.Status(api_pb2.StatusRequest(verbose=True)).info
    assert info["podCIDR"] == "10.244.1.0/24"
    assert json.loads(info["config"])
    with pytest.raises(grpc.RpcError) as bad:
        d.runtime.UpdateRuntimeConfig(api_pb2.UpdateRuntimeConfigRequest(
            runtime_config=api_pb2.RuntimeConfig(
                network_config=api_pb2.NetworkConfig(pod_cidr="10.244.1.0/33"))))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_checkpoint_is_unimplemented_with_a_reason(env: Env, pod: Pod) -> None:
    cid = run(env, pod, "exec sleep 600")
    with pytest.raises(grpc.RpcError) as refused:
        env.daemon.runtime.CheckpointContainer(api_pb2.CheckpointContainerRequest(
            container_id=cid, location="/tmp/x.tar"))
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CRIU" in str(refused.value.details())

