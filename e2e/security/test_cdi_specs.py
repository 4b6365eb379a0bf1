"""Hostile CDI spec files (issue 17): a spec file decides what device nodes,
mounts and hooks a container gets, so crid checks what it says before a
container sees any of it, and a refused device leaves nothing behind.

The attacks are real, against a real daemon whose spec dir holds them:

- a "null" device whose node is fully specified as the host's disk (a loop
  disk of known content), or as /dev/fuse, while its host path is
  /dev/null: without the check the container would get a node of that other
  device and a cgroup rule admitting it;
- a device node whose host path is a regular host file (a secret), not a
  device;
- container and host paths that climb out with ``..``;
- a YAML alias bomb and a file over the size bound, beside a good file whose
  devices keep working and a daemon that keeps answering.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, started_env
from e2e.containers.helpers import assert_unchanged, create, leftovers, run, sh
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_config, stop_remove
from e2e.security.conftest import HostDisk

GOOD = "good.test/dev"


def spec(kind: str, **devices: dict[str, Any]) -> str:
    return json.dumps({"cdiVersion": "0.8.0", "kind": kind, "devices": [
        {"name": name, "containerEdits": edits} for name, edits in devices.items()]})


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory: pytest.TempPathFactory, loop_disk: HostDisk) -> Path:
    top = tmp_path_factory.mktemp("hostile-cdi")
    secret = top / "secret"
    secret.write_text("host secret\n")
    specs = top / "cdi"
    specs.mkdir()
    major, minor = loop_disk.number
    (specs / "good.json").write_text(spec(GOOD, null={"deviceNodes": [
        {"path": "/dev/good/null", "hostPath": "/dev/null"}]}))
    (specs / "disguised.json").write_text(spec(
        "disguised.test/dev",
        disk={"deviceNodes": [{"path": "/dev/vendor/null0", "hostPath": "/dev/null",
                               "type": "b", "major": major, "minor": minor}]},
        fuse={"deviceNodes": [{"path": "/dev/vendor/null0", "hostPath": "/dev/null",
                               "type": "c", "major": 10, "minor": 229}]}))
    (specs / "file.json").write_text(spec("file.test/dev", secret={"deviceNodes": [
        {"path": "/dev/secret", "hostPath": str(secret)}]}))
    (specs / "climb-node.json").write_text(spec("climb.test/node", x={"deviceNodes": [
        {"path": "/dev/../../etc/cron.d/x", "hostPath": "/dev/null"}]}))
    (specs / "climb-mount.json").write_text(spec("climb.test/mount", x={"mounts": [
        {"hostPath": "/dev/../etc", "containerPath": "/host-etc", "options": ["rbind"]}]}))
    (specs / "bomb.yaml").write_text(
        "cdiVersion: 0.8.0\nkind: bomb.test/dev\nx: &a [l, l, l, l, l, l, l, l, l]\n"
        + "".join(f"x{i}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
                  for i in range(20))  # 9**21 strings once expanded
        + "devices: [{name: x, containerEdits: {env: [A=1]}}]\n")
    with (specs / "huge.json").open("w") as f:
        f.write('{"cdiVersion": "0.8.0", "kind": "huge.test/dev", "devices": [], "annotations":'
                ' {"a": "' + "x" * (5 << 20) + '"}}')
    return specs


@pytest.fixture(scope="module")
def env(registry: Registry, spec_dir: Path) -> Iterator[Env]:
    with started_env(registry, f'[crid.cdi]\nspec_dirs = ["{spec_dir}"]\n') as found:
        yield found


@pytest.fixture
def pod(env: Env) -> Iterator[Pod]:
    config = pod_config()
    pod_id = env.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    yield Pod(pod_id, config)
    stop_remove(env.daemon, pod_id)


def refused(env: Env, pod: Pod, device: str) -> str:
    """Create a container with ``device``: INVALID_ARGUMENT, nothing left; the message."""
    before = leftovers(env, pod)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        create(env.daemon, pod.id, pod.config, env.image,
               CDI_devices=[api_pb2.CDIDevice(name=f"{GOOD}=null"),
                            api_pb2.CDIDevice(name=device)])
    assert time.monotonic() - started < 10
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert_unchanged(env, pod, before)
    return raised.value.details() or ""


@pytest.mark.parametrize(("device", "words"), [
    ("disguised.test/dev=disk", "type 'b' does not match /dev/null (a char device)"),
    ("disguised.test/dev=fuse", "major 10 does not match /dev/null (1:3)"),
])
def test_another_device_disguised_as_null_is_refused(env: Env, pod: Pod, device: str,
                                                     words: str) -> None:
    message = refused(env, pod, device)
    assert words in message, message


def test_a_host_file_as_a_device_node_is_refused(env: Env, pod: Pod) -> None:
    message = refused(env, pod, "file.test/dev=secret")
    assert "is not a char or block device" in message, message


@pytest.mark.parametrize(("device", "words"), [
    ("climb.test/node=x", "climb-node.json: devices[0].containerEdits.deviceNodes[0].path: "
                          "'/dev/../../etc/cron.d/x' contains '..'"),
    ("climb.test/mount=x", "climb-mount.json: devices[0].containerEdits.mounts[0].hostPath: "
                           "'/dev/../etc' contains '..'"),
    ("bomb.test/dev=x", "bomb.yaml: not valid YAML: YAML aliases are not accepted"),
    ("huge.test/dev=x", "huge.json: larger than 4194304 bytes"),
])
def test_broken_spec_files_give_no_device_and_say_why(env: Env, pod: Pod, device: str,
                                                     words: str) -> None:
    message = refused(env, pod, device)
    assert f"unknown CDI device {device}" in message and words in message, message


def test_the_good_file_beside_them_still_works(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image,
              CDI_devices=[api_pb2.CDIDevice(name=f"{GOOD}=null")])
    assert sh(env.daemon, cid, "ls -l /dev/good/null").startswith("c")
