"""crid and a private Debian containerd side by side, the same busybox image pulled on both.

What the benchmarks and the streaming cross-check compare: each runtime on
its own pod network (bridge, subnet, cgroup parent), driven over CRI.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench._containerd import private_containerd
from e2e.bench.sandbox import bridge_conflist
from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_daemon


@dataclasses.dataclass(frozen=True)
class SideBySide:
    image: str  # the busybox reference both have pulled
    crid: CridDaemon
    crid_net: PodNet
    containerd: api_pb2_grpc.RuntimeServiceStub
    containerd_net: PodNet


@contextlib.contextmanager
def side_by_side(registry: Registry, repository: str) -> Iterator[SideBySide]:
    """Both runtimes up, with ``repository:1`` (busybox) pushed to ``registry`` and pulled."""
    image = push(registry, repository, "1",
                 busybox_image(config=RunConfig(cmd=("/bin/sh",), env=("PATH=/bin",))))
    with contextlib.ExitStack() as stack:
        crid, crid_net = stack.enter_context(pod_daemon(extra_args=("--log-level", "warning")))
        crid.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=image.reference)))
        containerd_net = PodNet()
        stack.callback(containerd_net.cleanup)
        containerd = stack.enter_context(private_containerd(
            registry, bridge_conflist(containerd_net), pull=(image.reference,)))
        # pod_daemon and private_containerd remove every pod they hold on exit.
        yield SideBySide(image.reference, crid, crid_net, containerd, containerd_net)
