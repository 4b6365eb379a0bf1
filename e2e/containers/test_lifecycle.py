"""Containers through the CRI: create, start, exec, logs, stop, remove, status."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, PodMaker
from e2e.containers.helpers import create, exec_sync, gone_or_zombie, run, status, wait_state
from e2e.fixtures.daemon import mounts_under


def test_a_container_runs_through_its_whole_life(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image, name="life",
                 command=["/bin/sh", "-c", "echo started; exec sleep 60"], log_path="life.log",
                 labels={"app": "life"})
    created = status(d, cid)
    assert created.state == api_pb2.CONTAINER_CREATED
    assert created.metadata.name == "life" and created.image_id == env.image_id
    assert created.image.image == env.image
    assert created.log_path == str(Path(pod.config.log_directory) / "life.log")
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    running = wait_state(d, cid, api_pb2.CONTAINER_RUNNING)
    assert running.started_at >= running.created_at > 0

    out = exec_sync(d, cid, "/bin/sh", "-c", "echo $FROM; id -u; echo kept > /kept; exit 4")
    assert (out.stdout, out.exit_code) == (b"image\n0\n", 4)

    listed = d.runtime.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(label_selector={"app": "life"}))).containers
    assert [c.id for c in listed] == [cid]

    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=10))
    stopped = status(d, cid)
    assert stopped.state == api_pb2.CONTAINER_EXITED
    assert stopped.exit_code == 143  # sleep killed by SIGTERM
    assert stopped.reason == "Error" and stopped.finished_at >= stopped.started_at
    log = Path(stopped.log_path).read_text().splitlines()
    assert log and log[0].split(" ", 3)[1:] == ["stdout", "F", "started"]
    # Stopped, it holds no overlay mount (as with cri-o and containerd) while
    # its writable layer waits for RemoveContainer.
    assert not os.path.ismount(d.runroot / "containers" / cid / "rootfs")
    assert (d.root / "containers" / cid / "upper" / "kept").read_text() == "kept\n"

    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(id=cid))).containers
    assert not [m for m in mounts_under(d.runroot) if cid in m]
    assert not (d.root / "containers" / cid).exists()
    # The default (crid) handler's start, kill, state and delete ran in the
    # daemon (crid.containers.runtime_in_process), not as commands.
    assert '"runtime verbs in-process"' in d.stderr_text()


def test_exit_codes_and_reasons(env: Env, pod: Pod) -> None:
    d = env.daemon
    ok = create(d, pod.id, pod.config, env.image, command=["/bin/true"])
    bad = create(d, pod.id, pod.config, env.image, command=["/bin/sh", "-c", "exit 3"])
    for cid in (ok, bad):
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    assert (wait_state(d, ok, api_pb2.CONTAINER_EXITED).reason, status(d, ok).exit_code) == (
        "Completed", 0)
    failed = wait_state(d, bad, api_pb2.CONTAINER_EXITED)
    assert (failed.reason, failed.exit_code) == ("Error", 3)


def test_command_args_and_env_merge_with_the_image(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image, command=["/bin/sh", "-c"],
                 args=['echo "$FROM $MINE"; pwd'], working_dir="/tmp",
                 envs=[api_pb2.KeyValue(key="FROM", value="request"),
                       api_pb2.KeyValue(key="MINE", value="yes")], log_path="merge.log")
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(d, cid, api_pb2.CONTAINER_EXITED)
    lines = [line.split(" ", 3)[3] for line in
             Path(status(d, cid).log_path).read_text().splitlines()]
    assert lines == ["request yes", "/tmp"]


def test_stop_kills_a_container_that_ignores_its_signal(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image,
                 command=["/bin/sh", "-c",
                          "trap '' TERM; touch /trapped; while true; do sleep 1; done"])
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(d, cid, api_pb2.CONTAINER_RUNNING)
    # Running is not yet trapping: a TERM before the trap would end it at once.
    deadline = time.monotonic() + 10
    while exec_sync(d, cid, "/bin/test", "-f", "/trapped").exit_code != 0:
        assert time.monotonic() < deadline, "the container never set its trap"
        time.sleep(0.05)
    started = time.monotonic()
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1))
    assert 0.9 < time.monotonic() - started < 10
    assert status(d, cid).exit_code == 137


def test_exec_sync_timeout_kills_the_command(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image, command=["/bin/sleep", "60"])
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(d, cid, api_pb2.CONTAINER_RUNNING)
    with pytest.raises(grpc.RpcError) as raised:
        exec_sync(d, cid, "/bin/sleep", "30", timeout=1)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timed out" in (raised.value.details() or "")
    # The timed-out sleep is gone: only the container's own sleep 60 is left.
    ps = exec_sync(d, cid, "/bin/sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert b"sleep 30" not in ps.stdout, ps.stdout
    assert b"sleep 60" in ps.stdout


def test_stop_and_remove_are_idempotent(env: Env, pod: Pod) -> None:
    d = env.daemon
    for _ in range(2):
        d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id="f" * 64))
        d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id="f" * 64))
    cid = create(d, pod.id, pod.config, env.image, command=["/bin/true"])
    for _ in range(2):
        d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid))
    for _ in range(2):
        d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))


@pytest.mark.parametrize(("change", "code", "words"), [
    ({"pod_sandbox_id": "nosuchpod"}, grpc.StatusCode.NOT_FOUND, "pod sandbox"),
    ({"image": "127.0.0.1:1/never/pulled:1"}, grpc.StatusCode.NOT_FOUND, "pull it first"),
    ({"name": ""}, grpc.StatusCode.INVALID_ARGUMENT, "metadata.name"),
    ({"mount": "relative/path"}, grpc.StatusCode.INVALID_ARGUMENT, "relative/path"),
])
def test_bad_requests_are_refused_and_leave_nothing(
    env: Env, pod: Pod, change: dict[str, str], code: grpc.StatusCode, words: str
) -> None:
    d = env.daemon
    before = sorted(p.name for p in (d.runroot / "containers").glob("*")) \
        if (d.runroot / "containers").exists() else []
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=change.get("name", "bad")),
        image=api_pb2.ImageSpec(image=change.get("image", env.image)),
        mounts=[api_pb2.Mount(container_path=change["mount"], host_path="/tmp")]
        if "mount" in change else [])
    with pytest.raises(grpc.RpcError) as raised:
        d.runtime.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=change.get("pod_sandbox_id", pod.id), config=config,
            sandbox_config=pod.config))
    assert raised.value.code() == code
    assert words in (raised.value.details() or "")
    after = sorted(p.name for p in (d.runroot / "containers").glob("*")) \
        if (d.runroot / "containers").exists() else []
    assert after == before
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(pod_sandbox_id=pod.id))).containers


def test_a_duplicate_name_in_a_pod_is_refused(env: Env, pod: Pod) -> None:
    d = env.daemon
    first = create(d, pod.id, pod.config, env.image, name="twin", command=["/bin/true"])
    with pytest.raises(grpc.RpcError) as raised:
        create(d, pod.id, pod.config, env.image, name="twin", command=["/bin/true"])
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first in (raised.value.details() or "")


def test_status_of_an_unknown_container_is_not_found(env: Env) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        status(env.daemon, "0" * 64)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_used_image_cannot_be_removed(env: Env, pod: Pod) -> None:
    d = env.daemon
    create(d, pod.id, pod.config, env.image, command=["/bin/true"])
    with pytest.raises(grpc.RpcError) as raised:
        d.image.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=env.image)))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_removing_the_pod_removes_its_containers(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image, command=["/bin/sleep", "60"])
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(d, cid, api_pb2.CONTAINER_RUNNING)
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id))
    assert status(d, cid).state == api_pb2.CONTAINER_EXITED
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    with pytest.raises(grpc.RpcError):
        status(d, cid)
    # No cgroup of the pod or container in any hierarchy, the runtime's own included.
    assert not [p for p in env.net.cgroup_dirs() if pod.id in str(p) or cid in str(p)]


def test_remove_ends_what_a_container_left_in_the_pods_pid_namespace(
        env: Env, pod: Pod) -> None:
    """The pod shares one PID namespace (the CRI's default): when the container's
    init exits, a child it started lives on in the container's cgroup. Removing
    the container ends it and frees the cgroup, with either runtime (runc's
    delete kills such leftovers; crid-runtime left the cgroup busy)."""
    d = env.daemon
    cid = create(d, pod.id, pod.config, env.image,
                 command=["/bin/sh", "-c", "sleep 600 & exit 0"])
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    assert wait_state(d, cid, api_pb2.CONTAINER_EXITED).exit_code == 0
    # In every hierarchy (v1) or the one (v2): the processes in its cgroup.
    left = sorted({int(pid) for d in env.net.cgroup_dirs() if d.name == cid
                   for pid in (d / "cgroup.procs").read_text().split()})
    assert len(left) == 1 and b"sleep" in Path(f"/proc/{left[0]}/cmdline").read_bytes()
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert gone_or_zombie(left[0], within=10)
    assert not [p for p in env.net.cgroup_dirs() if p.name == cid]


def test_list_filters_and_verbose_status(env: Env, pod: Pod, make_pod: PodMaker) -> None:
    d = env.daemon
    running = run(d, pod.id, pod.config, env.image, labels={"tier": "a"})
    created = create(d, pod.id, pod.config, env.image, labels={"tier": "b"})
    other_pod = make_pod()
    elsewhere = create(d, other_pod.id, other_pod.config, env.image, labels={"tier": "a"})

    def listed(**fields: Any) -> set[str]:
        return {c.id for c in d.runtime.ListContainers(api_pb2.ListContainersRequest(
            filter=api_pb2.ContainerFilter(**fields))).containers}

    assert listed(pod_sandbox_id=pod.id) == {running, created}
    assert listed(id=running[:12]) == {running}
    assert listed(state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_CREATED)) >= {
        created, elsewhere}
    assert running not in listed(
        state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_CREATED))
    assert listed(label_selector={"tier": "a"}) == {running, elsewhere}
    assert listed(label_selector={"tier": "a"}, pod_sandbox_id=other_pod.id) == {elsewhere}

    response = d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=running, verbose=True))
    info = json.loads(response.info["info"])
    assert info["sandboxID"] == pod.id and info["pid"] > 0
    assert Path(f"/proc/{info['pid']}/cmdline").read_bytes().split(b"\0")[0] == b"/bin/sleep"
    assert info["runtimeSpec"]["process"]["args"] == ["/bin/sleep", "600"]
