"""A runtime's daemon killed with SIGKILL and started again: the time until
``ListContainers`` answers with every container in its true state.

Both daemons are asked over a fresh channel whose reconnect backoff is short
(grpc's default waits a second or more after a failed connect), polled every
``POLL`` seconds from the moment the new process is spawned.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench._containerd import Containerd
from e2e.fixtures.daemon import CridDaemon

POLL = 0.02
RESTART_TIMEOUT = 180.0
# Reconnect soon after a refused connect: the socket comes back within the poll.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 20),
                  ("grpc.min_reconnect_backoff_ms", 20),
                  ("grpc.max_reconnect_backoff_ms", 100)]


class Restartable(Protocol):
    """A daemon that can be crashed and started again on the same state."""

    socket: Path

    def kill(self) -> None:
        """SIGKILL the daemon (its monitors or shims live on) and reap it."""

    def spawn(self) -> None:
        """Start the daemon again; do not wait for it."""

    def ready(self) -> api_pb2_grpc.RuntimeServiceStub:
        """Once it answers: a stub for the rest of the benchmark to use."""


class CridRestart:
    """crid's side: ``CridDaemon.start`` on a thread (it waits for Version itself)."""

    def __init__(self, daemon: CridDaemon) -> None:
        self.daemon = daemon
        self.socket = daemon.socket
        self._starting: threading.Thread | None = None
        self._failed: BaseException | None = None

    def kill(self) -> None:
        self.daemon.kill()

    def spawn(self) -> None:
        def start() -> None:
            try:
                self.daemon.start()
            except BaseException as error:
                self._failed = error
        self._starting = threading.Thread(target=start, daemon=True)
        self._starting.start()

    def ready(self) -> api_pb2_grpc.RuntimeServiceStub:
        assert self._starting is not None
        self._starting.join()
        if self._failed is not None:
            raise self._failed
        return self.daemon.runtime


class ContainerdRestart:
    """containerd's side: the same config, the shims left by the killed one."""

    def __init__(self, containerd: Containerd) -> None:
        self.containerd = containerd
        self.socket = containerd.workdir / "containerd.sock"

    def kill(self) -> None:
        self.containerd.process.kill()

    def spawn(self) -> None:
        self.containerd.process.start()

    def ready(self) -> api_pb2_grpc.RuntimeServiceStub:
        # The benchmark's own channel may be backing off after the kill.
        self.containerd.runtime.Version(api_pb2.VersionRequest(), wait_for_ready=True,
                                        timeout=RESTART_TIMEOUT)
        return self.containerd.runtime


def time_to_full_answer(daemon: Restartable, containers: int
                        ) -> tuple[float, api_pb2_grpc.RuntimeServiceStub]:
    """Kill ``daemon``, start it again and time (s, from the spawn) until
    ListContainers lists ``containers`` containers, all RUNNING; a stub to go on with."""
    daemon.kill()
    with grpc.insecure_channel(f"unix://{daemon.socket}", options=FAST_RECONNECT) as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        began = time.perf_counter()
        daemon.spawn()
        seen = "no answer"
        while time.perf_counter() - began < RESTART_TIMEOUT:
            try:
                listed = stub.ListContainers(api_pb2.ListContainersRequest(), timeout=5).containers
            except grpc.RpcError as error:
                seen = f"{error.code()}"
            else:
                running = sum(1 for c in listed if c.state == api_pb2.CONTAINER_RUNNING)
                if len(listed) == containers and running == containers:
                    taken = time.perf_counter() - began
                    return taken, daemon.ready()
                seen = f"{len(listed)} listed, {running} running"
            time.sleep(POLL)
    raise RuntimeError(f"no full answer {RESTART_TIMEOUT:.0f} s after a restart: {seen}")
