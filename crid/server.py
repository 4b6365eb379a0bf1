"""The gRPC server: every CRI RPC routed to the call family that serves it.

Call families are small classes, one per concern (``RuntimeInfo``, images,
pod sandboxes, containers, ...), each built by the composition root
(``crid.wiring``) with the parts it uses; a method named like the RPC
(``async def Version(self, request)``) serves it. An RPC no family serves
answers UNIMPLEMENTED with its own name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from google.protobuf.message import Message

from crid import errors, grpc_transport
from crid.api import services, stream_lists
from crid.clock import Clock
from crid.grpc_methods import Method, Transport
from crid.interceptor import CallInterceptor
from crid.metrics import Metrics

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # ListContainers on a full node exceeds the 4 MiB default


def build(families: Sequence[object], metrics: Metrics, clock: Clock,
          transport: grpc_transport.Choice,
          rpcs: Iterable[services.Rpc] | None = None) -> Transport:
    """The server for ``families``; an RPC goes to the first family with its method."""
    interceptor = CallInterceptor(metrics, clock)
    families = list(families)
    # The stubs' RPCs and our supplementary ones (stream_lists) share
    # runtime.v1.RuntimeService and ImageService.
    if rpcs is None:
        rpcs = (*services.rpcs(), *stream_lists.rpcs())
    return grpc_transport.build(
        transport,
        {rpc.path: _method(rpc, families, interceptor) for rpc in rpcs},
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )


def _method(rpc: services.Rpc, families: list[object], interceptor: CallInterceptor) -> Method:
    implementation = next(
        (getattr(f, rpc.name) for f in families if hasattr(f, rpc.name)),
        None,
    )
    inline = next((f.inline_calls()[rpc.name] for f in families
                   if hasattr(f, "inline_calls") and rpc.name in f.inline_calls()), None)
    if rpc.server_streaming:
        return Method(streaming=True, deserialize=rpc.request.FromString,
                      serialize=rpc.response.SerializeToString,
                      behavior=interceptor.streaming(rpc.path, _streaming(rpc, implementation)))
    # Only the calls that answer from a cache return the same response object
    # again; for the others a remembered response would only hold memory (an
    # ExecSync answer is up to 16 MiB, twice over with its bytes). The inline
    # calls are those, and two statuses (ContainerStatus, ImageStatus) whose
    # one remembered answer is small.
    serialize = (rpc.response.SerializeToString if inline is None
                 else _serialize_again_only_when_new())
    return Method(streaming=False, deserialize=rpc.request.FromString, serialize=serialize,
                  behavior=interceptor.unary(rpc.path, _unary(rpc, implementation)),
                  inline=None if inline is None else interceptor.inline(rpc.path, inline))


def _unary(
    rpc: services.Rpc, implementation: Callable[[Any], Awaitable[Any]] | None
) -> Callable[[Any], Awaitable[Any]]:
    async def call(request: Any) -> Any:
        if implementation is None:
            raise _unimplemented(rpc)
        return await implementation(request)

    return call


def _streaming(
    rpc: services.Rpc, implementation: Callable[[Any], AsyncIterator[Any]] | None
) -> Callable[[Any], AsyncIterator[Any]]:
    async def call(request: Any) -> AsyncIterator[Any]:
        if implementation is None:
            raise _unimplemented(rpc)
        async for response in implementation(request):
            yield response

    return call


def _serialize_again_only_when_new() -> Callable[[Message], bytes]:
    """A response serializer that gives the same bytes again when a call returns
    the very object it serialized last (a list call answering from its cache:
    ListContainers' 100 items take ~25 µs to serialize, ~120 µs to copy into a
    new response). Handlers never change a response after returning it."""
    # One tuple, replaced whole: the polling thread and the loop both serialize.
    last: tuple[Message | None, bytes] = (None, b"")

    def serialize(response: Message) -> bytes:
        nonlocal last
        seen, data = last
        if response is seen:
            return data
        data = response.SerializeToString()
        last = (response, data)
        return data

    return serialize


def _unimplemented(rpc: services.Rpc) -> errors.Unimplemented:
    return errors.Unimplemented(f"{rpc.name} is not implemented by crid yet ({rpc.path})")
