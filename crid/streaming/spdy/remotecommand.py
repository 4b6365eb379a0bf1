"""Exec and attach over SPDY: the ``channel.k8s.io`` family (v1 to v4).

The client opens one SPDY stream per standard stream, typed by its
``streamType`` header: ``error`` (always), ``stdin``, ``stdout``, ``stderr``
(not with a tty), and from v3 ``resize`` (with a tty; JSON sizes). We answer
each with SYN_REPLY, start the process once the streams the request needs
are there, and at the end close the outputs, write the status on the error
stream (JSON ``metav1.Status`` in v4, plain text before), and go away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from crid import logs
from crid.streaming import remotecommand
from crid.streaming.backend import Backend, TerminalSize
from crid.streaming.spdy.session import Session, Stream
from crid.streaming.tokens import AttachRequest, ExecRequest

log = logs.get("crid.streaming.spdy")

PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STREAM_TYPES = ("error", "stdin", "stdout", "stderr", "resize")


def _required(request: ExecRequest | AttachRequest) -> set[str]:
    needed = {"error"}
    if request.stdin:
        needed.add("stdin")
    if request.stdout:
        needed.add("stdout")
    if request.stderr and not request.tty:
        needed.add("stderr")
    return needed


class _Streams:
    """The typed streams of one session, as they arrive."""

    def __init__(self, session: Session, request: ExecRequest | AttachRequest) -> None:
        self._session = session
        self.needed = _required(request)
        self.by_type: dict[str, Stream] = {}
        self.complete = asyncio.Event()
        self.resize: asyncio.Future[Stream | None] = asyncio.get_running_loop().create_future()

    async def accept(self) -> None:
        """Reply to every stream the client opens; runs for the whole session."""
        try:
            while True:
                stream = await self._session.incoming.get()
                kind = stream.header("streamType")
                if kind not in STREAM_TYPES or kind in self.by_type:
                    await stream.abort()
                    continue
                await stream.reply()
                self.by_type[kind] = stream
                if kind == "resize" and not self.resize.done():
                    self.resize.set_result(stream)
                if self.needed <= self.by_type.keys():
                    self.complete.set()
        finally:
            if not self.resize.done():
                self.resize.set_result(None)

    async def sizes(self) -> AsyncIterator[TerminalSize]:
        # The resize stream is optional and may come after the process has
        # started; wait for it here rather than before starting.
        stream = await self.resize
        if stream is not None:
            async for size in remotecommand.sizes(stream.read):
                yield size


async def serve(session: Session, protocol: str, request: ExecRequest | AttachRequest,
                backend: Backend, creation_timeout: float) -> None:
    """Run one exec/attach session on an upgraded connection.

    The client has ``creation_timeout`` seconds to open the streams the
    request needs (kubelet's stream creation timeout); then the session ends.
    """
    reading = asyncio.create_task(session.run())
    streams = _Streams(session, request)
    accepting = asyncio.create_task(streams.accept())
    try:
        ready = asyncio.create_task(streams.complete.wait())
        done, _ = await asyncio.wait({ready, reading}, timeout=creation_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            log.warning("SPDY client did not open its streams", kind=request.kind,
                        missing=sorted(streams.needed - streams.by_type.keys()))
            return
        by_type = streams.by_type
        job = asyncio.create_task(remotecommand.run(
            backend, request,
            stdin=by_type.get("stdin") if request.stdin else None,
            stdout=by_type.get("stdout") if request.stdout else None,
            stderr=by_type.get("stderr") if request.stderr and not request.tty else None,
            resize=streams.sizes() if request.tty and protocol != "channel.k8s.io" else None,
        ))
        await asyncio.wait({job, reading}, return_when=asyncio.FIRST_COMPLETED)
        if not job.done():  # the client went away: stop the process
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            return
        status = job.result()
        for kind in ("stdout", "stderr"):
            if kind in by_type:
                await by_type[kind].close()
        error = by_type["error"]
        with contextlib.suppress(ConnectionError):
            if payload := remotecommand.encode_status(
                    status, structured=protocol == "v4.channel.k8s.io"):
                await error.write(payload)
        await error.close()
    finally:
        accepting.cancel()
        await session.shutdown()
        reading.cancel()
