"""Names, DNS settings and log paths of CRI requests: what kubelet and critest
send passes; what would become another path, CNI argument or line is refused."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from cri_api.v1 import api_pb2
from crid.api import names

from crid.errors import InvalidArgument

UUID = "0f8c3a4e-5b7d-4e1f-9a2b-3c4d5e6f7a8b"


def pod(**fields: Any) -> api_pb2.PodSandboxConfig:
    meta: dict[str, Any] = {"name": "web-0", "namespace": "default", "uid": UUID}
    meta.update(fields.pop("metadata", {}))
    return api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(**meta), **fields)


def container(name: str = "app", log_path: str = "") -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                   log_path=log_path)


# critest's own names (cri-tools pkg/framework, pkg/validate): upper case, a
# UUID suffix, past 63 characters; and kubelet's (static pods end in the node name).
CRITEST_PODS = [
    f"PodSandbox-for-create-test-{UUID}", f"create-PodSandbox-for-container-{UUID}",
    f"create-Privileged-PodSandbox-for-container-{UUID}", f"NamespaceOption-PodSandbox-{UUID}",
    f"create-PodSandbox-with-hostname{UUID}", f"PodSandbox-for-creating-performance-test-{UUID}",
]
KUBELET_PODS = ["web-0", "kube-apiserver-node-1.example.com", "coredns-5d78c9869d-x7zq2"]
CRITEST_CONTAINERS = [
    f"Pod-Container-for-creating-benchmark-{UUID}",
    f"container-with-RunAsGroup-without-RunAsUser-test-{UUID}",
    f"container-with-SupplementalGroupsPolicyMerge-{UUID}", "container-for-exec-test",
]


@pytest.mark.parametrize("name", CRITEST_PODS + KUBELET_PODS)
def test_pod_names_kubelet_and_critest_send_pass(name: str) -> None:
    names.check_pod(pod(metadata={"name": name}))


@pytest.mark.parametrize("uid", [UUID, f"cri-test-uid{UUID}", "d41d8cd98f00b204e9800998ecf8427e"])
def test_uids_pass(uid: str) -> None:
    names.check_pod(pod(metadata={"uid": uid, "namespace": f"cri-test-namespace{UUID}"}))


@pytest.mark.parametrize("name", [*CRITEST_CONTAINERS, "app", "istio-proxy", "a"])
def test_container_names_kubelet_and_critest_send_pass(name: str) -> None:
    names.check_container(container(name, log_path=f"{name}/0.log"))


@pytest.mark.parametrize(("field", "value"), [
    ("name", "a/b"), ("name", ".."), ("name", "a\nb"), ("name", "pod_1"), ("name", "-pod"),
    ("name", "pod."), ("name", "x;K8S_POD_NAMESPACE=kube-system"), ("name", "a" * 254),
    ("name", "pöd"), ("namespace", "kube.system"), ("namespace", "n" * 64), ("namespace", ""),
    ("uid", "u/../../x"), ("uid", "u;IgnoreUnknown=1"),
])
def test_hostile_pod_metadata_is_refused(field: str, value: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"config.metadata.{field}")):
        names.check_pod(pod(metadata={field: value}))


@pytest.mark.parametrize("name", ["a/b", "../x", "c_1", "c\n", "c.d", "", "c" * 254, "c d"])
def test_hostile_container_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape("config.metadata.name")):
        names.check_container(container(name))


@pytest.mark.parametrize("hostname", ["test-hostname", "Web-0", "a.b.c", "h" * 63,
                                      "a" * 31 + "." + "b" * 32])
def test_hostnames_pass(hostname: str) -> None:
    names.check_pod(pod(hostname=hostname))


@pytest.mark.parametrize("hostname", [
    "web\n127.0.0.1 evil", "web 0", "web_0", "-web", "web-", "a..b", "h" * 64 + ".x",
    "h" * 65, "web\x00", "host/name",
])
def test_hostile_hostnames_are_refused(hostname: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape("config.hostname")):
        names.check_pod(pod(hostname=hostname))


def test_dns_config_kubelet_and_critest_send_passes() -> None:
    names.check_pod(pod(dns_config=api_pb2.DNSConfig(
        servers=["10.96.0.10", "fd00::10", "fe80::1%eth0"],
        searches=["default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                  "Example.COM.", "_corp.example", "google.com", "."],
        options=["ndots:5", "edns0", "single-request-reopen", "timeout:2", "ndots:8"])))


@pytest.mark.parametrize(("dns", "words"), [
    ({"servers": ["10.0.0.1\nnameserver 6.6.6.6"]}, "not an IP address"),
    ({"servers": ["10.0.0.1 6.6.6.6"]}, "not an IP address"),
    ({"servers": ["resolver.example"]}, "not an IP address"),
    ({"servers": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]}, "4 entries; at most 3"),
    ({"searches": ["svc.local\nnameserver 6.6.6.6"]}, "searches"),
    ({"searches": ["a b"]}, "searches"),
    ({"searches": [f"d{i}" for i in range(33)]}, "33 entries; at most 32"),
    ({"searches": ["x" * 60 + "." + "y" * 60 + "." + "z" * 60] * 12}, "at most 2048"),
    ({"options": ["ndots:5\nnameserver 6.6.6.6"]}, "options"),
    ({"options": ["ndots:5 rotate"]}, "options"),
    ({"options": [""]}, "options"),
    ({"options": ["edns0"] * 33}, "33 entries; at most 32"),
])
def test_hostile_dns_config_is_refused(dns: dict[str, list[str]], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        names.check_pod(pod(dns_config=api_pb2.DNSConfig(**dns)))


@pytest.mark.parametrize("log_path", ["app/0.log", "app_1.log", "x.log", "a/b/c.log"])
def test_relative_log_paths_pass(log_path: str) -> None:
    names.check_container(container(log_path=log_path))


@pytest.mark.parametrize("log_path", [
    "/etc/cron.d/evil", "../../etc/cron.d/evil", "app/../../x.log", "..", "app/..",
    "app\n0.log", "app\x000.log", "a" * 4097,
])
def test_log_paths_out_of_the_log_directory_are_refused(log_path: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape("config.log_path")):
        names.check_container(container(log_path=log_path))


@pytest.mark.parametrize("directory", ["var/log/pods/x", "/var/log/pods/x\n"])
def test_a_relative_or_broken_log_directory_is_refused(directory: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape("config.log_directory")):
        names.check_pod(pod(log_directory=directory))


def test_a_long_value_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidArgument) as refused:
        names.check_container(container("x/" * 1000))
    assert len(refused.value.message) < 300


def test_a_fresh_uuid_named_pod_passes() -> None:
    names.check_pod(pod(metadata={"name": f"pod-{uuid.uuid4()}", "uid": str(uuid.uuid4())}))
