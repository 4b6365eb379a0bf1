"""Making, starting and reading containers in e2e tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon


def create(daemon: CridDaemon, pod_id: str, sandbox: api_pb2.PodSandboxConfig, image: str,
           *, name: str | None = None, **fields: Any) -> str:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name or f"c-{uuid.uuid4().hex[:6]}"),
        image=api_pb2.ImageSpec(image=image), **fields)
    return str(daemon.runtime.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox)).container_id)


def status(daemon: CridDaemon, container_id: str) -> api_pb2.ContainerStatus:
    found: api_pb2.ContainerStatus = daemon.runtime.ContainerStatus(
        api_pb2.ContainerStatusRequest(container_id=container_id)).status
    return found


def wait_state(daemon: CridDaemon, container_id: str, state: int,
               timeout: float = 15) -> api_pb2.ContainerStatus:
    deadline = time.monotonic() + timeout
    while (found := status(daemon, container_id)).state != state:
        assert time.monotonic() < deadline, f"container stayed {found.state}, wanted {state}"
        time.sleep(0.05)
    return found


def exec_sync(daemon: CridDaemon, container_id: str, *cmd: str,
              timeout: int = 10) -> api_pb2.ExecSyncResponse:
    response: api_pb2.ExecSyncResponse = daemon.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=container_id, cmd=list(cmd), timeout=timeout))
    return response
