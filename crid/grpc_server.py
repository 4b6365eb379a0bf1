"""The gRPC transport: grpcio's core driven from one thread, handlers on the loop.

``grpc.aio`` hands every completion of a call (the call itself, its request
message, each send) from the thread that polls gRPC's completion queue to the
asyncio loop through a socketpair and back: four round trips for a unary
call, each a thread wake-up that costs tens of microseconds on a VM. A bare
``grpc.aio`` server answering Version with a constant took 0.61 ms where
containerd took 0.41 (``python -m e2e.bench.grpc_floor``). Here one thread
polls the queue and does all the core's bookkeeping itself (accept the call,
receive its message, watch for its cancellation); a call crosses to the loop
once, with its request, and the loop starts the send itself. A few read-only
calls (Version, ListPodSandbox, an unchanged ListContainers, ListImages,
ImageStatus, the ContainerStatus of a container with no exit to record) are
answered in the polling thread itself from thread-safe state, crossing no
thread at all: under load the loop is busy with creates and starts.
That is the same core, the same HTTP/2, the same status codes and messages.

grpcio has no public API for this: ``grpc._cython.cygrpc`` is what its own
servers are built on (``grpc._server``), with no stability promise. So this
module is imported only after ``crid.grpc_transport`` found the installed
grpcio to be a release it was tested with, with every name used here in
place; otherwise, or when switched off, the daemon serves through
``crid.grpc_aio_server``. The e2e suite runs on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import grpc
from grpc._cython import cygrpc  # type: ignore[attr-defined]

from crid import logs
from crid.grpc_methods import Method
from crid.interceptor import Aborted

log = logs.get("crid.grpc")

_NEW_CALL = "new call"
_SHUTDOWN = "shutdown"
_NO_FLAGS = 0


def _code(name: str) -> int:
    return int(grpc.StatusCode[name].value[0])


class _Call:
    """One RPC: its core call, and the task serving it once it reached the loop."""

    def __init__(self, core: Any, method: Method, name: str) -> None:
        self.core = core
        self.method = method
        self.name = name  # the method's path: debug mode's reports name the task by it
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False


class GrpcServer:
    def __init__(self, methods: dict[str, Method], options: Sequence[tuple[str, Any]]) -> None:
        self._methods = {path.encode(): method for path, method in methods.items()}
        self._options = tuple(options)
        self._ports: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._stopped: asyncio.Event | None = None
        self._calls: set[_Call] = set()  # loop thread only

    def add_insecure_port(self, address: str) -> None:
        self._ports.append(address)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._queue = cygrpc.CompletionQueue()
        self._server = cygrpc.Server(self._options, False)
        self._server.register_completion_queue(self._queue)
        for address in self._ports:
            self._server.add_http2_port(address.encode())
        self._server.start()
        self._server.request_call(self._queue, self._queue, _NEW_CALL)
        self._thread = threading.Thread(target=self._poll, name="grpc-poll", daemon=True)
        self._thread.start()

    async def stop(self, grace: float) -> None:
        """Take no new calls; let those in flight finish for ``grace`` seconds,
        then cancel what is left."""
        assert self._stopped is not None and self._thread is not None
        self._stopping = True
        self._server.shutdown(self._queue, _SHUTDOWN)
        try:
            await asyncio.wait_for(self._stopped.wait(), grace)
        except TimeoutError:
            self._server.cancel_all_calls()
            await self._stopped.wait()
        await asyncio.to_thread(self._thread.join)
        # Only now: the shutdown completion can reach the poller while shutdown()
        # is still inside the core, so destroying the server there frees it under us.
        self._server.destroy()

    # --- the polling thread -----------------------------------------------------

    def _poll(self) -> None:
        shut_down, accepting = False, True  # start() asked for the first call
        while not (shut_down and not accepting):
            event = self._queue.poll()  # waits without the GIL
            tag = event.tag
            if tag is _NEW_CALL:
                # Ask for the next call first, so that one is accepted while this
                # one is set up; after a refusal by the core too, to keep listening.
                accepting = self._request_call()
                if event.success:
                    self._accept(event.call, event.call_details.method)
            elif tag is _SHUTDOWN:
                shut_down = True
            elif callable(tag):
                try:
                    tag(event)
                except Exception:  # this thread must go on, or no call is answered
                    log.exception("grpc completion failed")
            event = None  # a held event keeps its call alive
        assert self._loop is not None and self._stopped is not None
        with contextlib.suppress(RuntimeError):  # the loop may be closing
            self._loop.call_soon_threadsafe(self._stopped.set)

    def _request_call(self) -> bool:
        if self._stopping:
            return False
        try:
            self._server.request_call(self._queue, self._queue, _NEW_CALL)
        except ValueError:  # stop() began shutting the server down meanwhile
            return False
        return True

    def _accept(self, core: Any, path: bytes) -> None:
        method = self._methods.get(path)
        if method is None:
            core.start_server_batch((*_ending("UNIMPLEMENTED", "Method not found!"),
                                     cygrpc.ReceiveCloseOnServerOperation(_NO_FLAGS)), None)
            return
        call = _Call(core, method, path.decode(errors="replace"))
        if method.inline is None:  # else once it is known not to be answered inline
            self._watch_close(call)
        core.start_server_batch((cygrpc.ReceiveMessageOperation(_NO_FLAGS),),
                                lambda event: self._received(call, event))

    def _watch_close(self, call: _Call) -> None:
        # Completes when the call ends; cancelled when the client went away or
        # its deadline passed: then the handler is cancelled, as grpc.aio does.
        call.core.start_server_batch((cygrpc.ReceiveCloseOnServerOperation(_NO_FLAGS),),
                                     lambda event: self._closed(call, event))

    def _received(self, call: _Call, event: Any) -> None:
        message = event.batch_operations[0].message() if event.success else None
        if call.method.inline is not None:
            if message is not None and self._answered(call, message):
                return
            self._watch_close(call)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._serve, call, message)

    def _answered(self, call: _Call, message: bytes) -> bool:
        """Answer in this thread if the method can; the loop serves it otherwise (and
        reports any error the same way it always does)."""
        method = call.method
        assert method.inline is not None
        try:
            response = method.inline(method.deserialize(message))
            if response is None:
                return False
            payload = method.serialize(response)
        except Exception:
            return False
        call.core.start_server_batch(
            (*_ending("OK", "", payload), cygrpc.ReceiveCloseOnServerOperation(_NO_FLAGS)),
            None)
        return True

    def _closed(self, call: _Call, event: Any) -> None:
        if event.batch_operations[0].cancelled():
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._cancel, call)

    # --- the loop -----------------------------------------------------------------

    def _cancel(self, call: _Call) -> None:
        call.cancelled = True
        if call.task is not None:
            call.task.cancel()

    def _serve(self, call: _Call, message: bytes | None) -> None:
        if message is None:  # gone before its request arrived, or it sent none
            self._finish(call, "INTERNAL", "the call carried no request message")
            return
        if call.cancelled:
            return
        serve = self._stream if call.method.streaming else self._unary
        call.task = asyncio.get_running_loop().create_task(serve(call, message), name=call.name)
        self._calls.add(call)
        call.task.add_done_callback(lambda _: self._calls.discard(call))

    async def _unary(self, call: _Call, message: bytes) -> None:
        method = call.method
        try:
            request = _deserialize(method, message)
            response = method.serialize(await method.behavior(request))
        except Aborted as aborted:
            self._finish(call, aborted.code, aborted.message)
            return
        except Exception as exc:  # the interceptor turned the handler's own into Aborted
            self._finish(call, "UNKNOWN", f"Exception calling application: {exc}")
            return
        self._finish(call, "OK", "", response)

    async def _stream(self, call: _Call, message: bytes) -> None:
        method = call.method
        first = True
        try:
            request = _deserialize(method, message)
            responses: AsyncIterator[Any] = method.behavior(request)
            async for response in responses:
                operations = [cygrpc.SendMessageOperation(method.serialize(response), _NO_FLAGS)]
                if first:
                    operations.insert(0, cygrpc.SendInitialMetadataOperation((), _NO_FLAGS))
                    first = False
                if not await self._batch(call, operations):
                    return  # the client is gone; _closed cancels this task
        except Aborted as aborted:
            self._finish(call, aborted.code, aborted.message, initial=first)
            return
        except Exception as exc:
            self._finish(call, "UNKNOWN", f"Exception iterating responses: {exc}",
                         initial=first)
            return
        self._finish(call, "OK", "", initial=first)

    def _batch(self, call: _Call, operations: Sequence[Any]) -> Awaitable[bool]:
        """Start a batch; resolves to whether it succeeded, once the poller saw it done."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def completed(event: Any) -> None:
            loop.call_soon_threadsafe(_resolve, done, bool(event.success))

        call.core.start_server_batch(tuple(operations), completed)
        return done

    def _finish(self, call: _Call, code: str, details: str, response: bytes | None = None,
                initial: bool = True) -> None:
        if call.cancelled:
            return
        try:
            call.core.start_server_batch(_ending(code, details, response, initial), None)
        except Exception as exc:  # the core ended the call meanwhile: nobody to tell
            log.debug("call ended before its status was sent", error=repr(exc))


def _ending(code: str, details: str, response: bytes | None = None,
            initial: bool = True) -> tuple[Any, ...]:
    """The operations that end a call: its metadata (unless sent already), the
    response if any, and the status."""
    operations = []
    if initial:
        operations.append(cygrpc.SendInitialMetadataOperation((), _NO_FLAGS))
    if response is not None:
        operations.append(cygrpc.SendMessageOperation(response, _NO_FLAGS))
    operations.append(cygrpc.SendStatusFromServerOperation(
        (), _code(code), details.encode(), _NO_FLAGS))
    return tuple(operations)


def _deserialize(method: Method, message: bytes) -> Any:
    try:
        return method.deserialize(message)
    except Exception as exc:  # grpc.aio answers a malformed request the same way
        raise Aborted("INTERNAL", f"Failed to deserialize request: {exc}") from None


def _resolve(future: asyncio.Future[bool], success: bool) -> None:
    if not future.done():
        future.set_result(success)
