"""A handler whose runtime is runc wrapped, to be what crid must cope with:

- a runtime that fails part-way through create and leaves the container's
  cgroup behind, with a process in it: crid kills the process and removes the
  cgroup, as it removes everything else of a failed create;
- a runtime without the ``rro`` mount option: Status says the handler has no
  recursive read-only mounts, and CreateContainer refuses one up front."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import assert_unchanged, gone_or_zombie, leftovers
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_daemon

MARKER = "leave-a-cgroup"

# runc for everything, except: `features` without "rro"; a create whose
# process carries MARKER makes the container's cgroup in every hierarchy,
# leaves a process in it, and fails, as a runtime that crashed part-way would.
WRAPPED_RUNTIME = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
if args == ["features"]:
    features = json.loads(subprocess.run([{runc!r}, "features"], capture_output=True).stdout)
    features["mountOptions"] = [o for o in features["mountOptions"] if o != "rro"]
    print(json.dumps(features))
    sys.exit(0)
if "create" in args:
    bundle = args[args.index("--bundle") + 1]
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    if {marker!r} in spec["process"]["args"]:
        relative = spec["linux"]["cgroupsPath"].lstrip("/")
        root = "/sys/fs/cgroup"
        tops = [root] if os.path.exists(root + "/cgroup.controllers") else [
            os.path.join(root, n) for n in os.listdir(root)
            if os.path.isdir(os.path.join(root, n)) and not os.path.islink(os.path.join(root, n))]
        dirs = [os.path.join(top, relative) for top in tops]
        for d in dirs:
            os.makedirs(d, exist_ok=True)
        child = os.fork()
        if child == 0:
            os.setsid()
            for d in dirs:
                try:
                    with open(os.path.join(d, "cgroup.procs"), "w") as f:
                        f.write(str(os.getpid()))
                except OSError:  # v1 cpuset takes no task until cpus are set
                    pass
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv("/bin/sleep", ["sleep", "300"])
        with open({pid_file!r}, "w") as f:
            f.write(str(child))
        sys.stderr.write("leaky runtime: gave up after making the cgroup\\n")
        sys.exit(1)
os.execv({runc!r}, [{runc!r}, *args])
"""


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed")
    workdir = tmp_path_factory.mktemp("wrapped")
    script, pid_file = workdir / "wrapped-runtime", workdir / "leaked.pid"
    script.write_text(WRAPPED_RUNTIME.format(python=sys.executable, marker=MARKER,
                                           pid_file=str(pid_file), runc=runc))
    script.chmod(0o755)
    return script, pid_file


@pytest.fixture(scope="module")
def env(registry: Registry, wrapped: tuple[Path, Path]) -> Iterator[Env]:
    """The containers tests' daemon, with the wrapped runtime as handler "wrapped"."""
    pushed = push(registry, "e2e/busybox", "1", busybox_image(config=RunConfig(cmd=("/bin/sh",))))
    handler = f'[crid.runtime.handlers.wrapped]\npath = "{wrapped[0]}"\n'
    with pod_daemon(extra_toml=handler) as (daemon, net):
        image_id = daemon.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pushed.reference))).image_ref
        yield Env(daemon, net, pushed.reference, image_id)


@pytest.fixture
def handler() -> str:
    return "wrapped"


def _create(env: Env, pod: Pod, *command: str, mounts: Sequence[api_pb2.Mount] = ()) -> str:
    return str(env.daemon.runtime.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod.id, sandbox_config=pod.config, config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=f"c-{time.monotonic_ns()}"),
            image=api_pb2.ImageSpec(image=env.image), command=list(command),
            mounts=mounts))).container_id)


def test_a_cgroup_left_by_a_failed_create_is_removed(
        env: Env, pod: Pod, wrapped: tuple[Path, Path]) -> None:
    _, pid_file = wrapped
    before = leftovers(env, pod)
    with pytest.raises(grpc.RpcError) as raised:
        _create(env, pod, "/bin/echo", MARKER)
    assert "gave up after making the cgroup" in (raised.value.details() or "")
    leaked = int(pid_file.read_text())
    assert gone_or_zombie(leaked), f"the leaked process {leaked} is still running"
    assert_unchanged(env, pod, before)
    # The handler is otherwise sound: the same pod still runs containers.
    container_id = _create(env, pod, "/bin/true")
    env.daemon.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=container_id))


def test_a_handler_without_rro_says_so_and_refuses_such_mounts(
        env: Env, pod: Pod, tmp_path: Path) -> None:
    status = env.daemon.runtime.Status(api_pb2.StatusRequest())
    rro = {h.name: h.features.recursive_read_only_mounts for h in status.runtime_handlers}
    assert rro["wrapped"] is False
    before = leftovers(env, pod)
    with pytest.raises(grpc.RpcError) as raised:
        _create(env, pod, "/bin/true", mounts=[api_pb2.Mount(
            container_path="/data", host_path=str(tmp_path), readonly=True,
            recursive_read_only=True)])
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'wrapped' does not support it" in (raised.value.details() or "")
    assert_unchanged(env, pod, before)
