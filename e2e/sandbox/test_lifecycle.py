"""Run/stop/remove semantics: validation, idempotency, listing, cgroups, restart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from crid.network import namespaces

from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import PodNet, info, pod_config, pod_daemon, run_pod, stop_remove


def code_of(call: Any, *args: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)
    return caught.value.code()


def test_missing_metadata_is_invalid(daemon: CridDaemon) -> None:
    run = daemon.runtime.RunPodSandbox
    assert code_of(run, api_pb2.RunPodSandboxRequest()) == grpc.StatusCode.INVALID_ARGUMENT
    for missing in ("name", "uid", "namespace"):
        config = pod_config()
        config.metadata.ClearField(missing)
        with pytest.raises(grpc.RpcError) as caught:
            run(api_pb2.RunPodSandboxRequest(config=config))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"config.metadata.{missing}" in str(caught.value.details())


def test_same_name_and_attempt_already_exists(daemon: CridDaemon) -> None:
    config = pod_config()
    pod = run_pod(daemon, config)
    try:
        assert code_of(run_pod, daemon, config) == grpc.StatusCode.ALREADY_EXISTS
        config.metadata.attempt = 1
        stop_remove(daemon, run_pod(daemon, config))
    finally:
        stop_remove(daemon, pod)


def test_unknown_runtime_handler_names_the_known_ones(daemon: CridDaemon) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=pod_config(), runtime_handler="kata"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "kata" in str(caught.value.details()) and "crid" in str(caught.value.details())


def test_stop_and_remove_are_idempotent(daemon: CridDaemon) -> None:
    pod = run_pod(daemon, pod_config())
    netns = info(daemon, pod)["netns"]
    for _ in range(2):
        daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
    status = daemon.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod))
    assert status.status.state == api_pb2.SANDBOX_NOTREADY
    for _ in range(2):
        daemon.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert not namespaces.is_pinned(netns)
    assert code_of(daemon.runtime.PodSandboxStatus,
                   api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod)) == grpc.StatusCode.NOT_FOUND
    daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id="f" * 64))
    daemon.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id="f" * 64))


def test_list_filters_by_id_prefix_state_and_labels(daemon: CridDaemon) -> None:
    a = run_pod(daemon, pod_config(labels={"app": "web", "tier": "front"}))
    b = run_pod(daemon, pod_config(labels={"app": "db"}))
    try:
        daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=b))

        def ids(**fields: Any) -> set[str]:
            request = api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(**fields))
            return {p.id for p in daemon.runtime.ListPodSandbox(request).items}

        assert ids() >= {a, b}
        assert ids(id=a[:12]) == {a}
        assert ids(label_selector={"app": "web"}) == {a}
        assert ids(label_selector={"app": "web", "tier": "back"}) == set()
        ready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)
        notready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_NOTREADY)
        assert a in ids(state=ready) and b not in ids(state=ready)
        assert ids(state=notready) >= {b} and a not in ids(state=notready)
    finally:
        stop_remove(daemon, a)
        stop_remove(daemon, b)


def test_pod_cgroup_gets_limits_and_is_removed(daemon: CridDaemon, net: PodNet) -> None:
    config = pod_config()
    config.linux.cgroup_parent = f"{net.cgroup_parent}/pod-{config.metadata.uid}"
    config.linux.resources.memory_limit_in_bytes = 256 * 2**20
    config.linux.resources.cpu_shares = 512
    config.linux.overhead.memory_limit_in_bytes = 16 * 2**20
    pod = run_pod(daemon, config)
    memory = Path("/sys/fs/cgroup/memory") / config.linux.cgroup_parent.lstrip("/")
    cpu = Path("/sys/fs/cgroup/cpu") / config.linux.cgroup_parent.lstrip("/")
    try:
        assert info(daemon, pod)["cgroupParent"] == config.linux.cgroup_parent
        assert int((memory / "memory.limit_in_bytes").read_text()) == 272 * 2**20
        assert int((cpu / "cpu.shares").read_text()) == 512
        daemon.runtime.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod,
            resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=128 * 2**20,
                                                      cpu_quota=50000, cpu_period=100000)))
        assert int((memory / "memory.limit_in_bytes").read_text()) == 128 * 2**20
        assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50000
    finally:
        stop_remove(daemon, pod)
    assert not memory.exists() and not cpu.exists()
    assert code_of(daemon.runtime.UpdatePodSandboxResources,
                   api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod)) \
        == grpc.StatusCode.NOT_FOUND


def test_concurrent_pods_get_distinct_addresses(daemon: CridDaemon) -> None:
    with ThreadPoolExecutor(8) as pool:
        pods = list(pool.map(lambda _: run_pod(daemon, pod_config()), range(8)))
        try:
            ips = [info(daemon, pod)["status"].network.ip for pod in pods]
            assert len(set(ips)) == 8 and all(ips)
        finally:
            list(pool.map(lambda pod: stop_remove(daemon, pod), pods))
    listed = {p.id for p in daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
    assert not listed & set(pods)


def test_pods_survive_a_daemon_kill_and_restart() -> None:
    with pod_daemon() as (daemon, _net):
        config = pod_config(linux=api_pb2.LinuxPodSandboxConfig(
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD))))
        pod = run_pod(daemon, config)
        before = info(daemon, pod)
        stopped = run_pod(daemon, pod_config())
        daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=stopped))
        daemon.kill()
        daemon.start()
        after = info(daemon, pod)
        assert after["status"].state == api_pb2.SANDBOX_READY
        assert after["status"].network.ip == before["status"].network.ip
        assert after["pid"] == before["pid"] and Path(f"/proc/{after['pid']}").exists()
        assert namespaces.is_pinned(after["netns"])
        assert info(daemon, stopped)["status"].state == api_pb2.SANDBOX_NOTREADY
        listed = daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
        assert {p.id for p in listed} == {pod, stopped}
        stop_remove(daemon, pod)
        stop_remove(daemon, stopped)
        assert not namespaces.is_pinned(after["netns"])
