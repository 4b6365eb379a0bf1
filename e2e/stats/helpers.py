"""Running containers that do something measurable, and reading their stats."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import create, wait_state

T = TypeVar("T")


def run(env: Env, pod: Pod, script: str, **fields: Any) -> str:
    """A started container running ``sh -c script``."""
    cid = create(env.daemon, pod.id, pod.config, env.image,
                 command=["/bin/sh", "-c", script], **fields)
    env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(env.daemon, cid, api_pb2.CONTAINER_RUNNING)
    return cid


def container_stats(env: Env, cid: str) -> api_pb2.ContainerStats:
    stats: api_pb2.ContainerStats = env.daemon.runtime.ContainerStats(
        api_pb2.ContainerStatsRequest(container_id=cid)).stats
    return stats


def pod_stats(env: Env, pod_id: str) -> api_pb2.PodSandboxStats:
    stats: api_pb2.PodSandboxStats = env.daemon.runtime.PodSandboxStats(
        api_pb2.PodSandboxStatsRequest(pod_sandbox_id=pod_id)).stats
    return stats


def eventually(probe: Callable[[], T | None], timeout: float = 10,
               what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.1)
