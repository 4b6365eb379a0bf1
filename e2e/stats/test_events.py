"""GetContainerEvents: the life of a container and of a pod, seen by two subscribers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.containers.conftest import Env, Pod
from e2e.sandbox.pods import pod_config, stop_remove
from e2e.stats.helpers import run

E = api_pb2


class Subscription:
    """A GetContainerEvents stream read on a thread into a queue."""

    def __init__(self, env: Env) -> None:
        self.channel = grpc.insecure_channel(f"unix://{env.daemon.socket}")
        self.stream = api_pb2_grpc.RuntimeServiceStub(self.channel).GetContainerEvents(
            api_pb2.GetEventsRequest())
        self.events: queue.Queue[api_pb2.ContainerEventResponse] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                self.events.put(event)
        except grpc.RpcError:
            pass

    def of(self, object_id: str, count: int, timeout: float = 20
           ) -> list[api_pb2.ContainerEventResponse]:
        found: list[api_pb2.ContainerEventResponse] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            event = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if event.container_id == object_id:
                found.append(event)
        return found

    def close(self) -> None:
        self.stream.cancel()
        self.channel.close()


@pytest.fixture
def subscriptions(env: Env, handler: str) -> Iterator[list[Subscription]]:
    found = [Subscription(env), Subscription(env)]
    # The server registers a subscriber only once the call reaches it: make
    # probe pods until both have seen one, then start from an empty queue.
    deadline = time.monotonic() + 20
    while any(s.events.empty() for s in found):
        assert time.monotonic() < deadline, "the event streams never started"
        probe = env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=pod_config(), runtime_handler=handler)).pod_sandbox_id
        stop_remove(env.daemon, probe)
        time.sleep(0.1)
    for subscription in found:
        while not subscription.events.empty():
            subscription.events.get()
    yield found
    for subscription in found:
        subscription.close()


def test_two_subscribers_see_a_containers_whole_life_in_order(
        env: Env, pod: Pod, subscriptions: list[Subscription]) -> None:
    d = env.daemon
    cid = run(env, pod, "exec sleep 600")
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=5))
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    wanted = [E.CONTAINER_CREATED_EVENT, E.CONTAINER_STARTED_EVENT, E.CONTAINER_STOPPED_EVENT,
              E.CONTAINER_DELETED_EVENT]
    for subscription in subscriptions:
        events = subscription.of(cid, 4)
        assert [e.container_event_type for e in events] == wanted
        times = [e.created_at for e in events]
        assert times == sorted(times) and times[0] > 0
        for event in events:
            assert event.pod_sandbox_status.id == pod.id
            assert event.pod_sandbox_status.state == api_pb2.SANDBOX_READY
        created, started, stopped, deleted = ([s for s in e.containers_statuses if s.id == cid]
                                              for e in events)
        assert created[0].state == api_pb2.CONTAINER_CREATED
        assert started[0].state == api_pb2.CONTAINER_RUNNING
        assert stopped[0].state == api_pb2.CONTAINER_EXITED
        assert deleted == []


def test_a_pods_life_is_reported_with_the_pod_id(
        env: Env, handler: str, subscriptions: list[Subscription]) -> None:
    d = env.daemon
    pod_id = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=pod_config(), runtime_handler=handler)).pod_sandbox_id
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    for subscription in subscriptions:
        events = subscription.of(pod_id, 4)
        assert [e.container_event_type for e in events] == [
            E.CONTAINER_CREATED_EVENT, E.CONTAINER_STARTED_EVENT, E.CONTAINER_STOPPED_EVENT,
            E.CONTAINER_DELETED_EVENT]
        assert [e.pod_sandbox_status.state for e in events] == [
            api_pb2.SANDBOX_READY, api_pb2.SANDBOX_READY, api_pb2.SANDBOX_NOTREADY,
            api_pb2.SANDBOX_NOTREADY]


def test_pod_status_lists_its_containers_and_a_timestamp(env: Env, pod: Pod) -> None:
    cid = run(env, pod, "exec sleep 600")
    before = time.time_ns()
    response = env.daemon.runtime.PodSandboxStatus(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod.id))
    assert [(s.id, s.state) for s in response.containers_statuses] == [
        (cid, api_pb2.CONTAINER_RUNNING)]
    assert before <= response.timestamp <= time.time_ns()
