"""Port-forward over SPDY: ``portforward.k8s.io``.

One upgraded connection carries any number of forwarded TCP connections.
For each, the client opens two streams with the same ``port`` and
``requestID`` headers: ``streamType: error`` (we write a message there if we
cannot connect) and ``streamType: data`` (the bytes, both ways). We connect
to the port in the pod once both have arrived and copy until both sides
have finished; a FIN on the data stream becomes a half-close towards the pod.

Bounds: a pair whose second stream has not come ``creation_timeout``
seconds after the first is dropped (kubelet's stream creation timeout), and
a pod has at most ``PodForwards.limit`` forwarded connections open, over all
clients; one more gets the reason on its error stream and its data stream
reset. The session's own stream cap bounds the pairs per connection.
"""

from __future__ import annotations

import asyncio
import contextlib

from crid import logs
from crid.errors import CridError
from crid.streaming.backend import Backend
from crid.streaming.limits import PodForwards
from crid.streaming.reader import Reader
from crid.streaming.spdy.session import Session, Stream
from crid.streaming.tokens import PortForwardRequest
from crid.streaming.writer import Writer

log = logs.get("crid.streaming.spdy")

PROTOCOLS = ("portforward.k8s.io",)
COPY_CHUNK = 64 * 1024


def _pair_key(stream: Stream, kind: str) -> str:
    if request_id := stream.header("requestID"):
        return request_id
    # Clients before requestID existed opened error then data back to back.
    return str(stream.id if kind == "error" else stream.id - 2)


async def serve(session: Session, request: PortForwardRequest, backend: Backend,
                pods: PodForwards, creation_timeout: float) -> None:
    """Forward connections until the client closes the upgraded connection."""
    reading = asyncio.create_task(session.run())
    pending: dict[str, dict[str, Stream]] = {}
    forwards: set[asyncio.Task[None]] = set()
    expiries: dict[str, asyncio.Task[None]] = {}

    async def expire(key: str) -> None:
        await asyncio.sleep(creation_timeout)
        del expiries[key]
        for stream in pending.pop(key, {}).values():
            if stream.header("streamType") == "error":
                with contextlib.suppress(ConnectionError):
                    await stream.write(b"timed out waiting for the other stream of the pair")
            await stream.abort()

    try:
        while True:
            incoming = asyncio.create_task(session.incoming.get())
            await asyncio.wait({incoming, reading}, return_when=asyncio.FIRST_COMPLETED)
            if not incoming.done():
                incoming.cancel()
                break
            stream = incoming.result()
            kind = stream.header("streamType")
            if kind not in ("data", "error"):
                await stream.abort()
                continue
            key = _pair_key(stream, kind)
            pair = pending.setdefault(key, {})
            if kind in pair:  # the same stream of a pair twice
                await stream.abort()
                continue
            await stream.reply()
            pair[kind] = stream
            if len(pair) == 1:
                expiries[key] = asyncio.create_task(expire(key))
                continue
            del pending[key]
            expiries.pop(key).cancel()
            if not pods.acquire(request.pod_sandbox_id):
                log.warning("port-forward refused", sandbox=request.pod_sandbox_id,
                            limit=pods.limit)
                await _refuse(pair["data"], pair["error"],
                              pods.refusal(request.pod_sandbox_id))
                continue
            task = asyncio.create_task(_forward(request, backend, pair["data"], pair["error"]))
            task.add_done_callback(lambda _: pods.release(request.pod_sandbox_id))
            forwards.add(task)
            task.add_done_callback(forwards.discard)
    finally:
        for task in list(expiries.values()):
            task.cancel()
        for task in list(forwards):
            task.cancel()
        await asyncio.gather(*forwards, return_exceptions=True)
        await session.shutdown()
        reading.cancel()


async def _refuse(data: Stream, error: Stream, message: str) -> None:
    with contextlib.suppress(ConnectionError):
        await error.write(message.encode())
    await error.close()
    await data.abort()


async def _forward(request: PortForwardRequest, backend: Backend, data: Stream,
                   error: Stream) -> None:
    raw_port = data.header("port")
    try:
        port = int(raw_port)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
        reader, writer = await backend.port_forward(request.pod_sandbox_id, port)
    except (CridError, OSError, ValueError) as exc:
        message = f"error forwarding port {raw_port} to pod {request.pod_sandbox_id}: {exc}"
        log.info("port-forward failed", sandbox=request.pod_sandbox_id, port=raw_port,
                 error=str(exc))
        with contextlib.suppress(ConnectionError):
            await error.write(message.encode())
        await error.close()
        await data.close()
        return
    try:
        await asyncio.gather(_to_pod(data, writer),
                             _from_pod(reader, data))
    finally:
        writer.close()
        await error.close()


async def _to_pod(data: Stream, writer: Writer) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await data.read(COPY_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _from_pod(reader: Reader, data: Stream) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(COPY_CHUNK):
            await data.write(chunk)
    await data.close()
