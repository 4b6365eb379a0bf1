"""Issue 15, item 6: names that would become files, CNI arguments or lines.

RunPodSandbox and CreateContainer requests on a real daemon carry a name
with a '/' or a ';' (CNI_ARGS is ``K8S_POD_NAME=...;...``), a hostname or
``dns_config`` entry with a newline and a line of the attacker's after it, a
``log_path`` that leads out of the pod's log directory. Each is refused with
INVALID_ARGUMENT, and leaves nothing: no pod dir, pinned namespace or mount,
no cgroup, no CNI allocation, no row, no bundle, no file where the log path
pointed. What kubelet and critest send (critest's upper-case names longer
than a DNS label) still runs, end to end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from google.protobuf.message import Message

from e2e.containers.helpers import create, pull, sh, wait_state
from e2e.fixtures.daemon import CridDaemon, mounts_under
from e2e.fixtures.images import Image, RunConfig
from e2e.fixtures.layers import busybox_layer
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_config, pod_daemon, stop_remove

INJECTED = "nameserver 6.6.6.6"


@dataclass
class Node:
    daemon: CridDaemon
    net: PodNet
    image: str


@pytest.fixture(scope="module")
def node(registry: Registry) -> Iterator[Node]:
    image = Image((busybox_layer(),), config=RunConfig(cmd=("/bin/sleep", "600"),
                                                       env=("PATH=/bin",)))
    with pod_daemon() as (daemon, net):
        yield Node(daemon, net, pull(daemon, registry, image))


def traces(node: Node) -> dict[str, list[str]]:
    """Everything a pod or container leaves on the node."""
    d = node.daemon
    return {
        "pod dirs": sorted(p.name for p in (d.runroot / "pods").glob("*")),
        "bundles": sorted(p.name for p in (d.runroot / "containers").glob("*")),
        "layers": sorted(p.name for p in (d.root / "containers").glob("*")),
        "mounts": mounts_under(d.runroot) + mounts_under(d.root),
        "cgroups": sorted(str(p) for p in node.net.cgroup_dirs()),
        "ip allocations": sorted(p.name for p in (d.root / "cni").rglob("*")),
        "pods": sorted(p.id for p in d.runtime.ListPodSandbox(
            api_pb2.ListPodSandboxRequest()).items),
        "containers": sorted(c.id for c in d.runtime.ListContainers(
            api_pb2.ListContainersRequest()).containers),
    }


def made_since(node: Node, before: dict[str, list[str]]) -> dict[str, list[str]]:
    """What appeared since ``before`` (what went meanwhile is an earlier test's clean-up)."""
    after = traces(node)
    return {kind: new for kind in after if (new := sorted(set(after[kind]) - set(before[kind])))}


def refused(call: Any, request: Any) -> str:
    with pytest.raises(grpc.RpcError) as raised:
        call(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    return str(raised.value.details())


def dns(**fields: list[str]) -> dict[str, Any]:
    return {"dns_config": api_pb2.DNSConfig(**fields)}


POD_ATTACKS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (metadata fields, config fields)
    "name-with-slash": ({"name": "a/b"}, {}),
    "name-dot-dot": ({"name": ".."}, {}),
    "name-adds-cni-arg": ({"name": "x;K8S_POD_NAMESPACE=kube-system"}, {}),
    "namespace-with-newline": ({"namespace": "e2e\nK8S_POD_NAME=y"}, {}),
    "uid-with-path": ({"uid": "../../../etc"}, {}),
    "hostname-adds-hosts-line": ({}, {"hostname": "web\n10.0.0.1 kubernetes.default"}),
    "server-adds-line": ({}, dns(servers=[f"10.96.0.10\n{INJECTED}"])),
    "search-adds-line": ({}, dns(searches=[f"svc.cluster.local\n{INJECTED}"])),
    "option-adds-line": ({}, dns(options=[f"ndots:5\n{INJECTED}"])),
    "option-adds-word": ({}, dns(options=["ndots:5 debug"])),
    "four-servers": ({}, dns(servers=["10.0.0.1", "10.0.0.2", "10.0.0.3", "6.6.6.6"])),
    "relative-log-directory": ({}, {"log_directory": "var/log/pods/x"}),
}


@pytest.mark.parametrize("attack", POD_ATTACKS)
def test_hostile_pod_requests_are_refused_and_leave_nothing(node: Node, attack: str) -> None:
    meta, fields = POD_ATTACKS[attack]
    config = pod_config()
    for key, value in meta.items():
        setattr(config.metadata, key, value)
    for key, value in fields.items():
        if isinstance(value, Message):
            getattr(config, key).CopyFrom(value)
        else:
            setattr(config, key, value)
    before = traces(node)
    details = refused(node.daemon.runtime.RunPodSandbox,
                      api_pb2.RunPodSandboxRequest(config=config))
    assert "config." in details
    assert made_since(node, before) == {}


@pytest.fixture
def pod(node: Node, tmp_path: Path) -> Iterator[tuple[str, api_pb2.PodSandboxConfig, Path]]:
    logs = tmp_path / "pod-logs"
    logs.mkdir()
    config = pod_config(log_directory=str(logs))
    pod_id = str(node.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id)
    yield pod_id, config, logs
    stop_remove(node.daemon, pod_id)


@pytest.mark.parametrize("attack", [
    "name-with-slash", "name-dot-dot", "name-with-underscore", "absolute-log-path",
    "log-path-up", "log-path-up-inside", "log-path-with-newline",
])
def test_hostile_container_requests_are_refused_and_leave_nothing(
    node: Node, pod: tuple[str, api_pb2.PodSandboxConfig, Path], tmp_path: Path, attack: str,
) -> None:
    pod_id, config, logs = pod
    escape = tmp_path / "escaped.log"  # beside the log dir: where a log must never land
    name, log_path = {
        "name-with-slash": ("a/b", "c/0.log"),
        "name-dot-dot": ("..", "c/0.log"),
        "name-with-underscore": ("k8s_x_y", "c/0.log"),  # splits conmon's k8s_ name
        "absolute-log-path": ("c", str(escape)),
        "log-path-up": ("c", "../escaped.log"),
        "log-path-up-inside": ("c", "c/../../escaped.log"),
        "log-path-with-newline": ("c", "c/0.log\nx"),
    }[attack]
    before = traces(node)
    request = api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, sandbox_config=config, config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name), log_path=log_path,
            image=api_pb2.ImageSpec(image=node.image), command=["/bin/sh", "-c", "echo owned"]))
    refused(node.daemon.runtime.CreateContainer, request)
    assert made_since(node, before) == {}
    assert not escape.exists()
    assert list(logs.iterdir()) == []
    # The same request with a fair name and log path is created: only the
    # hostile field was refused.
    request.config.metadata.name, request.config.log_path = "c", "c/0.log"
    node.daemon.runtime.CreateContainer(request)


def test_what_critest_and_kubelet_send_runs(node: Node, tmp_path: Path) -> None:
    """Upper case, names past 63 characters, a FQDN hostname, kubelet's DNS config."""
    pod_name = f"create-PodSandbox-for-container-{uuid.uuid4()}"
    container_name = f"container-with-RunAsGroup-without-RunAsUser-test-{uuid.uuid4()}"
    logs = tmp_path / pod_name
    logs.mkdir()
    config = pod_config(
        name=pod_name, log_directory=str(logs), dns_config=api_pb2.DNSConfig(
            servers=["10.96.0.10"],
            searches=["e2e.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            options=["ndots:5", "edns0"]))
    config.hostname = "web-0.web.e2e.svc.cluster.local"
    config.metadata.uid = f"cri-test-uid{uuid.uuid4()}"
    config.metadata.namespace = f"cri-test-namespace{uuid.uuid4()}"
    pod_id = str(node.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id)
    try:
        cid = create(node.daemon, pod_id, config, node.image, name=container_name,
                     log_path=f"{container_name}/0.log")
        node.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        wait_state(node.daemon, cid, api_pb2.CONTAINER_RUNNING)
        assert sh(node.daemon, cid, "cat /etc/resolv.conf") == (
            "nameserver 10.96.0.10\n"
            "search e2e.svc.cluster.local svc.cluster.local cluster.local\n"
            "options ndots:5 edns0\n")
        assert sh(node.daemon, cid, "hostname").strip() == "web-0.web.e2e.svc.cluster.local"
        assert (logs / container_name / "0.log").exists()
    finally:
        stop_remove(node.daemon, pod_id)
