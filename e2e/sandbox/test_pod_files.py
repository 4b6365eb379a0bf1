"""The files, sysctls and infra process a pod gets."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import info, namespace_options, nsenter, pod_config, run_pod, stop_remove


def test_dns_hosts_and_hostname_files(daemon: CridDaemon) -> None:
    dns = api_pb2.DNSConfig(servers=["10.96.0.10", "10.96.0.11"],
                            searches=["e2e.svc.cluster.local", "svc.cluster.local"],
                            options=["ndots:5", "timeout:2"])
    pod = run_pod(daemon, pod_config(name="files-pod", dns_config=dns))
    try:
        found = info(daemon, pod)
        assert Path(found["resolvConf"]).read_text() == (
            "nameserver 10.96.0.10\nnameserver 10.96.0.11\n"
            "search e2e.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:2\n"
        )
        hosts = Path(found["hosts"]).read_text()
        assert f"{found['status'].network.ip}\tfiles-pod\n" in hosts
        assert "127.0.0.1\tlocalhost\n" in hosts
        assert Path(found["hostname"]).read_text() == "files-pod\n"
        assert nsenter({"uts": found["namespaces"]["uts"]}, "hostname").strip() == "files-pod"
        # /dev/shm for the pod: a tmpfs of 64 MiB.
        mounts = Path("/proc/self/mountinfo").read_text()
        shm_line = next(line for line in mounts.splitlines() if f" {found['shm']} " in line)
        assert " - tmpfs " in shm_line and "size=65536k" in shm_line
    finally:
        stop_remove(daemon, pod)


def test_without_dns_config_the_hosts_resolv_conf_is_used(daemon: CridDaemon) -> None:
    pod = run_pod(daemon, pod_config())
    try:
        found = info(daemon, pod)
        assert Path(found["resolvConf"]).read_text() == Path("/etc/resolv.conf").read_text()
    finally:
        stop_remove(daemon, pod)


def test_host_ipc_pod_uses_the_hosts_shm(daemon: CridDaemon) -> None:
    pod = run_pod(daemon, pod_config(linux=namespace_options(ipc=api_pb2.NODE)))
    try:
        found = info(daemon, pod)
        assert found["shm"] == "/dev/shm"
        assert "ipc" not in found["namespaces"]
    finally:
        stop_remove(daemon, pod)


def test_sysctls_are_set_inside_the_pod_only(daemon: CridDaemon) -> None:
    linux = namespace_options()
    linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "53"
    linux.sysctls["kernel.shm_rmid_forced"] = "1"
    host_port_start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()
    host_rmid = Path("/proc/sys/kernel/shm_rmid_forced").read_text()
    pod = run_pod(daemon, pod_config(linux=linux))
    try:
        ns = info(daemon, pod)["namespaces"]
        assert nsenter({"net": ns["net"]}, "cat",
                       "/proc/sys/net/ipv4/ip_unprivileged_port_start").strip() == "53"
        assert nsenter({"ipc": ns["ipc"]}, "cat",
                       "/proc/sys/kernel/shm_rmid_forced").strip() == "1"
        assert Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text() \
            == host_port_start
        assert Path("/proc/sys/kernel/shm_rmid_forced").read_text() == host_rmid
    finally:
        stop_remove(daemon, pod)


@pytest.mark.parametrize(("name", "network"), [
    ("kernel.panic", api_pb2.POD),  # not namespaced
    ("vm.swappiness", api_pb2.POD),
    ("net.ipv4.ip_forward", api_pb2.NODE),  # a network sysctl on the host's network
])
def test_unsafe_sysctls_are_refused(daemon: CridDaemon, name: str, network: int) -> None:
    before = daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    linux = namespace_options(network=network)
    linux.sysctls[name] = "1"
    with pytest.raises(grpc.RpcError) as caught:
        run_pod(daemon, pod_config(linux=linux))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert name in str(caught.value.details())
    assert daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items == before
    assert not any((daemon.runroot / "pods").iterdir())


def test_shared_pid_namespace_has_catatonit_as_pid_1(daemon: CridDaemon) -> None:
    pod = run_pod(daemon, pod_config(linux=namespace_options(pid=api_pb2.POD)))
    try:
        found = info(daemon, pod)
        pid = found["pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        nspid = next(line for line in status.splitlines() if line.startswith("NSpid:")).split()
        assert nspid[-1] == "1"
        assert os.readlink(f"/proc/{pid}/exe") == "/usr/bin/catatonit"
        # It lives in the pod's pinned net, ipc and uts namespaces.
        for kind in ("net", "ipc", "uts"):
            assert os.stat(f"/proc/{pid}/ns/{kind}").st_ino \
                == os.stat(found["namespaces"][kind]).st_ino
        # And in the pod's cgroup.
        assert found["cgroupParent"] in Path(f"/proc/{pid}/cgroup").read_text()
    finally:
        stop_remove(daemon, pod)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_pod_whose_infra_process_died_is_not_ready(daemon: CridDaemon) -> None:
    pod = run_pod(daemon, pod_config(linux=namespace_options(pid=api_pb2.POD)))
    try:
        os.kill(info(daemon, pod)["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while info(daemon, pod)["status"].state == api_pb2.SANDBOX_READY:
            assert time.monotonic() < deadline, "pod still ready after its infra process died"
            time.sleep(0.02)
    finally:
        stop_remove(daemon, pod)


def test_pod_without_shared_pid_namespace_has_no_process(daemon: CridDaemon) -> None:
    pod = run_pod(daemon, pod_config(linux=namespace_options(pid=api_pb2.CONTAINER)))
    try:
        assert info(daemon, pod)["pid"] == 0
    finally:
        stop_remove(daemon, pod)
