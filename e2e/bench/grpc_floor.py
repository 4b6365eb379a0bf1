"""Benchmark: what a unary CRI call costs in the gRPC layer alone, before any
crid code: servers that answer ``Version`` with a constant.

``python -m e2e.bench.grpc_floor`` (root; Debian's containerd installed).
The same Python client asks each server in turn, as list_calls does:

- ``containerd``: Debian's containerd 1.6 (Go), its CRI plugin's Version;
- ``grpc.aio``: a ``grpc.aio`` server (crid's transport before 2026-11-28)
  with ``GRPC_EXPERIMENTS=-event_engine_listener`` (the iomgr listener, which
  crid set around importing grpc until 2026-12-06);
- ``grpc.aio, EventEngine listener``: the same with grpcio's default listener;
- ``one thread on cygrpc``: grpcio's core driven from a single thread through
  ``grpc._cython.cygrpc`` that polls the completion queue and answers in
  place, so no call crosses a thread: the floor;
- ``crid's GrpcServer``: crid's transport (``crid.grpc_server``), whose
  polling thread hands each call to the asyncio loop once, on grpcio's
  default (EventEngine) listener; ``, iomgr listener`` rows: the same with
  the experiment switch crid no longer sets.

grpc.aio hands every completion (the call, its message, the send) from the
thread that polls gRPC's completion queue to the asyncio loop through a
socketpair, four round trips per unary call; on a VM each thread wake-up
costs tens of microseconds. The single-thread server shows what is left
without them; crid's own transport (since 2026-11-28) is built on that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench import _command as command
from e2e.bench._containerd import CONTAINERD, _config

ANSWER = api_pb2.VersionResponse(version="0.1.0", runtime_name="bench", runtime_version="1",
                                 runtime_api_version="v1")
SERVERS = {
    "containerd": None,
    "grpc.aio": "aio",
    "grpc.aio, EventEngine listener": "aio-event-engine",
    "one thread on cygrpc": "cygrpc",
    "crid's GrpcServer": "crid",
    "crid's GrpcServer, answered inline": "crid-inline",
    "crid's GrpcServer, iomgr listener": "crid-iomgr",
    "crid's GrpcServer, inline, iomgr": "crid-inline-iomgr",
}
# gRPC's switch back to its older listener (read at import, hence per server).
IOMGR = "-event_engine_listener"
ON_IOMGR = ("aio", "crid-iomgr", "crid-inline-iomgr")
WARMUP = 20


def _serve_aio(socket: str) -> None:
    import asyncio

    async def version(request: api_pb2.VersionRequest,
                      context: grpc.aio.ServicerContext[object, object]
                      ) -> api_pb2.VersionResponse:
        return ANSWER

    async def serve() -> None:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            version, request_deserializer=api_pb2.VersionRequest.FromString,
            response_serializer=api_pb2.VersionResponse.SerializeToString)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "runtime.v1.RuntimeService", {"Version": handler})])
        server.add_insecure_port(f"unix://{socket}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


def _serve_cygrpc(socket: str) -> None:
    from grpc._cython import cygrpc  # type: ignore[attr-defined]

    answer = ANSWER.SerializeToString()
    queue = cygrpc.CompletionQueue()
    server = cygrpc.Server((), False)
    server.register_completion_queue(queue)
    server.add_http2_port(f"unix://{socket}".encode())
    server.start()
    server.request_call(queue, queue, "call")
    while True:
        event = queue.poll()
        if event.tag == "call":
            server.request_call(queue, queue, "call")
            event.call.start_server_batch((cygrpc.ReceiveMessageOperation(0),),
                                          ("message", event.call))
        elif isinstance(event.tag, tuple) and event.tag[0] == "message":
            event.tag[1].start_server_batch((
                cygrpc.SendInitialMetadataOperation((), 0),
                cygrpc.SendMessageOperation(answer, 0),
                cygrpc.SendStatusFromServerOperation((), cygrpc.StatusCode.ok, b"", 0),
                cygrpc.ReceiveCloseOnServerOperation(0),
            ), "done")


def _serve_crid(socket: str, inline: bool = False) -> None:
    import asyncio

    from crid.grpc_methods import Method
    from crid.grpc_server import GrpcServer

    async def version(request: api_pb2.VersionRequest) -> api_pb2.VersionResponse:
        return ANSWER

    async def serve() -> None:
        server = GrpcServer({"/runtime.v1.RuntimeService/Version": Method(
            streaming=False, deserialize=api_pb2.VersionRequest.FromString,
            serialize=api_pb2.VersionResponse.SerializeToString, behavior=version,
            inline=(lambda request: ANSWER) if inline else None)}, ())
        server.add_insecure_port(f"unix://{socket}")
        await server.start()
        await asyncio.Event().wait()

    asyncio.run(serve())


def serve(kind: str, socket: str) -> None:
    kind = kind.removesuffix("-iomgr")
    if kind == "crid-inline":
        _serve_crid(socket, inline=True)
        return
    {"cygrpc": _serve_cygrpc, "crid": _serve_crid}.get(kind, _serve_aio)(socket)


@contextlib.contextmanager
def _servers(workdir: Path) -> Iterator[dict[str, api_pb2_grpc.RuntimeServiceStub]]:
    processes: list[subprocess.Popen[bytes]] = []
    channels: list[grpc.Channel] = []
    # grpc reads GRPC_EXPERIMENTS at import: given in each server's environment.
    plain = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    iomgr = {**plain, "GRPC_EXPERIMENTS": IOMGR}
    try:
        sockets = {}
        for index, (name, kind) in enumerate(SERVERS.items()):
            socket = str(workdir / f"{index}.sock")
            if kind is None:
                ctrd = workdir / "containerd"
                (ctrd / "cni").mkdir(parents=True)
                config = _config(ctrd, "127.0.0.1:1/pause:none", "127.0.0.1:1").replace(
                    f'address = "{ctrd}/containerd.sock"', f'address = "{socket}"')
                (ctrd / "config.toml").write_text(config)
                command = [CONTAINERD, "--config", str(ctrd / "config.toml")]
            else:
                command = [sys.executable, "-P", "-m", "e2e.bench.grpc_floor",
                           "serve", kind, socket]
            env = iomgr if kind in ON_IOMGR else plain
            processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            sockets[name] = socket
        stubs = {}
        for name, socket in sockets.items():
            channel = grpc.insecure_channel(f"unix://{socket}")
            channels.append(channel)
            grpc.channel_ready_future(channel).result(timeout=30)
            stubs[name] = api_pb2_grpc.RuntimeServiceStub(channel)
            stubs[name].Version(api_pb2.VersionRequest(), timeout=30)
        yield stubs
    finally:
        for channel in channels:
            channel.close()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run(calls: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="crid-grpc-floor-", dir="/tmp"))
    try:
        with _servers(workdir) as stubs:
            times: dict[str, list[float]] = {name: [] for name in stubs}
            for index in range(WARMUP + calls):
                for name, stub in stubs.items():
                    started = time.perf_counter()
                    stub.Version(api_pb2.VersionRequest())
                    if index >= WARMUP:
                        times[name].append((time.perf_counter() - started) * 1000)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {name: statistics.median(taken) for name, taken in times.items()}
    print(f"Version answered with a constant: median of {calls} calls (ms), "
          "ratio to containerd")
    for name, median in medians.items():
        print(f"{name:34}{median:8.3f}{median / medians['containerd']:8.2f}")
    return medians


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        serve(args[1], args[2])
        return 0
    run(command.parser("e2e.bench.grpc_floor", __doc__, calls=(1000, "timed calls"))
        .parse_args(args).calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
