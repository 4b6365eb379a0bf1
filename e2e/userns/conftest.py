"""One daemon with a busybox image (the containers' one), and pods in a user
namespace of their own (``hostUsers: false``) on the crid handler."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, env  # noqa: F401  (the module's daemon)
from e2e.sandbox.pods import pod_config, stop_remove

HOST_ID = 200000  # the pod's root on the host; kubelet hands out such 65536-id ranges
LENGTH = 65536

UsernsPodMaker = Callable[..., Pod]


def userns_options(host_id: int = HOST_ID, length: int = LENGTH,
                   pid: Any = api_pb2.CONTAINER) -> api_pb2.LinuxPodSandboxConfig:
    mapping = [api_pb2.IDMapping(container_id=0, host_id=host_id, length=length)]
    return api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
        namespace_options=api_pb2.NamespaceOption(
            network=api_pb2.POD, ipc=api_pb2.POD, pid=pid,
            userns_options=api_pb2.UserNamespace(mode=api_pb2.POD, uids=mapping,
                                                 gids=mapping))))


@pytest.fixture
def make_userns_pod(env: Env, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
                    ) -> Iterator[UsernsPodMaker]:
    """Run pods in a user namespace (host ids from ``host_id``); removed after."""
    made: list[str] = []

    def make(handler: str = "crid", **options: Any) -> Pod:
        logs = tmp_path_factory.mktemp("pod-logs")
        config = pod_config(log_directory=str(logs), linux=userns_options(**options))
        pod_id = str(env.daemon.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=config, runtime_handler=handler)).pod_sandbox_id)
        made.append(pod_id)
        return Pod(pod_id, config)

    yield make
    for pod_id in made:
        stop_remove(env.daemon, pod_id)
