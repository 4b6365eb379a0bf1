"""Issue 14, hole 4 through the CRI: a daemon on each handler (crid, runc),
conmon in the path, images from a registry.

- A container's process holds exactly the three stdio pipes conmon gave it
  (seen from the host through /proc/<pid>/fd, and from inside), and its cwd
  is the one asked for, inside its root;
- CreateContainer with working_dir /proc/self/fd/7, or an image whose
  WorkingDir is that, is refused with InvalidArgument before anything is
  created;
- an image whose WorkingDir /work is a symlink to /proc/self/fd/7 gets past
  that lexical check: the runtime refuses it (the container is never
  created), so no process of it ever has a host cwd.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.helpers import create, pull, run, sh, verbose_pid
from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.images import Image, RunConfig
from e2e.fixtures.layers import Symlink, busybox_layer, make_layer
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import namespace_options, pod_config, pod_daemon, stop_remove

ESCAPE = "/proc/self/fd/7"
RUN = RunConfig(cmd=("/bin/sleep", "600"), env=("PATH=/bin",))


@dataclass
class Cri:
    daemon: CridDaemon
    plain: str  # busybox
    proc_workdir: str  # WorkingDir /proc/self/fd/7
    symlink_workdir: str  # WorkingDir /work, /work -> /proc/self/fd/7


@pytest.fixture(scope="module")
def cri(registry: Registry) -> Iterator[Cri]:
    plain = Image((busybox_layer(),), config=RUN)
    proc_workdir = Image((busybox_layer(),), config=RunConfig(
        cmd=RUN.cmd, env=RUN.env, working_dir=ESCAPE))
    symlink_workdir = Image(
        (busybox_layer(), make_layer([Symlink("/work", ESCAPE)])),
        config=RunConfig(cmd=RUN.cmd, env=RUN.env, working_dir="/work"))
    with pod_daemon() as (daemon, _net):
        yield Cri(daemon, pull(daemon, registry, plain),
                  pull(daemon, registry, proc_workdir),
                  pull(daemon, registry, symlink_workdir))


@dataclass
class Pod:
    id: str
    config: api_pb2.PodSandboxConfig


@pytest.fixture(params=["crid", "runc"])
def pod(request: pytest.FixtureRequest, cri: Cri) -> Iterator[Pod]:
    config = pod_config(linux=namespace_options())  # own PID namespace: the process is pid 1
    pod_id = str(cri.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=str(request.param))).pod_sandbox_id)
    yield Pod(pod_id, config)
    stop_remove(cri.daemon, pod_id)


def _containers(cri: Cri, pod: Pod) -> list[str]:
    listed = cri.daemon.runtime.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(pod_sandbox_id=pod.id))).containers
    return [c.id for c in listed]


def test_container_holds_only_conmons_stdio(cri: Cri, pod: Pod) -> None:
    cid = run(cri.daemon, pod.id, pod.config, cri.plain, working_dir="/tmp")
    pid = verbose_pid(cri.daemon, cid)
    # RUNNING is reported once `start` returned: the execve may still be under way.
    deadline = time.monotonic() + 10
    while not os.readlink(f"/proc/{pid}/exe").endswith("busybox"):
        assert time.monotonic() < deadline, os.readlink(f"/proc/{pid}/exe")
        time.sleep(0.02)
    fds = sorted(os.listdir(f"/proc/{pid}/fd"), key=int)
    targets = [os.readlink(f"/proc/{pid}/fd/{n}") for n in fds]
    assert fds == ["0", "1", "2"], targets
    for n in fds:  # conmon's pipes (or /dev/null for stdin): never a file or a directory
        mode = os.stat(f"/proc/{pid}/fd/{n}").st_mode
        assert stat.S_ISFIFO(mode) or stat.S_ISCHR(mode), (n, targets)
    root, cwd = os.stat(f"/proc/{pid}/root"), os.stat(f"/proc/{pid}/cwd")
    inside_tmp = os.stat(f"/proc/{pid}/root/tmp")  # /tmp resolved in the container's root
    assert (cwd.st_dev, cwd.st_ino) == (inside_tmp.st_dev, inside_tmp.st_ino)
    assert (cwd.st_dev, cwd.st_ino) != (os.stat("/tmp").st_dev, os.stat("/tmp").st_ino)
    assert (root.st_dev, root.st_ino) != (os.stat("/").st_dev, os.stat("/").st_ino)
    # From inside: pid 1 is the container's process; same three fds, cwd /tmp.
    assert sh(cri.daemon, cid, "ls /proc/1/fd").split() == ["0", "1", "2"]
    assert sh(cri.daemon, cid, "readlink /proc/1/cwd").strip() == "/tmp"


@pytest.mark.parametrize("source", ["request", "image"])
def test_proc_working_dir_is_refused(cri: Cri, pod: Pod, source: str) -> None:
    fields = {"working_dir": ESCAPE} if source == "request" else {}
    image = cri.plain if source == "request" else cri.proc_workdir
    with pytest.raises(grpc.RpcError) as refused:
        create(cri.daemon, pod.id, pod.config, image, **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "under /proc" in str(refused.value.details())
    assert _containers(cri, pod) == []


def test_symlink_to_proc_self_fd_is_refused_by_the_runtime(cri: Cri, pod: Pod) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        create(cri.daemon, pod.id, pod.config, cri.symlink_workdir)
    assert "/work" in str(refused.value.details()), refused.value.details()
    assert _containers(cri, pod) == []


def test_exec_sync_holds_only_its_stdio(cri: Cri, pod: Pod) -> None:
    """An ExecSync'd shell (conmon runs the runtime's exec) lists its own fds:
    the glob's directory fd is closed again by the time ``-e`` follows it."""
    cid = run(cri.daemon, pod.id, pod.config, cri.plain, working_dir="/tmp")
    held = sh(cri.daemon, cid, 'for f in /proc/$$/fd/*; do [ -e "$f" ] && echo "${f##*/}"; done; '
                               "readlink /proc/$$/cwd")
    assert held.split() == ["0", "1", "2", "/tmp"], held
