"""Finding the exec fork server (``crid.oci.fork_server``) and what it runs, from the host."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2

from e2e.containers.helpers import exec_sync
from e2e.fixtures.daemon import CridDaemon

MODULE = b"crid.oci.fork_server"


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def servers(daemon: CridDaemon) -> list[int]:
    """The daemon's live fork servers (a zombie has no command line)."""
    assert daemon.process is not None
    return [p for p in children(daemon.process.pid) if MODULE in cmdline(p)]


def server(daemon: CridDaemon) -> int:
    found = servers(daemon)
    assert len(found) == 1, f"fork servers of the daemon: {found}"
    return found[0]


def process_of(args: list[str], within: float = 10.0) -> int:
    """The host pid of the one process running ``args`` under a fork server's session."""
    want = b"\0".join(a.encode() for a in args) + b"\0"
    deadline = time.monotonic() + within
    while True:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and cmdline(int(entry.name)) == want:
                pid = int(entry.name)
                try:
                    if MODULE in cmdline(parent(pid)):
                        return pid
                except (OSError, IndexError):
                    pass
        assert time.monotonic() < deadline, f"no {args} under a fork server session"
        time.sleep(0.05)


def reaped(pid: int, within: float) -> bool:
    """Is ``pid`` gone from /proc (exited and reaped, not a zombie) within ``within`` s?"""
    deadline = time.monotonic() + within
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class Background:
    """An ExecSync running in a thread: its response, or the gRPC error it ended with."""

    def __init__(self, daemon: CridDaemon, container_id: str, *cmd: str,
                 timeout: int = 60) -> None:
        self.response: api_pb2.ExecSyncResponse | None = None
        self.error: grpc.RpcError | None = None
        self.ended_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(
            lambda: exec_sync(daemon, container_id, *cmd, timeout=timeout),), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], api_pb2.ExecSyncResponse]) -> None:
        try:
            self.response = call()
        except grpc.RpcError as e:
            self.error = e
        self.ended_at = time.monotonic()

    def join(self, within: float) -> None:
        self._thread.join(within)
        assert not self._thread.is_alive(), f"ExecSync still running after {within} s"
