"""Resources as cgroup files, changed live, and a container killed for memory."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import create, run, status, verbose_pid, wait_state

MIB = 1024 * 1024
CGROUP = Path("/sys/fs/cgroup")


def cgroup_file(pid: int, controller: str, name: str) -> str:
    """A file of the cgroup ``pid`` is in, found from ``/proc/PID/cgroup`` (v1 or v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return (CGROUP / controller / path.lstrip("/") / name).read_text().strip()
        if controllers == "" and (CGROUP / "cgroup.controllers").exists():
            return (CGROUP / path.lstrip("/") / name).read_text().strip()
    raise AssertionError(f"process {pid} has no {controller} cgroup")


def test_limits_are_cgroup_files(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=64 * MIB, cpu_quota=50_000, cpu_period=100_000,
            cpu_shares=512, cpuset_cpus="0", cpuset_mems="0")))
    pid = verbose_pid(env.daemon, cid)
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 * MIB)
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgroup_file(pid, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgroup_file(pid, "cpu", "cpu.shares") == "512"
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    assert cgroup_file(pid, "cpuset", "cpuset.mems") == "0"
    # Every container gets its own cgroup below the pod's parent in each controller.
    for controller in ("memory", "cpu", "pids", "devices"):
        assert cgroup_file(pid, controller, "cgroup.procs").split() == [str(pid)], controller


def test_update_container_resources_changes_limits_live(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=64 * MIB,
                                                  cpu_quota=50_000, cpu_period=100_000)))
    pid = verbose_pid(env.daemon, cid)
    wanted = api_pb2.LinuxContainerResources(memory_limit_in_bytes=96 * MIB, cpu_quota=20_000,
                                             cpu_period=100_000, cpu_shares=256)
    env.daemon.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=wanted))
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(96 * MIB)
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "20000"
    assert cgroup_file(pid, "cpu", "cpu.shares") == "256"
    assert status(env.daemon, cid).resources.linux == wanted


def test_a_container_over_its_memory_limit_is_oom_killed(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image,
                 command=["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                 linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
                     memory_limit_in_bytes=20 * MIB)))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    done = wait_state(d, cid, api_pb2.CONTAINER_EXITED)
    assert (done.exit_code, done.reason) == (137, "OOMKilled")
    # conmon also drops an ``oom`` file in its working dir: that must not be the daemon's.
    assert d.process is not None
    assert not (Path(os.readlink(f"/proc/{d.process.pid}/cwd")) / "oom").exists()
    fine = create(d, pod.id, pod.config, env.image, command=["/bin/sh", "-c", "exit 137"],
                  linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
                      memory_limit_in_bytes=20 * MIB)))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=fine))
    assert wait_state(d, fine, api_pb2.CONTAINER_EXITED).reason == "Error"


def test_oom_score_adj(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(oom_score_adj=500)))
    assert Path(f"/proc/{verbose_pid(env.daemon, cid)}/oom_score_adj").read_text() == "500\n"


def test_hugepage_limits(env: Env, pod: Pod) -> None:
    # kubelet sends one for each page size of the node, 0 when none was asked for.
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(hugepage_limits=[
            api_pb2.HugepageLimit(page_size="2MB", limit=4 * MIB)])))
    if not (CGROUP / "hugetlb").is_dir():  # this VM: no hugetlb controller, limits left out
        assert not [line for line in Path(f"/proc/{verbose_pid(env.daemon, cid)}/cgroup")
                    .read_text().splitlines() if "hugetlb" in line]
        return
    assert cgroup_file(verbose_pid(env.daemon, cid), "hugetlb", "hugetlb.2MB.limit_in_bytes") \
        == str(4 * MIB)


def test_update_before_start_and_after_exit(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image, command=["/bin/sleep", "600"])
    d.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(memory_limit_in_bytes=48 * MIB)))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(d, cid, api_pb2.CONTAINER_RUNNING)
    assert cgroup_file(verbose_pid(d, cid), "memory", "memory.limit_in_bytes") == str(48 * MIB)
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
    with pytest.raises(grpc.RpcError) as raised:
        d.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=api_pb2.LinuxContainerResources(cpu_shares=100)))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
