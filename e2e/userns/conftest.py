"""One daemon with a busybox image (the containers' one), and pods in a user
namespace of their own (``hostUsers: false``) on the crid handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Pod, PodMaker, env, make_pod  # noqa: F401

HOST_ID = 200000  # the pod's root on the host; kubelet hands out such 65536-id ranges
LENGTH = 65536

UsernsPodMaker = Callable[..., Pod]


def userns_options(host_id: int = HOST_ID, length: int = LENGTH, pid: Any = api_pb2.CONTAINER,
                   sysctls: dict[str, str] | None = None) -> api_pb2.LinuxPodSandboxConfig:
    mapping = [api_pb2.IDMapping(container_id=0, host_id=host_id, length=length)]
    return api_pb2.LinuxPodSandboxConfig(sysctls=sysctls or {},
                                         security_context=api_pb2.LinuxSandboxSecurityContext(
        namespace_options=api_pb2.NamespaceOption(
            network=api_pb2.POD, ipc=api_pb2.POD, pid=pid,
            userns_options=api_pb2.UserNamespace(mode=api_pb2.POD, uids=mapping,
                                                 gids=mapping))))


@pytest.fixture
def handler() -> str:
    """Only crid's runtime offers user namespaces (runc 1.1 has no idmapped mounts)."""
    return "crid"


@pytest.fixture
def make_userns_pod(make_pod: PodMaker) -> UsernsPodMaker:  # noqa: F811
    """Run crid pods in a user namespace (host ids from ``host_id``); removed after."""
    def make(**options: Any) -> Pod:
        return make_pod(linux=userns_options(**options))

    return make
