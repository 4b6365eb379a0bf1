"""The daemon's life: start, serve, drain, exit.

``serve`` owns the order of start-up (lock the root, claim the socket, start
the parts ``crid.wiring`` builds — store, recovery, leftovers —, metrics,
then put the socket in place) and of shutdown (stop taking calls, let
in-flight ones finish, stop the parts, release the socket and the lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from crid import listener, logs, private
from crid.config import Config
from crid.errors import FailedPrecondition

DRAIN_SECONDS = 10.0


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight calls and return."""
    # The gRPC layer and the parts; imported here to keep `crid version` light.
    from crid import grpc_transport, server, wiring

    log = logs.get("crid")
    root, runroot, socket_path = Path(config.root), Path(config.runroot), Path(config.listen)
    socket_group = listener.group_id(config.listen_group)  # before anything is made
    with contextlib.ExitStack() as cleanup:
        # The root holds the database, whose rows hold containers' specs (their
        # env: secrets). The state dir stays passable, for the socket's group;
        # what in it holds specs is private (bundles, the runtimes' state).
        private.directory(root)
        runroot.mkdir(parents=True, exist_ok=True, mode=0o711)
        private.directory(runroot / "runtimes")
        cleanup.enter_context(_exclusive(root / "crid.lock"))
        listener.claim(socket_path)
        parts = wiring.Parts(config)
        await parts.start()  # store, recovery, leftovers: see crid.wiring
        try:
            transport = grpc_transport.choose(config.grpc_fast_path)
            log.info("grpc transport", transport=transport.name, reason=transport.reason)
            grpc_server = server.build(parts.families, parts.metrics, parts.clock, transport)
            # Metrics first: a daemon whose socket answers has its /metrics up too,
            # and a metrics port in use fails start-up before any client connects.
            if config.metrics_address:
                host, port = parts.metrics.serve(config.metrics_address)
                log.info("metrics listening", address=f"{host}:{port}")
            with listener.staged(socket_path, socket_group) as private_path:
                grpc_server.add_insecure_port(f"unix://{private_path}")
                await grpc_server.start()
            cleanup.callback(lambda: socket_path.unlink(missing_ok=True))
            log.info("crid serving", socket=str(socket_path), root=str(root),
                     runroot=str(runroot))

            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stopping.set)
            await stopping.wait()
            log.info("shutting down", drain_seconds=DRAIN_SECONDS)
            await grpc_server.stop(grace=DRAIN_SECONDS)
        finally:
            await parts.stop()
    log.info("stopped")


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[IO[str]]:
    """Hold an flock on the root for the daemon's life: one crid per root."""
    private.create(lock_path)
    handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the daemon's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise FailedPrecondition(
            f"{lock_path.parent} is in use by another crid (pid {owner}); "
            "stop it or choose another --root"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield handle
    finally:
        handle.close()
