"""kill -9 the daemon in a pod that shares one PID namespace (an infra process,
catatonit, is its PID 1): what start-up removes of an unfinished create takes
that container only, and an infra process that dies for real makes the pod
not ready, in its row as in every listing, with a log line saying why.

Found by e2e/chaos (issue 20): shared-PID pods lost their infra around daemon
kills, their containers exiting with 137.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, PodMaker
from e2e.containers.helpers import create, exec_sync, gone_or_zombie, run, status
from e2e.containers.test_namespaces import pid_mode
from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import info, namespace_options

SHARED = pid_mode(api_pb2.POD)


def _pid(d: CridDaemon, cid: str) -> int:
    return int(json.loads(d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid, verbose=True)).info["info"])["pid"])


def _row_state(d: CridDaemon, pod_id: str) -> str:
    with sqlite3.connect(d.root / "crid.db") as db:
        row = db.execute("SELECT state FROM sandboxes WHERE id = ?", (pod_id,)).fetchone()
    return str(row[0])


def _listed_state(d: CridDaemon, pod_id: str) -> Any:
    items = d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(id=pod_id))).items
    return items[0].state


def _alive(pid: int) -> bool:
    return not gone_or_zombie(pid)


def _shared_pod(env: Env, make_pod: PodMaker) -> tuple[Pod, int, str]:
    """A pod sharing one PID namespace, the host pid of its infra process, and a
    container running in it."""
    pod = make_pod(linux=namespace_options(pid=api_pb2.POD))
    infra = int(info(env.daemon, pod.id)["pid"])
    assert infra and _alive(infra)
    cid = run(env.daemon, pod.id, pod.config, env.image, command=["/bin/sleep", "601"],
              linux=SHARED)
    return pod, infra, cid


def _forget_rows(d: CridDaemon, *cids: str) -> None:
    """Play a crid killed after conmon made a container, before its row: the
    rows of ``cids`` go while crid is down."""
    with sqlite3.connect(d.root / "crid.db") as db:
        for cid in cids:
            assert db.execute("DELETE FROM containers WHERE id = ?", (cid,)).rowcount == 1


def test_unfinished_creates_in_a_shared_pid_pod_take_only_themselves(
    env: Env, make_pod: PodMaker
) -> None:
    d = env.daemon
    pod, infra, kept = _shared_pod(env, make_pod)
    kept_pid = _pid(d, kept)
    # Two creates crid did not finish: one its conmon started, one only created.
    started = run(d, pod.id, pod.config, env.image, command=["/bin/sleep", "602"],
                  linux=SHARED)
    started_pid = _pid(d, started)
    created = create(d, pod.id, pod.config, env.image, command=["/bin/sleep", "603"],
                     linux=SHARED)
    created_pid = _pid(d, created)

    d.kill()
    _forget_rows(d, started, created)
    d.start()

    assert gone_or_zombie(started_pid, within=10)
    assert gone_or_zombie(created_pid, within=10)
    for cid in (started, created):
        assert not (d.runroot / "containers" / cid).exists()
        assert not (d.root / "containers" / cid).exists()
    time.sleep(1.0)  # a pod killed with them would show by now
    assert _alive(infra), "the pod's infra process died with an unfinished create"
    assert _alive(kept_pid)
    found = status(d, kept)
    assert found.state == api_pb2.CONTAINER_RUNNING, (found.exit_code, found.message)
    assert exec_sync(d, kept, "/bin/echo", "alive").stdout == b"alive\n"
    assert info(d, pod.id)["status"].state == api_pb2.SANDBOX_READY
    assert _listed_state(d, pod.id) == api_pb2.SANDBOX_READY
    assert _row_state(d, pod.id) == "ready"
    # And the pod still takes containers.
    again = run(d, pod.id, pod.config, env.image, command=["/bin/sleep", "604"], linux=SHARED)
    assert exec_sync(d, again, "/bin/echo", "alive").stdout == b"alive\n"


def _wait_not_ready(d: CridDaemon, pod_id: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while _row_state(d, pod_id) != "notready":
        assert time.monotonic() < deadline, "the pod's row stayed READY"
        time.sleep(0.05)


def _logged_infra_death(d: CridDaemon, pod_id: str) -> bool:
    return any("infra process" in line and pod_id in line
               for line in d.stderr_text().splitlines())


def test_an_infra_process_killed_makes_the_pod_not_ready_everywhere(
    env: Env, make_pod: PodMaker
) -> None:
    d = env.daemon
    pod, infra, cid = _shared_pod(env, make_pod)
    os.kill(infra, signal.SIGKILL)

    _wait_not_ready(d, pod.id)
    assert info(d, pod.id)["status"].state == api_pb2.SANDBOX_NOTREADY
    assert _listed_state(d, pod.id) == api_pb2.SANDBOX_NOTREADY
    assert _logged_infra_death(d, pod.id)
    # PID 1 of the namespace gone: the kernel killed the rest of it.
    exited = status(d, cid)
    deadline = time.monotonic() + 10
    while exited.state != api_pb2.CONTAINER_EXITED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        exited = status(d, cid)
    assert exited.exit_code == 137


def test_an_infra_process_killed_while_crid_is_down_is_noticed_at_start(
    env: Env, make_pod: PodMaker
) -> None:
    d = env.daemon
    pod, infra, _ = _shared_pod(env, make_pod)
    d.kill()
    os.kill(infra, signal.SIGKILL)
    assert gone_or_zombie(infra, within=10)
    d.start()

    _wait_not_ready(d, pod.id)
    assert info(d, pod.id)["status"].state == api_pb2.SANDBOX_NOTREADY
    assert _listed_state(d, pod.id) == api_pb2.SANDBOX_NOTREADY
    assert _logged_infra_death(d, pod.id)


def test_a_ready_shared_pid_pod_survives_a_killed_daemon(env: Env, make_pod: PodMaker) -> None:
    d = env.daemon
    pod, infra, cid = _shared_pod(env, make_pod)
    d.kill()
    d.start()
    time.sleep(1.0)
    assert _alive(infra)
    assert Path(f"/proc/{infra}").exists()
    assert status(d, cid).state == api_pb2.CONTAINER_RUNNING
    assert _listed_state(d, pod.id) == api_pb2.SANDBOX_READY
    assert _row_state(d, pod.id) == "ready"
    assert not _logged_infra_death(d, pod.id)
