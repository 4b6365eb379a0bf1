"""The state database damaged for real: crid refuses it, never serves an empty state.

At start: the file immutable (``chattr +i``: what a read-only disk answers),
a page overwritten, cut in half, or truncated to nothing while a container
runs. Each time crid exits 1 naming the file and what to do, and touches
nothing: with the file restored, the container is still there and running.
While running: the file turns immutable under the daemon; the calls that
write fail with UNAVAILABLE and leave nothing (no row in memory, no pod
dir), and work again once the disk takes writes.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, started_env
from e2e.containers.helpers import create, run, status
from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_config, run_pod, stop_remove

PAGE = 4096


@pytest.fixture(scope="module")
def env(registry: Registry) -> Iterator[Env]:
    with started_env(registry) as found:
        yield found


def database(daemon: CridDaemon) -> Path:
    return daemon.root / "crid.db"


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    there = [p for p in paths if p.exists()]
    subprocess.run(["chattr", "+i", *map(str, there)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, there)], check=True)


def refused_start(daemon: CridDaemon) -> str:
    """Start crid on the damaged state: it must exit 1; what it printed."""
    done = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr[-2000:]
    assert not daemon.socket.exists()
    return done.stderr


def test_a_damaged_or_lost_database_stops_crid_from_starting(env: Env) -> None:
    d = env.daemon
    pod_id = run_pod(d, config := pod_config())
    cid = run(d, pod_id, config, env.image)
    assert d.stop() == 0  # containers go on running without the daemon
    db = database(d)
    companions = [Path(f"{db}{suffix}") for suffix in ("-wal", "-shm")]
    saved = d.workdir / "saved.db"
    shutil.copy2(db, saved)
    assert not companions[0].exists() or companions[0].stat().st_size == 0  # checkpointed
    try:
        with immutable(db):
            out = refused_start(d)
        assert f"crid: the state database {db} cannot be opened for writing" in out
        assert "Operation not permitted" in out and "chattr -i" in out

        size = db.stat().st_size
        with open(db, "r+b") as f:  # a page of rows overwritten: only quick_check sees it
            f.seek(size - PAGE)
            f.write(b"\xff" * PAGE)
        out = refused_start(d)
        assert f"crid: the state database {db} is damaged" in out
        assert "Restore it from a backup" in out

        shutil.copy2(saved, db)
        with open(db, "r+b") as f:
            f.truncate(size // 2)
        assert f"the state database {db} is damaged" in refused_start(d)

        # Truncated to nothing (SQLite would open it as a new, empty database)
        # while the pod and its running container are on the node.
        db.write_bytes(b"")
        for companion in companions:
            companion.unlink(missing_ok=True)
        out = refused_start(d)
        assert f"the state database {db} is missing or empty" in out
        assert f"{d.runroot / 'pods'} (1)" in out
        assert f"{d.runroot / 'containers'} (1)" in out
        db.unlink()  # deleted outright: the same
        assert f"the state database {db} is missing or empty" in refused_start(d)
    finally:
        shutil.copy2(saved, db)
        for companion in companions:
            companion.unlink(missing_ok=True)
    d.start()
    # Nothing was touched by the refused starts: the container is still recorded and runs.
    assert status(d, cid).state == api_pb2.CONTAINER_RUNNING
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=2))
    stop_remove(d, pod_id)


def test_a_database_that_turns_read_only_fails_writes_and_keeps_nothing(env: Env) -> None:
    d = env.daemon
    db = database(d)
    kept_id = run_pod(d, kept_config := pod_config())
    pods_before = sorted(p.name for p in (d.runroot / "pods").iterdir())
    refused = pod_config()
    with immutable(db, Path(f"{db}-wal")):
        with pytest.raises(grpc.RpcError) as caught:
            run_pod(d, refused)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"cannot write the state database {db}" in (caught.value.details() or "")
        with pytest.raises(grpc.RpcError) as caught:
            create(d, kept_id, kept_config, env.image, command=["/bin/sleep", "60"])
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # The copy in memory is not ahead of the disk, and the failed calls left nothing.
        names = {p.metadata.name for p in d.runtime.ListPodSandbox(
            api_pb2.ListPodSandboxRequest()).items}
        assert refused.metadata.name not in names and kept_config.metadata.name in names
        assert not d.runtime.ListContainers(api_pb2.ListContainersRequest(
            filter=api_pb2.ContainerFilter(pod_sandbox_id=kept_id))).containers
        assert sorted(p.name for p in (d.runroot / "pods").iterdir()) == pods_before
        assert not list((d.runroot / "containers").iterdir())
    # The disk takes writes again: so do the calls, and a restart finds what they wrote.
    again = pod_config(name=f"again-{uuid.uuid4().hex[:6]}")
    again_id = run_pod(d, again)
    d.restart()
    found = {p.id for p in d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
    assert {kept_id, again_id} <= found
    for pod_id in (kept_id, again_id):
        stop_remove(d, pod_id)
