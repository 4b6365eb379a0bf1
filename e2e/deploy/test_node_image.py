"""The node image, built here and run by crid as its DaemonSet says.

The one test of the ``Dockerfile`` and ``manifests/daemonset.yaml``: the
image is built on an mmdebstrap base (``e2e.deploy.node_image``), pushed to
the test registry, and the DaemonSet's pod template is run by a private crid
(``e2e.deploy.daemonset`` makes kubelet's CRI calls) on a node whose
hostPaths live in a temp dir. The crid inside must come up on the socket the
manifest shares, pull through the registries config the node gives it, and
run a pod on its own pod network with the CNI plugins of the image. The node
pod is then restarted, as a rollout of the DaemonSet does: the pod inside
must keep running and the new crid must find it. Then everything is stopped
and nothing may be left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc

import crid
from e2e.containers.helpers import log_texts, verbose_pid
from e2e.deploy import node_image
from e2e.deploy.daemonset import NodeRoot, PodPlan, load_daemonset, plan_pod, pod_spec
from e2e.fixtures.daemon import CridDaemon, mounts_under, remove_workdir
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_daemon

MANIFEST = node_image.CHECKOUT / "manifests" / "daemonset.yaml"
# The image name the manifest's template uses; the test runs the pushed build.
MANIFEST_IMAGE = "crid:latest"
# A registry name that resolves nowhere: only the node's registries.conf
# (its location rewrite to the loopback registry) makes it pullable.
INNER_REGISTRY = "registry.crid.invalid"
INNER_START_TIMEOUT = 60.0
STOP_TIMEOUT = 30

# Image build (a minute the first time, mmdebstrap and apt included), pulls
# of a ~330 MB image, two daemons.
pytestmark = pytest.mark.timeout(900)


@contextlib.contextmanager
def node_root() -> Iterator[NodeRoot]:
    """A temp dir standing in for the node's /, a shared mount as systemd makes
    / on a node: Bidirectional hostPaths need one."""
    root = Path(tempfile.mkdtemp(prefix="crid-node-", dir="/tmp"))
    try:
        subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
        subprocess.run(["mount", "--make-rshared", str(root)], check=True)
        yield NodeRoot(root)
    finally:
        remove_workdir(root)


def write_node_files(node: NodeRoot, registry: Registry, inner: PodNet) -> None:
    """What the node's admin puts in the hostPaths the manifest shares: a crid
    drop-in and containers-registries.conf."""
    dropins = node.path("/etc/crid/crid.d")
    dropins.mkdir(parents=True)
    # Host network: the metrics port and the pod network must not be the
    # defaults (9090, crid0, 10.88.0.0/16) that other daemons here may use.
    (dropins / "50-e2e.toml").write_text(
        "[crid]\n"
        'log_level = "debug"\n'
        "[crid.metrics]\n"
        'address = "127.0.0.1:0"\n'
        + inner.config_toml())
    registries = node.path("/etc/containers/registries.conf")
    registries.parent.mkdir(parents=True)
    registries.write_text(
        "[[registry]]\n"
        f'prefix = "{INNER_REGISTRY}"\n'
        f'location = "{registry.host}"\n'
        "insecure = true\n")
    # kubelet's own directory: every node has it; the manifest does not create it.
    node.path("/var/lib/kubelet").mkdir(parents=True)


class NodePod:
    """The DaemonSet's pod on the node, run by the outer crid as kubelet would:
    one sandbox, and a crid container per attempt (a restart is a new one)."""

    def __init__(self, outer: CridDaemon, plan: PodPlan) -> None:
        self.outer = outer
        self.plan = plan
        (self.template,) = plan.containers
        self.pod_id = ""
        self.attempts: list[str] = []  # container ids, oldest first

    def run(self) -> None:
        self.pod_id = self.outer.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=self.plan.sandbox)).pod_sandbox_id

    def start_crid(self) -> str:
        config = api_pb2.ContainerConfig()
        config.CopyFrom(self.template)
        config.metadata.attempt = len(self.attempts)
        config.log_path = f"{config.metadata.name}/{config.metadata.attempt}.log"
        container_id: str = self.outer.runtime.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod_id, config=config,
            sandbox_config=self.plan.sandbox)).container_id
        self.attempts.append(container_id)
        self.outer.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=container_id))
        return container_id

    def status(self, container_id: str) -> api_pb2.ContainerStatus:
        found: api_pb2.ContainerStatus = self.outer.runtime.ContainerStatus(
            api_pb2.ContainerStatusRequest(container_id=container_id)).status
        return found

    def log(self) -> str:
        """The crid container's last log lines (crid logs to stderr), for failures."""
        found = sorted(Path(self.plan.sandbox.log_directory).glob("*/*.log"))
        return "\n".join(log_texts(str(found[-1]))[-60:]) if found else "(no log)"

    def stop_crid(self) -> int:
        container_id = self.attempts[-1]
        self.outer.runtime.StopContainer(api_pb2.StopContainerRequest(
            container_id=container_id, timeout=STOP_TIMEOUT))
        return int(self.status(container_id).exit_code)

    def wait_for_crid(self, stub: api_pb2_grpc.RuntimeServiceStub) -> api_pb2.VersionResponse:
        """The inner crid's Version, once its socket answers; fails fast if it exits."""
        deadline = time.monotonic() + INNER_START_TIMEOUT
        while True:
            try:
                response: api_pb2.VersionResponse = stub.Version(api_pb2.VersionRequest(),
                                                                 timeout=2)
                return response
            except grpc.RpcError:
                state = self.status(self.attempts[-1])
                assert state.state == api_pb2.CONTAINER_RUNNING, (
                    f"the node container exited ({state.exit_code}): {self.log()}")
                assert time.monotonic() < deadline, f"inner crid never answered: {self.log()}"
                time.sleep(0.2)


def assert_same_crid(pid: int) -> None:
    """The crid running as ``pid`` (in the node container) is the checkout's: its
    entry point is the image's, and every module of the installed package is
    byte for byte the one the tests import (the editable install's link tree)."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"/usr/local/bin/crid" in cmdline, cmdline
    inside = Path(f"/proc/{pid}/root")
    installed = sorted(inside.glob("opt/crid/lib/python3*/site-packages/crid"))
    assert len(installed) == 1, installed
    ours = Path(crid.__file__).parent
    sources = sorted(p.relative_to(ours) for p in ours.rglob("*.py"))
    assert sources and sorted(p.relative_to(installed[0])
                              for p in installed[0].rglob("*.py")) == sources
    for relative in sources:
        assert (installed[0] / relative).read_bytes() == (ours / relative).read_bytes(), relative


def nat_rules_naming(network: str) -> list[str]:
    """iptables nat rules the CNI plugins made for ``network`` (their comments name it)."""
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                           check=True).stdout
    return [line for line in saved.splitlines() if f'name: \\"{network}\\"' in line]


def processes_naming(*words: str) -> list[int]:
    """Live processes whose command line mentions any of ``words`` (container ids)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(word in text for word in words):
                found.append(int(cmdline.parent.name))
    return found


@dataclass
class InnerPod:
    """The pod the test runs through the crid inside the node pod."""

    stub: api_pb2_grpc.RuntimeServiceStub
    images: api_pb2_grpc.ImageServiceStub
    node: NodeRoot
    net: PodNet
    name: str = field(default_factory=lambda: f"inner-{uuid.uuid4().hex[:6]}")
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    image_ref: str = ""
    pod_id: str = ""
    container_id: str = ""

    @property
    def log_directory(self) -> str:
        # As the inner crid sees it: /var/log/pods is a hostPath of the manifest.
        return f"/var/log/pods/e2e_{self.name}_{self.uid}"

    def log(self) -> list[str]:
        """The container's log lines, read on the node: conmon inside the node
        container wrote them through the manifest's hostPath."""
        path = self.node.path(self.log_directory) / "hello" / "0.log"
        return log_texts(str(path)) if path.exists() else []

    def run(self, image: str) -> None:
        """Pull, RunPodSandbox, CreateContainer, StartContainer; it says hello and waits."""
        self.image_ref = self.images.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=image))).image_ref
        # Namespaces as kubelet asks for a plain pod: the container has its own
        # PID namespace (the CRI's zero value would share the pod's).
        namespaces = api_pb2.NamespaceOption(pid=api_pb2.CONTAINER)
        config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=self.name, uid=self.uid, namespace="e2e"),
            hostname=self.name, log_directory=self.log_directory,
            linux=api_pb2.LinuxPodSandboxConfig(
                security_context=api_pb2.LinuxSandboxSecurityContext(
                    namespace_options=namespaces)))
        self.pod_id = self.stub.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.container_id = self.stub.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod_id, sandbox_config=config,
            config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="hello"),
                image=api_pb2.ImageSpec(image=self.image_ref),
                # The shell is PID 1 of the container: without the trap it
                # would ignore StopContainer's SIGTERM.
                command=["/bin/sh", "-c",
                         "echo hello from $(hostname); ip -4 -o addr show dev eth0; "
                         "trap 'exit 0' TERM; sleep 600 & wait"],
                log_path="hello/0.log",
                linux=api_pb2.LinuxContainerConfig(
                    security_context=api_pb2.LinuxContainerSecurityContext(
                        namespace_options=namespaces))))).container_id
        self.stub.StartContainer(api_pb2.StartContainerRequest(container_id=self.container_id))
        deadline = time.monotonic() + 30
        while len(self.log()) < 2:
            assert self.status().state == api_pb2.CONTAINER_RUNNING, self.status()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.1)

    def status(self) -> api_pb2.ContainerStatus:
        found: api_pb2.ContainerStatus = self.stub.ContainerStatus(
            api_pb2.ContainerStatusRequest(container_id=self.container_id)).status
        return found

    def pid(self) -> int:
        info = self.stub.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=self.container_id, verbose=True)).info["info"]
        return int(json.loads(info)["pid"])

    def remove(self) -> None:
        """StopContainer (it exits 0 on SIGTERM), remove it, its pod and the image."""
        self.stub.StopContainer(api_pb2.StopContainerRequest(
            container_id=self.container_id, timeout=STOP_TIMEOUT))
        stopped = self.status()
        assert (stopped.state, stopped.exit_code) == (api_pb2.CONTAINER_EXITED, 0), stopped
        self.stub.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=self.container_id))
        self.stub.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.pod_id))
        self.stub.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.pod_id))
        self.images.RemoveImage(api_pb2.RemoveImageRequest(
            image=api_pb2.ImageSpec(image=self.image_ref)))
        assert not self.stub.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
        assert not self.stub.ListContainers(api_pb2.ListContainersRequest()).containers
        assert not self.net.cgroup_dirs(), "the inner pod's cgroups were left behind"
        assert not processes_naming(self.pod_id, self.container_id)
        assert not nat_rules_naming(self.net.name), "CNI DEL left nat rules"


def remove_inner_pods(sock: Path, inner: PodNet) -> None:
    """After a failure, best effort: the inner crid's pods outlive it (stopping
    the node container kills crid, not their conmons nor their processes in
    their own cgroups). Through the inner crid if it still runs; what is left
    after that, the test's own processes, is killed by pid."""
    if sock.exists():
        with grpc.insecure_channel(f"unix://{sock}") as channel, \
                contextlib.suppress(grpc.RpcError):
            stub = api_pb2_grpc.RuntimeServiceStub(channel)
            for pod in stub.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=5).items:
                stub.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id),
                                    timeout=STOP_TIMEOUT)
                stub.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id),
                                      timeout=STOP_TIMEOUT)
    pids = set()
    for cgroup in inner.cgroup_dirs():
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_daemonset_runs_its_own_image(registry: Registry) -> None:
    started = time.monotonic()
    built = node_image.build()
    node_reference = registry.ref("crid/node", built.rsplit(":", 1)[1])
    node_image.push(built, node_reference)
    push(registry, "e2e/busybox", "inner",
         busybox_image(config=RunConfig(cmd=("/bin/sh",), env=("PATH=/bin",))))
    built_in = time.monotonic() - started

    daemonset = load_daemonset(MANIFEST)
    assert [c.image for c in pod_spec(daemonset).containers] == [MANIFEST_IMAGE]
    inner_net = PodNet()
    with node_root() as node, pod_daemon() as (outer, outer_net):
        # The manifest's `run` hostPath is where the node's kubelet finds crid.
        sock = node.path("/run/crid/crid.sock")
        try:
            write_node_files(node, registry, inner_net)
            node_pod = NodePod(outer, plan_pod(daemonset, node, {MANIFEST_IMAGE: node_reference},
                                               log_root=node.path("/var/log/pods")))
            outer.image.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=node_reference)))
            node_pod.run()
            first = node_pod.start_crid()
            with grpc.insecure_channel(f"unix://{sock}") as channel:
                inner = InnerPod(api_pb2_grpc.RuntimeServiceStub(channel),
                                 api_pb2_grpc.ImageServiceStub(channel), node, inner_net)
                version = node_pod.wait_for_crid(inner.stub)
                assert version.runtime_name == "crid"
                assert version.runtime_version == crid.__version__
                crid_pid = verbose_pid(outer, first)
                assert_same_crid(crid_pid)
                # hostNetwork, hostPID, hostIPC: the node's own namespaces.
                for kind in ("net", "pid", "ipc"):
                    assert os.readlink(f"/proc/{crid_pid}/ns/{kind}") == \
                        os.readlink(f"/proc/self/ns/{kind}"), kind

                inner.run(f"{INNER_REGISTRY}/e2e/busybox:inner")
                hello, address = inner.log()[:2]
                assert hello == f"hello from {inner.name}"
                # An address of the inner crid's own pod network (its drop-in's
                # subnet): the image's CNI plugins (bridge, host-local) made it,
                # and its iptables (nft) the pod's masquerading on the node.
                assert f"inet 10.88.{inner_net.third}." in address, address
                assert nat_rules_naming(inner_net.name)
                pid = inner.pid()

                # A rollout of the DaemonSet: SIGTERM, crid drains and exits 0
                # within the grace period; the node's pods keep running.
                assert node_pod.stop_crid() == 0, node_pod.log()
                assert not sock.exists(), "the stopped crid left its socket"
                assert not processes_naming(first)
                node_pod.start_crid()
                node_pod.wait_for_crid(inner.stub)
                assert inner.status().state == api_pb2.CONTAINER_RUNNING
                assert inner.pid() == pid
                inner.remove()

            assert node_pod.stop_crid() == 0, node_pod.log()
            for container_id in node_pod.attempts:
                outer.runtime.RemoveContainer(
                    api_pb2.RemoveContainerRequest(container_id=container_id))
            outer.runtime.StopPodSandbox(
                api_pb2.StopPodSandboxRequest(pod_sandbox_id=node_pod.pod_id))
            outer.runtime.RemovePodSandbox(
                api_pb2.RemovePodSandboxRequest(pod_sandbox_id=node_pod.pod_id))

            # Nothing of either crid is left: only the node root's own mount.
            assert mounts_under(node.root) == [str(node.root)]
            assert not mounts_under(outer.root) + mounts_under(outer.runroot)
            assert not outer_net.cgroup_dirs() and not inner_net.cgroup_dirs()
            assert not processes_naming(node_pod.pod_id, *node_pod.attempts)
        finally:
            remove_inner_pods(sock, inner_net)
            inner_net.cleanup()
    # Seen in the test's output (-rA or a failure): the budget is 3 minutes.
    print(f"image built and pushed in {built_in:.0f} s, "
          f"whole test {time.monotonic() - started:.0f} s")
