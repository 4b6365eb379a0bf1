"""A private containerd (Debian's) with its CRI plugin, to compare crid against.

It gets its own root, state, socket and CNI conf dir, the same CNI plugin dir
as crid, and a sandbox (pause) image built from Debian's static catatonit and
pushed to a loopback registry, pulled over plain HTTP through a hosts.toml
mirror config. Nothing of the host's containerd (if any) is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.fixtures.daemon import remove_workdir
from e2e.fixtures.images import Image, RunConfig, push
from e2e.fixtures.layers import File, make_layer
from e2e.fixtures.registry import Registry

CONTAINERD = shutil.which("containerd") or "/usr/bin/containerd"
CATATONIT = Path("/usr/bin/catatonit")


def pause_image() -> Image:
    """A pause image: static catatonit as /pause, run as ``/pause -P``."""
    layer = make_layer([File("/pause", CATATONIT.read_bytes(), mode=0o755)])
    return Image((layer,), config=RunConfig(entrypoint=("/pause", "-P"), cmd=None, env=()))


def _config(workdir: Path, sandbox_image: str, registry_host: str) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""
version = 2
root = "{workdir}/root"
state = "{workdir}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{workdir}/containerd.sock"
[ttrpc]
  address = "{workdir}/containerd.ttrpc.sock"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir}/opt"
[{cri}]
  sandbox_image = "{sandbox_image}"
  # Exec/Attach/PortForward URLs: loopback only, a port picked at start.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Negative oom_score_adj is refused here (EACCES); containerd clamps with this.
  restrict_oom_score_adj = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  BinaryName = "/usr/sbin/runc"
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{workdir}/cni"
[{cri}.registry]
  config_path = "{workdir}/certs.d"
"""


class ContainerdProcess:
    """containerd's own process on ``workdir``'s config, its output appended to
    ``containerd.log`` there; started again on the same config after a kill,
    it finds the shims (and their containers) the killed one left running."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.workdir / "containerd.log", "ab") as log:
            self.process = subprocess.Popen(
                [CONTAINERD, "--config", str(self.workdir / "config.toml")], stdout=log,
                stderr=log, start_new_session=True)

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL, as a crash would: the shims live on."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclasses.dataclass(frozen=True)
class Containerd:
    runtime: api_pb2_grpc.RuntimeServiceStub
    images: api_pb2_grpc.ImageServiceStub
    workdir: Path  # its root, state, socket and config: in the command lines of it and its shims
    process: ContainerdProcess


@contextlib.contextmanager
def private_containerd(registry: Registry, conflist: dict[str, object],
                       pull: Sequence[str] = ()) -> Iterator[api_pb2_grpc.RuntimeServiceStub]:
    """A running containerd with the pause image (and ``pull``, references on
    ``registry``) pulled; its RuntimeService stub."""
    with containerd_daemon(registry, conflist, pull) as containerd:
        yield containerd.runtime


@contextlib.contextmanager
def containerd_daemon(registry: Registry, conflist: dict[str, object], pull: Sequence[str] = (),
                      mirrors: Sequence[str] = (), keep_workdir: bool = False
                      ) -> Iterator[Containerd]:
    """A running containerd with the pause image (and ``pull``) pulled; it
    pulls the registries named in ``mirrors`` (``registry.k8s.io``...) from
    ``registry`` too, under the same repository paths. ``keep_workdir``: its
    dir is the caller's to remove (``Containerd.workdir``)."""
    pushed = push(registry, "pause", "bench", pause_image())
    workdir = Path(tempfile.mkdtemp(prefix="crid-ctrd-", dir="/tmp"))
    (workdir / "cni").mkdir()
    (workdir / "cni" / "10-bench.conflist").write_text(json.dumps(conflist))
    for name in (registry.host, *mirrors):
        hosts = workdir / "certs.d" / name
        hosts.mkdir(parents=True)
        hosts.joinpath("hosts.toml").write_text(
            f'server = "{registry.url}"\n[host."{registry.url}"]\n'
            '  capabilities = ["pull", "resolve"]\n')
    config = workdir / "config.toml"
    config.write_text(_config(workdir, pushed.reference, registry.host))
    process = ContainerdProcess(workdir)
    process.start()
    channel = grpc.insecure_channel(f"unix://{workdir}/containerd.sock")
    runtime = api_pb2_grpc.RuntimeServiceStub(channel)
    try:
        images = api_pb2_grpc.ImageServiceStub(channel)
        _wait_ready(runtime, process, workdir)
        for reference in (pushed.reference, *pull):
            images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=reference)))
        yield Containerd(runtime, images, workdir, process)
    finally:
        # Left running, a pod's shims and containers would outlive containerd.
        with contextlib.suppress(grpc.RpcError):
            remove_all_pods(runtime)
        channel.close()
        process.stop()
        if not keep_workdir and os.environ.get("CRID_KEEP_WORKDIR") != "1":
            remove_workdir(workdir)


def remove_all_pods(runtime: api_pb2_grpc.RuntimeServiceStub) -> None:
    for pod in runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items:
        runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=30)
        runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id),
                                 timeout=30)


def _wait_ready(runtime: api_pb2_grpc.RuntimeServiceStub, process: ContainerdProcess,
                workdir: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.exited():
            raise RuntimeError("containerd exited:\n"
                               + (workdir / "containerd.log").read_text(errors="replace"))
        try:
            runtime.Version(api_pb2.VersionRequest(), timeout=1)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise RuntimeError("containerd did not answer:\n"
                                   + (workdir / "containerd.log").read_text()) from None
            time.sleep(0.1)
