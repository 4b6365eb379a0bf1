"""The gRPC transport on grpcio's public API: a ``grpc.aio`` server.

It serves the same ``Method`` table as the fast path (``crid.grpc_server``),
with the same answers: a handler's ``Aborted`` becomes its status and message,
a method nobody serves is UNIMPLEMENTED, a call whose client went away or
whose deadline passed has its handler cancelled. It runs on any grpcio crid
accepts, so it is what the daemon uses whenever the fast path was not tested
with the installed grpcio, or is switched off (``crid.api.grpc_fast_path``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from crid.grpc_methods import Method
from crid.interceptor import Aborted


class AioServer:
    def __init__(self, methods: Mapping[str, Method], options: Sequence[tuple[str, Any]]) -> None:
        self._handlers = {path: _handler(method) for path, method in methods.items()}
        self._options = tuple(options)
        self._ports: list[str] = []
        self._server: grpc.aio.Server | None = None

    def add_insecure_port(self, address: str) -> None:
        self._ports.append(address)

    async def start(self) -> None:
        self._server = grpc.aio.server(options=self._options)
        self._server.add_generic_rpc_handlers((_Table(self._handlers),))
        for address in self._ports:
            self._server.add_insecure_port(address)
        await self._server.start()

    async def stop(self, grace: float) -> None:
        assert self._server is not None
        await self._server.stop(grace)


class _Table(grpc.GenericRpcHandler):
    def __init__(self, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        self._handlers = handlers

    def service(self, handler_call_details: grpc.HandlerCallDetails
                ) -> grpc.RpcMethodHandler[Any, Any] | None:
        # None: grpc.aio answers UNIMPLEMENTED, as the fast path does.
        return self._handlers.get(handler_call_details.method)


def _handler(method: Method) -> grpc.RpcMethodHandler[Any, Any]:
    if method.streaming:
        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]
                         ) -> AsyncIterator[Any]:
            try:
                async for response in method.behavior(request):
                    yield response
            except Aborted as aborted:
                await context.abort(grpc.StatusCode[aborted.code], aborted.message)

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=method.deserialize,
            response_serializer=method.serialize)

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            # Serialized here, not by grpc.aio, which would hold the response
            # object while it sends the bytes: a large answer (ExecSync's, up
            # to 16 MiB) would then be in memory three times over, not twice.
            return method.serialize(await method.behavior(request))
        except Aborted as aborted:
            await context.abort(grpc.StatusCode[aborted.code], aborted.message)

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=method.deserialize, response_serializer=None)
