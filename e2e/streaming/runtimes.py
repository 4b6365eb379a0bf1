"""crid and a private Debian containerd side by side, each with a pod running a
busybox container, for the SPDY cross-check and the streaming benchmark.

Both get the same image from one loopback registry, their own bridge and
subnet, and are driven over CRI by the same Python stubs; the pods, the
containers, containerd's private dirs and both bridges are removed on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator

from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench._side_by_side import side_by_side
from e2e.bench.sandbox import pod_config
from e2e.fixtures.registry import Registry


@dataclasses.dataclass
class Target:
    name: str
    runtime: api_pb2_grpc.RuntimeServiceStub
    pod_id: str
    container_id: str

    def exec_url(self, *cmd: str, stdin: bool = False, stderr: bool = True) -> str:
        url: str = self.runtime.Exec(api_pb2.ExecRequest(
            container_id=self.container_id, cmd=list(cmd), stdin=stdin, stdout=True,
            stderr=stderr)).url
        return url

    def port_forward_url(self, port: int) -> str:
        url: str = self.runtime.PortForward(api_pb2.PortForwardRequest(
            pod_sandbox_id=self.pod_id, port=[port])).url
        return url


def start(name: str, runtime: api_pb2_grpc.RuntimeServiceStub, image: str, cgroup_root: str,
          command: list[str], handler: str = "") -> Target:
    """A pod with one running container of ``image``."""
    config = pod_config(cgroup_root)
    pod_id = runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id
    container = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:6]}"),
        image=api_pb2.ImageSpec(image=image), command=command)
    cid = runtime.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container, sandbox_config=config)).container_id
    runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    return Target(name, runtime, pod_id, cid)


@contextlib.contextmanager
def crid_and_containerd(registry: Registry, command: list[str],
                        crid_handler: str = "") -> Iterator[tuple[Target, Target]]:
    """(crid, containerd), each with a running busybox container running ``command``."""
    with side_by_side(registry, "streaming/busybox") as both:
        yield (start("crid", both.crid.runtime, both.image, both.crid_net.cgroup_parent,
                     command, crid_handler),
               start("containerd", both.containerd, both.image,
                     both.containerd_net.cgroup_parent, command))
