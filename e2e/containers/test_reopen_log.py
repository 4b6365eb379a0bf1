"""ReopenContainerLog: the new log file exists when the call returns (kubelet's rotation)."""

from __future__ import annotations

import time
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import create, status, wait_state


def test_reopen_creates_the_new_log_before_returning(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image, log_path="rotated.log",
                 command=["/bin/sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(d, cid, api_pb2.CONTAINER_RUNNING)
    log = Path(status(d, cid).log_path)
    deadline = time.monotonic() + 10
    while not log.exists() or not log.read_text():
        assert time.monotonic() < deadline, "the container never logged"
        time.sleep(0.05)
    for _ in range(5):  # the race is lost only sometimes: repeat it
        log.rename(log.with_suffix(".old"))
        d.runtime.ReopenContainerLog(api_pb2.ReopenContainerLogRequest(container_id=cid))
        assert log.exists()
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1))
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
