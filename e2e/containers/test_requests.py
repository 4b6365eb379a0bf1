"""Malformed and failing CreateContainer requests: the right code, a clear
message, and nothing left behind (no bundle, writable layer, mount, cgroup or row)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import assert_unchanged, create, leftovers, pull, run, sh
from e2e.fixtures.images import RunConfig, busybox_image
from e2e.fixtures.registry import Registry

Code = grpc.StatusCode


def refused(env: Env, pod: Pod, request: api_pb2.CreateContainerRequest, code: grpc.StatusCode,
            words: str) -> None:
    before = leftovers(env, pod)
    with pytest.raises(grpc.RpcError) as raised:
        env.daemon.runtime.CreateContainer(request)
    assert raised.value.code() == code, raised.value.details()
    assert words in (raised.value.details() or ""), raised.value.details()
    assert_unchanged(env, pod, before)


def request(env: Env, pod: Pod, **config: Any) -> api_pb2.CreateContainerRequest:
    fields: dict[str, Any] = {
        "metadata": api_pb2.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:6]}"),
        "image": api_pb2.ImageSpec(image=env.image), "command": ["/bin/sleep", "60"]}
    fields.update(config)
    return api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod.id, config=api_pb2.ContainerConfig(**fields),
        sandbox_config=pod.config)


def test_missing_metadata(env: Env, pod: Pod) -> None:
    req = request(env, pod)
    req.config.ClearField("metadata")
    refused(env, pod, req, Code.INVALID_ARGUMENT, "metadata.name")


def test_missing_image(env: Env, pod: Pod) -> None:
    refused(env, pod, request(env, pod, image=api_pb2.ImageSpec()), Code.INVALID_ARGUMENT,
            "image")


def test_unknown_pod(env: Env, pod: Pod) -> None:
    req = request(env, pod)
    req.pod_sandbox_id = "0" * 64
    refused(env, pod, req, Code.NOT_FOUND, "0" * 64)


def test_unknown_image(env: Env, pod: Pod) -> None:
    refused(env, pod, request(env, pod, image=api_pb2.ImageSpec(image="127.0.0.1:1/never:pulled")),
            Code.NOT_FOUND, "127.0.0.1:1/never:pulled")


@pytest.mark.parametrize(("mount", "words"), [
    ({"container_path": "relative/in", "host_path": "/tmp"}, "relative/in"),
    ({"container_path": "/in", "host_path": "relative/out"}, "relative/out"),
    ({"container_path": "", "host_path": "/tmp"}, "container path"),
])
def test_bad_mount_paths(env: Env, pod: Pod, mount: dict[str, Any], words: str) -> None:
    refused(env, pod, request(env, pod, mounts=[api_pb2.Mount(**mount)]), Code.INVALID_ARGUMENT,
            words)


def test_a_missing_host_path_is_created(env: Env, pod: Pod, tmp_path: Path) -> None:
    # As kubelet expects, and containerd and cri-o do: a missing host dir is made.
    missing = tmp_path / "not" / "yet"
    cid = run(env.daemon, pod.id, pod.config, env.image, mounts=[
        api_pb2.Mount(container_path="/data", host_path=str(missing))])
    assert missing.is_dir()
    sh(env.daemon, cid, "echo hi > /data/f")
    assert (missing / "f").read_text() == "hi\n"


def test_duplicate_name_in_a_pod(env: Env, pod: Pod) -> None:
    first = create(env.daemon, pod.id, pod.config, env.image, name="twin",
                   command=["/bin/true"])
    req = request(env, pod, metadata=api_pb2.ContainerMetadata(name="twin"))
    refused(env, pod, req, Code.ALREADY_EXISTS, first)
    # Another attempt of the same name is a different container.
    req.config.metadata.attempt = 1
    env.daemon.runtime.CreateContainer(req)


def test_an_unknown_user_fails_after_the_rootfs_is_mounted(env: Env, pod: Pod) -> None:
    refused(env, pod, request(env, pod, linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(run_as_username="nosuch"))),
        Code.INVALID_ARGUMENT, "nosuch")


def test_a_runtime_failure_is_undone(env: Env, pod: Pod) -> None:
    # The runtime itself refuses (no such executable): conmon, the runtime's
    # state, the cgroup, the overlay and the bundle all go.
    before = leftovers(env, pod)
    with pytest.raises(grpc.RpcError) as raised:
        env.daemon.runtime.CreateContainer(request(env, pod, command=["/no/such/binary"],
                                                   log_path="failed/0.log"))
    details = raised.value.details() or ""
    # The runtime's error, not the warnings it logged before it.
    assert "/no/such/binary" in details and "level=" not in details, details
    assert "\n" not in details.strip()
    assert not (Path(pod.config.log_directory) / "failed").exists()
    assert_unchanged(env, pod, before)


def test_a_bad_image_stop_signal_is_refused(env: Env, pod: Pod, registry: Registry) -> None:
    image = pull(env.daemon, registry, busybox_image(config=RunConfig(stop_signal="SIGNOPE")))
    refused(env, pod, request(env, pod, image=api_pb2.ImageSpec(image=image)),
            Code.INVALID_ARGUMENT, "SIGNOPE")


def test_an_apparmor_profile_is_refused_on_a_node_without_apparmor(env: Env, pod: Pod) -> None:
    kinds = api_pb2.SecurityProfile.ProfileType
    refused(env, pod, request(env, pod, linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(apparmor=api_pb2.SecurityProfile(
            profile_type=kinds.Localhost, localhost_ref="my-profile")))),
        Code.INVALID_ARGUMENT, "AppArmor")


def test_unified_resources_are_refused_on_cgroup_v1(env: Env, pod: Pod) -> None:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("a cgroup v2 node takes unified resources")
    refused(env, pod, request(env, pod, linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(unified={"memory.high": "1000000"}))),
        Code.INVALID_ARGUMENT, "memory.high")


def test_the_pod_config_given_with_create_cannot_make_a_pod_privileged(env: Env, pod: Pod) -> None:
    # The pod's own config (from RunPodSandbox) decides, not the copy the request carries.
    claimed = api_pb2.PodSandboxConfig()
    claimed.CopyFrom(pod.config)
    claimed.linux.security_context.privileged = True
    req = request(env, pod, linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(privileged=True)))
    req.sandbox_config.CopyFrom(claimed)
    refused(env, pod, req, Code.INVALID_ARGUMENT, "privileged pod")


def test_create_without_the_pod_config_uses_the_pods(env: Env, pod: Pod) -> None:
    req = request(env, pod)
    req.ClearField("sandbox_config")
    cid = env.daemon.runtime.CreateContainer(req).container_id
    info = json.loads(env.daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid, verbose=True)).info["info"])
    annotations = info["runtimeSpec"]["annotations"]
    assert annotations["io.kubernetes.cri.sandbox-name"] == pod.config.metadata.name
    assert "HOSTNAME=" + pod.config.hostname in info["runtimeSpec"]["process"]["env"]
