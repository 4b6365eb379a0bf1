"""Namespace options → linux.namespaces, for every mode."""

from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2
from crid.oci.spec import namespaces
from crid.oci.spec.facts import PodFacts

from crid.errors import InvalidArgument

M = api_pb2.NamespaceMode
POD = PodFacts("sb", net_ns_path="/run/crid/ns/net/sb", ipc_ns_path="/run/crid/ns/ipc/sb",
               uts_ns_path="/run/crid/ns/uts/sb", pid_ns_path="/proc/42/ns/pid",
               target_pid_ns_path="/proc/77/ns/pid")


def _ns(pod: PodFacts = POD, **options: object) -> dict[str, str | None]:
    got = namespaces.namespaces(api_pb2.NamespaceOption(**options), pod)  # type: ignore[arg-type]
    types = [e["type"] for e in got]
    assert len(types) == len(set(types))
    return {e["type"]: e.get("path") for e in got}


def test_all_pod() -> None:
    assert _ns(network=M.POD, ipc=M.POD, pid=M.POD) == {
        "pid": "/proc/42/ns/pid", "network": "/run/crid/ns/net/sb",
        "ipc": "/run/crid/ns/ipc/sb", "uts": "/run/crid/ns/uts/sb", "mount": None,
        "cgroup": None,
    }


def test_kubelet_default_container_pid() -> None:
    assert _ns(network=M.POD, ipc=M.POD, pid=M.CONTAINER)["pid"] is None


def test_pod_pid_without_infra_gets_new() -> None:
    got = _ns(PodFacts("sb"), pid=M.POD)
    assert "pid" in got and got["pid"] is None


def test_host_everything() -> None:
    assert _ns(network=M.NODE, ipc=M.NODE, pid=M.NODE) == {"mount": None, "cgroup": None}


def test_target() -> None:
    assert _ns(pid=M.TARGET, target_id="c2")["pid"] == "/proc/77/ns/pid"
    with pytest.raises(InvalidArgument, match="TARGET"):
        _ns(PodFacts("sb"), pid=M.TARGET, target_id="c2")


@pytest.mark.parametrize("field", ["network", "ipc"])
@pytest.mark.parametrize("mode", [M.CONTAINER, M.TARGET])
def test_unsupported_shared_modes(field: str, mode: int) -> None:
    with pytest.raises(InvalidArgument, match="not supported"):
        _ns(POD, **{field: mode})


def test_new_namespaces_without_pod_paths() -> None:
    assert _ns(PodFacts("sb"), pid=M.CONTAINER) == {
        "pid": None, "network": None, "ipc": None, "uts": None, "mount": None, "cgroup": None}


def test_user_namespace_of_the_pod() -> None:
    options = api_pb2.NamespaceOption(userns_options=api_pb2.UserNamespace(mode=M.POD))
    with pytest.raises(InvalidArgument, match="no user namespace"):
        namespaces.namespaces(options, POD)
    node = api_pb2.NamespaceOption(userns_options=api_pb2.UserNamespace(mode=M.NODE))
    assert not any(n["type"] == "user" for n in namespaces.namespaces(node, POD))
    with_user = PodFacts("sb", net_ns_path="/run/net", user_ns_path="/run/user")
    found = namespaces.namespaces(options, with_user)
    assert found[0] == {"type": "user", "path": "/run/user"}


def test_hostname_only_with_own_uts() -> None:
    own = api_pb2.NamespaceOption()
    host = api_pb2.NamespaceOption(network=M.NODE)
    assert namespaces.hostname(own, PodFacts("sb"), "web-0") == "web-0"
    assert namespaces.hostname(own, POD, "web-0") == ""
    assert namespaces.hostname(host, PodFacts("sb"), "web-0") == ""


def test_container_of_host_network_pod_uses_host_network_and_uts() -> None:
    # critest "portforward in host network": the container asks nothing (POD),
    # the pod has network NODE and so no pinned netns to join.
    pod = PodFacts("sb", ipc_ns_path="/run/crid/ns/ipc/sb", pid_ns_path="/proc/42/ns/pid")
    options = namespaces.for_container(api_pb2.NamespaceOption(),
                                       api_pb2.NamespaceOption(network=M.NODE))
    got = _ns(pod, network=options.network, ipc=options.ipc, pid=options.pid)
    assert "network" not in got and "uts" not in got
    assert got["ipc"] == "/run/crid/ns/ipc/sb"
    assert namespaces.hostname(options, pod, "node-name") == ""


def test_container_of_host_ipc_pod_uses_host_ipc() -> None:
    options = namespaces.for_container(api_pb2.NamespaceOption(pid=M.CONTAINER),
                                       api_pb2.NamespaceOption(ipc=M.NODE))
    assert (options.network, options.ipc, options.pid) == (M.POD, M.NODE, M.CONTAINER)
    assert "ipc" not in _ns(POD, network=options.network, ipc=options.ipc, pid=options.pid)


def test_pod_namespaces_do_not_override_what_the_container_asks() -> None:
    asked = api_pb2.NamespaceOption(network=M.NODE, ipc=M.NODE, pid=M.NODE)
    assert namespaces.for_container(asked, api_pb2.NamespaceOption()) == asked
