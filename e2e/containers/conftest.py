"""One daemon on a private pod network with a busybox image pulled, per module."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_config, pod_daemon, stop_remove


@dataclass
class Env:
    daemon: CridDaemon
    net: PodNet
    image: str  # a pulled busybox reference
    image_id: str


@contextlib.contextmanager
def started_env(registry: Registry, extra_toml: str = "") -> Iterator[Env]:
    """A daemon (with ``extra_toml`` in its config) and a pulled busybox."""
    run = RunConfig(cmd=("/bin/sh",), env=("PATH=/bin", "FROM=image"))
    pushed = push(registry, "e2e/busybox", "1", busybox_image(config=run))
    with pod_daemon(extra_toml) as (daemon, net):
        image_id = daemon.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pushed.reference))).image_ref
        yield Env(daemon, net, pushed.reference, image_id)


@pytest.fixture(scope="module")
def env(registry: Registry) -> Iterator[Env]:
    with started_env(registry) as found:
        yield found


# Every container test runs once per handler: crid's own runtime and runc.
@pytest.fixture(params=["crid", "runc"])
def handler(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Pod:
    id: str
    config: api_pb2.PodSandboxConfig


PodMaker = Callable[..., Pod]


@pytest.fixture
def make_pod(env: Env, handler: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[PodMaker]:
    """Run pods of the test's handler with extra ``PodSandboxConfig`` fields; removed after."""
    made: list[str] = []

    def make(**fields: Any) -> Pod:
        logs = tmp_path_factory.mktemp("pod-logs")
        config = pod_config(log_directory=str(logs), **fields)
        pod_id = str(env.daemon.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=config, runtime_handler=handler)).pod_sandbox_id)
        made.append(pod_id)
        return Pod(pod_id, config)

    yield make
    for pod_id in made:
        stop_remove(env.daemon, pod_id)


@pytest.fixture
def pod(make_pod: PodMaker) -> Pod:
    return make_pod()
