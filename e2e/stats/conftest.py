"""A daemon whose writable-layer usage refreshes every second, the pod fixture
of the containers tests, and both runtime handlers: stats depend on where the
runtime puts a container's processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, make_pod, pod
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_daemon

__all__ = ["env", "handler", "make_pod", "pod"]
LAYER_REFRESH_TOML = "[crid.stats]\nlayer_refresh_seconds = 1\n"


@pytest.fixture(params=["runc", "crid"])
def handler(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def env(registry: Registry) -> Iterator[Env]:
    run = RunConfig(cmd=("/bin/sh",), env=("PATH=/bin",))
    pushed = push(registry, "e2e/busybox", "1", busybox_image(config=run))
    with pod_daemon(LAYER_REFRESH_TOML) as (daemon, net):
        image_id = daemon.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pushed.reference))).image_ref
        yield Env(daemon, net, pushed.reference, image_id)
