"""kill -9 the daemon with containers running: nothing is lost."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import (
    assert_unchanged,
    create,
    exec_sync,
    gone_or_zombie,
    leftovers,
    pull,
    run,
    status,
    wait_state,
)
from e2e.fixtures.daemon import mounts_under
from e2e.fixtures.images import multi_layer_image
from e2e.fixtures.registry import Registry


def test_containers_survive_a_killed_daemon_and_exits_meanwhile_are_reported(
    env: Env, pod: Pod
) -> None:
    d = env.daemon
    running = [create(d, pod.id, pod.config, env.image, command=["/bin/sleep", "600"])
               for _ in range(5)]
    short = create(d, pod.id, pod.config, env.image,
                   command=["/bin/sh", "-c", "sleep 1; exit 9"])
    for cid in (*running, short):
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    for cid in running:
        wait_state(d, cid, api_pb2.CONTAINER_RUNNING)
    before = {cid: status(d, cid).started_at for cid in running}

    d.kill()
    time.sleep(1.5)  # the short one exits while no daemon is there
    d.start()

    for cid in running:
        found = status(d, cid)
        assert found.state == api_pb2.CONTAINER_RUNNING
        assert found.started_at == before[cid]
        assert exec_sync(d, cid, "/bin/echo", "alive").stdout == b"alive\n"
    exited = wait_state(d, short, api_pb2.CONTAINER_EXITED)
    assert (exited.exit_code, exited.reason) == (9, "Error")

    # And the restarted daemon still notices exits as they happen.
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=running[0], timeout=5))
    assert status(d, running[0]).exit_code == 143


def test_a_killed_monitor_leaves_a_container_that_can_still_be_removed(
    env: Env, pod: Pod
) -> None:
    d = env.daemon
    cid = run(d, pod.id, pod.config, env.image)
    info = json.loads(d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid, verbose=True)).info["info"])
    pid, conmon = info["pid"], info["monitorPid"]
    os.kill(conmon, signal.SIGKILL)
    gone = wait_state(d, cid, api_pb2.CONTAINER_UNKNOWN)
    assert "conmon" in gone.message
    # Stop still ends the process, though no monitor is left to report its exit.
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=2))
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text():
        assert time.monotonic() < deadline, "the container's process outlived StopContainer"
        time.sleep(0.05)
    stopped = status(d, cid)
    assert (stopped.state, stopped.exit_code) == (api_pb2.CONTAINER_EXITED, 137)
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert not [m for m in mounts_under(d.runroot) if cid in m]
    assert not (d.root / "containers" / cid).exists()


def test_a_monitor_killed_while_stop_waits_leaves_the_container_exited(
    env: Env, pod: Pod
) -> None:
    # Found by e2e/chaos: the wait for the stop signal's effect ended when conmon
    # vanished (UNKNOWN), and StopContainer returned success with the container
    # still UNKNOWN and, for all the stop knew, running.
    d = env.daemon
    cid = run(d, pod.id, pod.config, env.image,
              command=["/bin/sh", "-c", "trap '' TERM; sleep 600 & wait"])
    conmon = json.loads(d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid, verbose=True)).info["info"])["monitorPid"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(d.runtime.StopContainer,
                               api_pb2.StopContainerRequest(container_id=cid, timeout=5))
        time.sleep(1)  # the stop is waiting out its grace period
        os.kill(conmon, signal.SIGKILL)
        stopping.result(timeout=30)
    stopped = status(d, cid)
    assert (stopped.state, stopped.exit_code) == (api_pb2.CONTAINER_EXITED, 137)
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))


def test_a_container_created_without_its_row_is_removed_at_start(
    env: Env, pod: Pod, registry: Registry
) -> None:
    # crid killed after conmon made the container, before the row was written:
    # played here by deleting the row of a running container while crid is down.
    d = env.daemon
    volume_image = pull(d, registry, multi_layer_image())
    before = leftovers(env, pod)
    cid = run(d, pod.id, pod.config, env.image, mounts=[api_pb2.Mount(
        container_path="/vol", readonly=True, image=api_pb2.ImageSpec(image=volume_image))])
    pid = json.loads(d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid, verbose=True)).info["info"])["pid"]
    d.kill()
    with sqlite3.connect(d.root / "crid.db") as db:
        assert db.execute("DELETE FROM containers WHERE id = ?", (cid,)).rowcount == 1
    d.start()
    assert gone_or_zombie(pid, within=10)
    assert_unchanged(env, pod, before)

