"""Both gRPC transports against a real gRPC client on a unix socket: answers,
statuses, streams, cancellation at the deadline, and draining on stop. The
fast path (GrpcServer, on grpcio's core) and grpc.aio's (AioServer) must
answer alike."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from crid import grpc_transport
from crid.grpc_methods import Method
from crid.interceptor import Aborted

SERVICE = "/runtime.v1.RuntimeService"


class Handlers:
    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.slow_started = threading.Event()

    async def version(self, request: api_pb2.VersionRequest) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(version=request.version or "none")

    def version_now(self, request: api_pb2.VersionRequest) -> api_pb2.VersionResponse | None:
        """Answers "now" in the calling thread, leaves anything else to the loop."""
        if request.version != "now":
            return None
        return api_pb2.VersionResponse(version=threading.current_thread().name)

    async def status(self, request: api_pb2.ContainerStatusRequest) -> Any:
        raise Aborted("NOT_FOUND", f"container {request.container_id!r} not found")

    async def slow(self, request: api_pb2.StopContainerRequest) -> Any:
        self.slow_started.set()
        try:
            await asyncio.sleep(request.timeout)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return api_pb2.StopContainerResponse()

    async def events(self, request: api_pb2.GetEventsRequest
                     ) -> AsyncIterator[api_pb2.ContainerEventResponse]:
        for index in range(3):
            yield api_pb2.ContainerEventResponse(container_id=f"c{index}")
        raise Aborted("UNAVAILABLE", "no more")


def _method(call: Any, request: Any, response: Any, streaming: bool = False) -> Method:
    return Method(streaming=streaming, deserialize=request.FromString,
                  serialize=response.SerializeToString, behavior=call)


class Running:
    """The server on its own loop in a thread, as the daemon runs it."""

    def __init__(self, socket: Path, handlers: Handlers, fast: bool = True) -> None:
        self.server = grpc_transport.build(grpc_transport.Choice(fast, "test"), {
            f"{SERVICE}/Version": dataclasses.replace(
                _method(handlers.version, api_pb2.VersionRequest, api_pb2.VersionResponse),
                inline=handlers.version_now),
            f"{SERVICE}/ContainerStatus": _method(handlers.status,
                                                  api_pb2.ContainerStatusRequest,
                                                  api_pb2.ContainerStatusResponse),
            f"{SERVICE}/StopContainer": _method(handlers.slow, api_pb2.StopContainerRequest,
                                                api_pb2.StopContainerResponse),
            f"{SERVICE}/GetContainerEvents": _method(handlers.events, api_pb2.GetEventsRequest,
                                                     api_pb2.ContainerEventResponse, True),
        }, options=())
        self.server.add_insecure_port(f"unix://{socket}")
        self.fast = fast
        self.loop = asyncio.new_event_loop()
        self.stopped = False
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self, grace: float) -> None:
        if self.stopped:
            return
        self.stopped = True
        asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(params=[True, False], ids=["fast", "aio"])
def served(request: pytest.FixtureRequest, tmp_path: Path
           ) -> Iterator[tuple[grpc.Channel, Handlers, Running]]:
    handlers = Handlers()
    running = Running(tmp_path / "s.sock", handlers, fast=request.param)
    channel = grpc.insecure_channel(f"unix://{tmp_path / 's.sock'}")
    try:
        yield channel, handlers, running
    finally:
        channel.close()
        running.stop(grace=0)


def _unary(channel: grpc.Channel, name: str, response: Any) -> Any:
    return channel.unary_unary(f"{SERVICE}/{name}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response.FromString)


def test_unary_answers_and_statuses(served: tuple[grpc.Channel, Handlers, Running]) -> None:
    channel, _, running = served
    version = _unary(channel, "Version", api_pb2.VersionResponse)
    assert version(api_pb2.VersionRequest(version="v1"), timeout=10).version == "v1"
    # The fast path answers inline from its polling thread, without the loop;
    # grpc.aio serves every call on the loop.
    inline = version(api_pb2.VersionRequest(version="now"), timeout=10).version
    assert inline == ("grpc-poll" if running.fast else "now")
    with pytest.raises(grpc.RpcError) as failed:
        _unary(channel, "ContainerStatus", api_pb2.ContainerStatusResponse)(
            api_pb2.ContainerStatusRequest(container_id="abc"), timeout=10)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "container 'abc' not found"
    with pytest.raises(grpc.RpcError) as unknown:
        _unary(channel, "NoSuchCall", api_pb2.VersionResponse)(api_pb2.VersionRequest(),
                                                                timeout=10)
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_stream_sends_each_response_then_its_status(
        served: tuple[grpc.Channel, Handlers, Running]) -> None:
    channel, _, _ = served
    stream: Any = channel.unary_stream(f"{SERVICE}/GetContainerEvents",
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=api_pb2.ContainerEventResponse.FromString)
    got = []
    with pytest.raises(grpc.RpcError) as ended:
        for event in stream(api_pb2.GetEventsRequest(), timeout=10):
            got.append(event.container_id)
    assert got == ["c0", "c1", "c2"]
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_handler_is_cancelled_at_the_deadline(
        served: tuple[grpc.Channel, Handlers, Running]) -> None:
    channel, handlers, _ = served
    with pytest.raises(grpc.RpcError) as late:
        _unary(channel, "StopContainer", api_pb2.StopContainerResponse)(
            api_pb2.StopContainerRequest(timeout=30), timeout=0.5)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert handlers.cancelled.wait(10)


def _stop_during_slow_call(served: tuple[grpc.Channel, Handlers, Running], seconds: int,
                           grace: float) -> Any:
    channel, handlers, running = served
    slow = _unary(channel, "StopContainer", api_pb2.StopContainerResponse).future(
        api_pb2.StopContainerRequest(timeout=seconds), timeout=30)
    assert handlers.slow_started.wait(10)
    running.stop(grace=grace)
    return slow


def test_stop_lets_a_call_in_flight_finish(
        served: tuple[grpc.Channel, Handlers, Running]) -> None:
    slow = _stop_during_slow_call(served, seconds=1, grace=10)
    assert slow.result(timeout=20) == api_pb2.StopContainerResponse()
    assert not served[1].cancelled.is_set()


def test_stop_cancels_what_outlives_the_grace(
        served: tuple[grpc.Channel, Handlers, Running]) -> None:
    slow = _stop_during_slow_call(served, seconds=60, grace=0.2)
    assert served[1].cancelled.wait(10)
    with pytest.raises(grpc.RpcError):
        slow.result(timeout=20)


def test_stop_right_after_calls_many_times(tmp_path: Path) -> None:
    """stop() races the poller seeing the shutdown complete; the core server must
    outlive shutdown() (destroying it from the poller crashed one run in ten)."""
    for attempt in range(200):
        socket = tmp_path / f"s{attempt}.sock"
        running = Running(socket, Handlers())
        with grpc.insecure_channel(f"unix://{socket}") as channel:
            version = _unary(channel, "Version", api_pb2.VersionResponse)
            assert version(api_pb2.VersionRequest(version="v"), timeout=10).version == "v"
        running.stop(grace=0)
