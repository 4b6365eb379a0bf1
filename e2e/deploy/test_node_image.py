"""The node image, built here and run by crid as its DaemonSet says.

The one test of the ``Dockerfile`` and ``manifests/daemonset.yaml``: the
image is built on an mmdebstrap base (``e2e.deploy.node_image``), pushed to
the test registry, and the DaemonSet's pod template is run by a private crid
(``e2e.deploy.daemonset`` makes kubelet's CRI calls) on a node whose
hostPaths live in a temp dir. The crid inside must come up on the socket the
manifest shares, pull through the registries config the node gives it, and
run a pod on its own pod network with the CNI plugins of the image; then
everything is stopped and nothing may be left behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc

import crid
from e2e.containers.helpers import log_texts, verbose_pid
from e2e.deploy import node_image
from e2e.deploy.daemonset import NodeRoot, PodPlan, load_daemonset, plan_pod, pod_spec
from e2e.fixtures.daemon import CridDaemon, free_port, mounts_under, remove_workdir
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
        f'address = "127.0.0.1:{free_port()}"\n'
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


def outer_log(plan: PodPlan) -> str:
    path = Path(plan.sandbox.log_directory) / plan.containers[0].log_path
    return "\n".join(log_texts(str(path))[-60:]) if path.exists() else "(no log)"


def wait_for_inner(outer: CridDaemon, container_id: str, plan: PodPlan,
                   stub: api_pb2_grpc.RuntimeServiceStub) -> api_pb2.VersionResponse:
    """The inner crid's Version, once its socket answers; fails fast if it exits."""
    deadline = time.monotonic() + INNER_START_TIMEOUT
    while True:
        try:
            response: api_pb2.VersionResponse = stub.Version(api_pb2.VersionRequest(),
                                                             timeout=2)
            return response
        except grpc.RpcError:
            state = outer.runtime.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=container_id)).status
            assert state.state == api_pb2.CONTAINER_RUNNING, (
                f"the node container exited ({state.exit_code}): {outer_log(plan)}")
            assert time.monotonic() < deadline, f"inner crid never answered: {outer_log(plan)}"
            time.sleep(0.2)


def wait_exited(stub: api_pb2_grpc.RuntimeServiceStub, container_id: str,
                timeout: float = 30) -> api_pb2.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        status: api_pb2.ContainerStatus = stub.ContainerStatus(
            api_pb2.ContainerStatusRequest(container_id=container_id)).status
        if status.state == api_pb2.CONTAINER_EXITED:
            return status
        assert time.monotonic() < deadline, f"container stayed {status.state}"
        time.sleep(0.1)


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


def processes_naming(*words: str) -> list[str]:
    """Command lines of live processes that mention any of ``words`` (container ids)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(word in text for word in words):
                found.append(text)
    return found


def remove_inner_pods(sock: Path) -> None:
    """Best effort: stop and remove every pod the inner crid has (if it still runs)."""
    if not sock.exists():
        return
    with grpc.insecure_channel(f"unix://{sock}") as channel, \
            contextlib.suppress(grpc.RpcError):
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        for pod in stub.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=5).items:
            stub.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id),
                                timeout=STOP_TIMEOUT)
            stub.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id),
                                  timeout=STOP_TIMEOUT)


def run_inner_pod(stub: api_pb2_grpc.RuntimeServiceStub,
                  images: api_pb2_grpc.ImageServiceStub, image: str, node: NodeRoot,
                  inner: PodNet) -> list[str]:
    """One pod with one container through the inner crid; the container's ids
    and what it logged. Everything is removed again before returning."""
    pulled = images.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=image))).image_ref
    name = f"inner-{uuid.uuid4().hex[:6]}"
    uid = uuid.uuid4().hex
    # Paths as the inner crid sees them: /var/log/pods is a hostPath of the manifest.
    log_directory = f"/var/log/pods/e2e_{name}_{uid}"
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid, namespace="e2e"),
        hostname=name, log_directory=log_directory)
    pod_id = stub.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        container_id = stub.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, sandbox_config=config,
            config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="hello"),
                image=api_pb2.ImageSpec(image=pulled),
                command=["/bin/sh", "-c",
                         "echo hello from $(hostname); ip -4 -o addr show dev eth0"],
                log_path="hello/0.log"))).container_id
        stub.StartContainer(api_pb2.StartContainerRequest(container_id=container_id))
        done = wait_exited(stub, container_id)
        assert done.exit_code == 0, done
        # The image's iptables (nft) set up the pod's masquerading on the node.
        assert nat_rules_naming(inner.name)
        # The log, written by conmon inside the node container, reaches the node.
        texts = log_texts(str(node.path(log_directory) / "hello" / "0.log"))
        stub.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=container_id))
    finally:
        stub.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        stub.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    images.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=pulled)))
    assert not stub.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert not stub.ListContainers(api_pb2.ListContainersRequest()).containers
    assert not inner.cgroup_dirs(), "the inner pod's cgroups were left behind"
    assert not processes_naming(pod_id, container_id)
    return [name, *texts]


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
    inner = PodNet()
    with node_root() as node, pod_daemon() as (outer, outer_net):
        try:
            write_node_files(node, registry, inner)
            plan = plan_pod(daemonset, node, {MANIFEST_IMAGE: node_reference},
                            log_root=node.path("/var/log/pods"))
            outer.image.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=node_reference)))
            pod_id = outer.runtime.RunPodSandbox(
                api_pb2.RunPodSandboxRequest(config=plan.sandbox)).pod_sandbox_id
            (container,) = plan.containers
            container_id = outer.runtime.CreateContainer(api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=container,
                sandbox_config=plan.sandbox)).container_id
            outer.runtime.StartContainer(
                api_pb2.StartContainerRequest(container_id=container_id))

            # The manifest's `run` hostPath is where the node's kubelet finds crid.
            sock = node.path("/run/crid/crid.sock")
            with grpc.insecure_channel(f"unix://{sock}") as channel:
                stub = api_pb2_grpc.RuntimeServiceStub(channel)
                version = wait_for_inner(outer, container_id, plan, stub)
                assert version.runtime_name == "crid"
                assert version.runtime_version == crid.__version__
                crid_pid = verbose_pid(outer, container_id)
                assert_same_crid(crid_pid)
                # hostNetwork, hostPID, hostIPC: the node's own namespaces.
                for kind in ("net", "pid", "ipc"):
                    assert os.readlink(f"/proc/{crid_pid}/ns/{kind}") == \
                        os.readlink(f"/proc/self/ns/{kind}"), kind
                name, *texts = run_inner_pod(
                    stub, api_pb2_grpc.ImageServiceStub(channel),
                    f"{INNER_REGISTRY}/e2e/busybox:inner", node, inner)
            assert texts[0] == f"hello from {name}"
            # An address of the inner crid's own pod network: the image's CNI
            # plugins (bridge, host-local) made it.
            assert f"inet 10.88.{inner.third}." in texts[1], texts
            assert not nat_rules_naming(inner.name), "CNI DEL left nat rules"

            outer.runtime.StopContainer(api_pb2.StopContainerRequest(
                container_id=container_id, timeout=STOP_TIMEOUT))
            stopped = outer.runtime.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=container_id)).status
            # SIGTERM, and crid shut down cleanly within the grace period.
            assert stopped.exit_code == 0, outer_log(plan)
            assert not sock.exists(), "the inner crid left its socket"
            outer.runtime.RemoveContainer(
                api_pb2.RemoveContainerRequest(container_id=container_id))
            outer.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            outer.runtime.RemovePodSandbox(
                api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

            # Nothing of either crid is left: only the node root's own mount.
            assert mounts_under(node.root) == [str(node.root)]
            assert not mounts_under(outer.root) + mounts_under(outer.runroot)
            assert not outer_net.cgroup_dirs() and not inner.cgroup_dirs()
            assert not processes_naming(pod_id, container_id)
        finally:
            # After a failure: the inner crid's pods outlive it (stopping the node
            # container kills crid, not their conmons nor their processes in
            # their own cgroups); remove them while it still runs, before
            # pod_daemon removes the node container.
            remove_inner_pods(node.path("/run/crid/crid.sock"))
            inner.cleanup()
    # Seen in the test's output (-rA or a failure): the budget is 3 minutes.
    print(f"image built and pushed in {built_in:.0f} s, "
          f"whole test {time.monotonic() - started:.0f} s")
