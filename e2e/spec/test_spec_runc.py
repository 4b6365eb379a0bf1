"""Specs from build_spec, run for real by runc on a busybox rootfs.

What the process sees must be what the spec generator meant: ids and
groups from the image's account files, cwd, env, capabilities, and the
RuntimeDefault seccomp profile refusing unshare(2) (and Unconfined not).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2
from crid.oci.spec import ImageConfig, PodFacts, build_spec
from crid.oci.spec.security import ALL_CAPABILITIES, DEFAULT_CAPABILITIES

from crid.errors import FailedPrecondition
from tests.oci.spec.runtime_spec_check import check

RUNC = "/usr/sbin/runc"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "id", "pwd", "env", "grep", "cat", "true", "unshare", "echo", "touch", "ls",
           "mkdir")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:alice\nusers:x:100:alice\nalice:x:1000:\n"
SCRIPT = (
    "echo ids=$(id -u):$(id -g):$(id -G); echo cwd=$(pwd); env; "
    "grep -E '^Cap(Eff|Bnd)' /proc/self/status; "
    "unshare true 2>&1; echo unshare_rc=$?"
)

pytestmark = pytest.mark.skipif(not (os.path.exists(RUNC) and os.path.exists(BUSYBOX)),
                                reason="needs runc and busybox-static (make setup)")


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A rootfs with static busybox, its applets and account files; cgroups cleaned after."""
    rootfs = tmp_path / "bundle" / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (rootfs / "home/alice").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
    for applet in APPLETS:
        os.symlink("busybox", rootfs / "bin" / applet)
    (rootfs / "etc/passwd").write_text(PASSWD)
    (rootfs / "etc/group").write_text(GROUP)
    yield tmp_path


def run(workdir: Path, sc: api_pb2.LinuxContainerSecurityContext, *,
        envs: dict[str, str] | None = None, script: str = SCRIPT,
        mounts: list[api_pb2.Mount] | None = None, pod: PodFacts | None = None,
        privileged_pod: bool = False,
        resources: api_pb2.LinuxContainerResources | None = None,
        devices: list[api_pb2.Device] | None = None) -> str:
    """Build a spec for ``script`` under ``sc``, run it with runc, return its stdout."""
    container_id = "spec-e2e-" + uuid.uuid4().hex[:12]
    cgroup_parent = "/crid-e2e-" + container_id
    if not sc.HasField("namespace_options"):
        sc.namespace_options.CopyFrom(api_pb2.NamespaceOption(
            network=api_pb2.NamespaceMode.POD, ipc=api_pb2.NamespaceMode.POD,
            pid=api_pb2.NamespaceMode.CONTAINER))
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="probe"),
        image=api_pb2.ImageSpec(image="busybox"),
        args=[script],
        envs=[api_pb2.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
        mounts=mounts or [],
        devices=devices or [],
        linux=api_pb2.LinuxContainerConfig(security_context=sc, resources=resources),
    )
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="probe-pod", namespace="e2e", uid="u"),
        hostname="probe-pod",
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=api_pb2.LinuxSandboxSecurityContext(privileged=privileged_pod)),
    )
    image = ImageConfig(user="alice", env=("PATH=/bin", "FROM_IMAGE=1"),
                        entrypoint=("/bin/sh", "-c"), working_dir="/home/alice")
    bundle = workdir / "bundle"
    # Without pod paths every namespace is new, which runc can do on its own.
    built = build_spec(container_id, config, sandbox, image, pod or PodFacts("none"),
                       str(bundle / "rootfs"))
    assert check(built.spec) == []
    (bundle / "config.json").write_text(json.dumps(built.spec))
    state = workdir / "runc-state"
    try:
        done = subprocess.run(
            [RUNC, "--root", str(state), "run", "--bundle", str(bundle), container_id],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout
    finally:
        subprocess.run([RUNC, "--root", str(state), "delete", "--force", container_id],
                       capture_output=True, timeout=30)
        _remove_cgroups(cgroup_parent)


def _remove_cgroups(parent: str) -> None:
    root = Path("/sys/fs/cgroup")
    for hierarchy in [root, *root.iterdir()]:
        path = hierarchy / parent.strip("/")
        if path.is_dir():
            for child in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
                if child.is_dir():
                    child.rmdir()
            path.rmdir()


def _fields(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=") if "=" in line else line.partition(":")
        if sep:
            found[key.strip()] = value.strip()
    return found


def _mask(caps: list[str] | tuple[str, ...]) -> int:
    return sum(1 << ALL_CAPABILITIES.index(c) for c in caps)


def test_root_with_runtime_default_seccomp(workdir: Path) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(
        run_as_user=api_pb2.Int64Value(value=0),
        seccomp=api_pb2.SecurityProfile(
            profile_type=api_pb2.SecurityProfile.ProfileType.RuntimeDefault),
        capabilities=api_pb2.Capability(add_capabilities=["net_admin"], drop_capabilities=["KILL"]),
    )
    out = run(workdir, sc, envs={"FROM_REQUEST": "2"})
    fields = _fields(out)
    assert fields["ids"] == "0:0:0"
    caps = [*[c for c in DEFAULT_CAPABILITIES if c != "CAP_KILL"], "CAP_NET_ADMIN"]
    assert int(fields["CapEff"], 16) == _mask(caps)
    assert int(fields["CapBnd"], 16) == _mask(caps)
    assert "Operation not permitted" in out
    assert fields["unshare_rc"] != "0"


def test_user_groups_cwd_env_unconfined(workdir: Path) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(
        run_as_username="alice", supplemental_groups=[5000],
        seccomp=api_pb2.SecurityProfile(
            profile_type=api_pb2.SecurityProfile.ProfileType.Unconfined),
    )
    out = run(workdir, sc, envs={"FROM_IMAGE": "overridden", "FROM_REQUEST": "2"})
    fields = _fields(out)
    uid, gid, groups = fields["ids"].split(":")
    assert (uid, gid) == ("1000", "1000")
    assert sorted(map(int, groups.split())) == [10, 100, 1000, 5000]
    assert fields["cwd"] == "/home/alice"
    assert fields["FROM_IMAGE"] == "overridden"
    assert fields["FROM_REQUEST"] == "2"
    assert fields["HOSTNAME"] == "probe-pod"
    assert int(fields["CapEff"], 16) == 0  # a non-root process keeps no effective caps
    assert int(fields["CapBnd"], 16) == _mask(DEFAULT_CAPABILITIES)
    # unshare(0) needs no privilege: only a seccomp filter would refuse it.
    assert fields["unshare_rc"] == "0", out


@pytest.fixture
def bind_point(tmp_path: Path) -> Iterator[Path]:
    """A host directory that is its own (private) mount point; unmounted after."""
    point = tmp_path / "propagation"
    point.mkdir()
    (point / "marker").write_text("from the host\n")
    subprocess.run(["mount", "--bind", str(point), str(point)], check=True)
    try:
        subprocess.run(["mount", "--make-private", str(point)], check=True)
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)


def test_propagation_checked_against_this_node(workdir: Path, bind_point: Path) -> None:
    mount = api_pb2.Mount(
        host_path=str(bind_point), container_path="/shared",
        propagation=api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL)
    sc = api_pb2.LinuxContainerSecurityContext()
    with pytest.raises(FailedPrecondition, match="not a shared mount"):
        run(workdir, sc, mounts=[mount], script="true")
    subprocess.run(["mount", "--make-shared", str(bind_point)], check=True)
    out = run(workdir, api_pb2.LinuxContainerSecurityContext(), mounts=[mount],
              script="cat /shared/marker; grep ' /shared ' /proc/self/mountinfo")
    assert "from the host" in out
    assert "shared:" in out  # bidirectional inside too


def test_pod_like_hardening(workdir: Path, tmp_path: Path) -> None:
    """Read-only rootfs, masked and read-only /proc paths, no_new_privs, the
    pod's files and read-only / recursive read-only request mounts."""
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    (pod_dir / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    (pod_dir / "hosts").write_text("127.0.0.1 localhost probe-pod\n")
    data = tmp_path / "data"
    data.mkdir()
    pod = PodFacts("none", resolv_conf_path=str(pod_dir / "resolv.conf"),
                   hosts_path=str(pod_dir / "hosts"))
    sc = api_pb2.LinuxContainerSecurityContext(readonly_rootfs=True, no_new_privs=True,
                                               run_as_user=api_pb2.Int64Value(value=0))
    mounts = [
        api_pb2.Mount(host_path=str(data), container_path="/data", readonly=True,
                      recursive_read_only=True),
        api_pb2.Mount(host_path=str(tmp_path / "scratch"), container_path="/scratch"),
    ]
    script = (
        "cat /etc/resolv.conf /etc/hosts; "
        "touch /rootfs-file 2>&1; touch /data/x 2>&1; touch /scratch/ok && echo scratch=ok; "
        "echo timer_list=$(cat /proc/timer_list 2>&1 | grep -c .); "
        "{ echo x > /proc/sys/kernel/domainname; } 2>&1; "
        "grep NoNewPrivs /proc/self/status"
    )
    out = run(workdir, sc, script=script, pod=pod, mounts=mounts)
    assert "nameserver 192.0.2.53" in out
    assert "probe-pod" in out
    assert out.count("Read-only file system") >= 3, out  # rootfs, rro mount, /proc/sys
    assert "scratch=ok" in out
    assert (tmp_path / "scratch/ok").exists()  # missing host path was created
    assert Path("/proc/timer_list").read_text()  # the host's has content...
    assert "timer_list=0\n" in out  # ...masked, the container's is /dev/null
    fields = _fields(out)
    assert fields["NoNewPrivs"] == "1"


def test_privileged(workdir: Path) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(
        privileged=True, run_as_user=api_pb2.Int64Value(value=0),
        seccomp=api_pb2.SecurityProfile(
            profile_type=api_pb2.SecurityProfile.ProfileType.RuntimeDefault))
    out = run(workdir, sc, privileged_pod=True, script=(
        "grep CapEff /proc/self/status; ls /dev/null /dev/kmsg; unshare true; "
        "echo unshare_rc=$?; echo sysfs_rw=$(grep -c '^sysfs /sys sysfs rw' /proc/self/mounts)"
    ), envs={})
    fields = _fields(out)
    own = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("CapEff:")).split()[1], 16)
    assert int(fields["CapEff"], 16) == own
    assert "/dev/kmsg" in out  # a host device
    assert fields["unshare_rc"] == "0"  # no seccomp filter
    assert fields["sysfs_rw"] == "1"


@pytest.mark.skipif(Path("/sys/fs/cgroup/cgroup.controllers").exists(),
                    reason="reads cgroup v1 files; this node is cgroup v2")
def test_resources_land_in_cgroup_files(workdir: Path) -> None:
    resources = api_pb2.LinuxContainerResources(
        cpu_shares=256, cpu_quota=20000, cpu_period=100000, memory_limit_in_bytes=64 << 20,
        cpuset_cpus="0")
    # The container has its own cgroup namespace: its cgroups are the roots it sees.
    out = run(workdir, api_pb2.LinuxContainerSecurityContext(), resources=resources, script=(
        "cd /sys/fs/cgroup; echo shares=$(cat cpu/cpu.shares); "
        "echo quota=$(cat cpu/cpu.cfs_quota_us); echo period=$(cat cpu/cpu.cfs_period_us); "
        "echo mem=$(cat memory/memory.limit_in_bytes); echo cpus=$(cat cpuset/cpuset.cpus); "
        "echo memsw=$(cat memory/memory.memsw.limit_in_bytes 2>/dev/null)"))
    fields = _fields(out)
    assert (fields["shares"], fields["quota"], fields["period"]) == ("256", "20000", "100000")
    assert fields["mem"] == str(64 << 20)
    assert fields["cpus"] == "0"
    if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
        assert fields["memsw"] == str(64 << 20)  # no swap beyond the memory limit


def test_localhost_seccomp_profile(workdir: Path, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    sc = api_pb2.LinuxContainerSecurityContext(seccomp=api_pb2.SecurityProfile(
        profile_type=api_pb2.SecurityProfile.ProfileType.Localhost,
        localhost_ref=str(profile)))
    out = run(workdir, sc, script="mkdir /tmp-dir 2>&1; echo rc=$?; unshare true; echo u=$?")
    assert "Permission denied" in out  # errno 13 from the profile
    assert _fields(out)["rc"] != "0"
    assert _fields(out)["u"] == "0"  # only what the profile names is refused


def test_device_renamed_with_its_permissions(workdir: Path) -> None:
    """/dev/kmsg granted read-only as /dev/klog: the node exists and the
    device cgroup refuses to open it for writing."""
    devices = [api_pb2.Device(host_path="/dev/kmsg", container_path="/dev/klog",
                              permissions="r")]
    out = run(workdir, api_pb2.LinuxContainerSecurityContext(
        run_as_user=api_pb2.Int64Value(value=0)), devices=devices, script=(
        "ls -l /dev/klog; { echo crid-spec-test > /dev/klog; } 2>&1; echo w=$?"))
    assert out.splitlines()[0].startswith("c")  # a character device node
    assert "Operation not permitted" in out
    assert _fields(out)["w"] != "0"
