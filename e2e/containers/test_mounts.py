"""Mounts seen from both sides: propagation modes, read-only rootfs, recursive read-only."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, PodMaker
from e2e.containers.helpers import exec_sync, run, sh
from e2e.fixtures.daemon import remove_workdir

P = api_pb2.MountPropagation
SYS_ADMIN = api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
    capabilities=api_pb2.Capability(add_capabilities=["SYS_ADMIN"])))


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A private host dir; everything mounted below it is detached afterwards."""
    path = Path("/tmp") / f"crid-mnt-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    remove_workdir(path)  # detaches whatever propagation left below it, then deletes


@pytest.fixture
def shared_dir(host_dir: Path) -> Path:
    mount("--bind", str(host_dir), str(host_dir))
    mount("--make-shared", str(host_dir))
    return host_dir


@pytest.mark.parametrize(("propagation", "host_to_container", "container_to_host"), [
    (P.PROPAGATION_PRIVATE, False, False),
    (P.PROPAGATION_HOST_TO_CONTAINER, True, False),
    (P.PROPAGATION_BIDIRECTIONAL, True, True),
])
def test_propagation_seen_from_both_sides(
    env: Env, pod: Pod, shared_dir: Path, propagation: api_pb2.MountPropagation.ValueType,
    host_to_container: bool, container_to_host: bool,
) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=SYS_ADMIN, mounts=[
        api_pb2.Mount(container_path="/m", host_path=str(shared_dir), propagation=propagation)])
    # The host mounts something below the dir after the container started...
    (shared_dir / "fromhost").mkdir()
    mount("-t", "tmpfs", "tmpfs", str(shared_dir / "fromhost"))
    (shared_dir / "fromhost" / "marker").write_text("host\n")
    seen = exec_sync(env.daemon, cid, "/bin/cat", "/m/fromhost/marker")
    assert (seen.exit_code == 0) == host_to_container, seen
    # ... and the container mounts something below it.
    sh(env.daemon, cid, "mkdir /m/fromctr && mount -t tmpfs tmpfs /m/fromctr && "
       "echo ctr > /m/fromctr/marker")
    assert (shared_dir / "fromctr" / "marker").exists() == container_to_host


@pytest.mark.parametrize(("propagation", "words"), [
    (P.PROPAGATION_BIDIRECTIONAL, "make-shared"),
    (P.PROPAGATION_HOST_TO_CONTAINER, "shared or slave"),
])
def test_propagation_needs_a_shared_source(
    env: Env, pod: Pod, host_dir: Path, propagation: api_pb2.MountPropagation.ValueType,
    words: str,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        run(env.daemon, pod.id, pod.config, env.image, mounts=[api_pb2.Mount(
            container_path="/m", host_path=str(host_dir), propagation=propagation)])
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert words in (raised.value.details() or "")


def test_read_only_rootfs(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(readonly_rootfs=True)))
    refused = exec_sync(env.daemon, cid, "/bin/touch", "/newfile")
    assert refused.exit_code != 0 and b"Read-only file system" in refused.stderr
    assert sh(env.daemon, cid, "echo x > /dev/shm/ok && cat /dev/shm/ok") == "x\n"
    writable = run(env.daemon, pod.id, pod.config, env.image)
    assert exec_sync(env.daemon, writable, "/bin/touch", "/newfile").exit_code == 0


@pytest.mark.parametrize("recursive", [False, True])
def test_recursive_read_only(env: Env, pod: Pod, host_dir: Path, recursive: bool) -> None:
    (host_dir / "sub").mkdir()
    mount("-t", "tmpfs", "tmpfs", str(host_dir / "sub"))
    cid = run(env.daemon, pod.id, pod.config, env.image, mounts=[api_pb2.Mount(
        container_path="/r", host_path=str(host_dir), readonly=True,
        recursive_read_only=recursive)])
    top = exec_sync(env.daemon, cid, "/bin/touch", "/r/top")
    assert top.exit_code != 0 and b"Read-only file system" in top.stderr
    below = exec_sync(env.daemon, cid, "/bin/touch", "/r/sub/below")
    # A plain read-only bind leaves submounts writable; recursive read-only does not.
    assert (below.exit_code != 0) == recursive, below
    assert (host_dir / "sub" / "below").exists() != recursive


def test_a_device_is_made_in_the_container(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image, devices=[api_pb2.Device(
        container_path="/dev/mine", host_path="/dev/null", permissions="rwm")])
    assert sh(env.daemon, cid, "stat -c '%F %t,%T' /dev/mine") == "character special file 1,3\n"
    assert sh(env.daemon, cid, "echo x > /dev/mine && echo written") == "written\n"


def test_the_pods_files_and_shm_inside(env: Env, make_pod: PodMaker) -> None:
    pod = make_pod(dns_config=api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["e2e.svc"]))
    one = run(env.daemon, pod.id, pod.config, env.image)
    two = run(env.daemon, pod.id, pod.config, env.image, linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(readonly_rootfs=True)))
    resolv = sh(env.daemon, one, "cat /etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv and "e2e.svc" in resolv
    assert sh(env.daemon, one, "cat /etc/hostname").strip() == pod.config.hostname
    assert pod.config.hostname in sh(env.daemon, one, "cat /etc/hosts")
    # /dev/shm is the pod's: what one container writes, the other reads.
    sh(env.daemon, one, "echo shared > /dev/shm/note")
    assert sh(env.daemon, two, "cat /dev/shm/note") == "shared\n"
    # With a read-only rootfs the pod's files are read-only too.
    refused = exec_sync(env.daemon, two, "/bin/sh", "-c", "echo x >> /etc/hosts")
    assert refused.exit_code != 0 and b"Read-only file system" in refused.stderr
