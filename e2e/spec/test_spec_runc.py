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

from tests.oci.spec.runtime_spec_check import check

RUNC = "/usr/sbin/runc"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "id", "pwd", "env", "grep", "cat", "true", "unshare", "echo")
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
        envs: dict[str, str]) -> str:
    container_id = "spec-e2e-" + uuid.uuid4().hex[:12]
    cgroup_parent = "/crid-e2e-" + container_id
    sc.namespace_options.CopyFrom(api_pb2.NamespaceOption(
        network=api_pb2.NamespaceMode.POD, ipc=api_pb2.NamespaceMode.POD,
        pid=api_pb2.NamespaceMode.CONTAINER))
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="probe"),
        image=api_pb2.ImageSpec(image="busybox"),
        args=[SCRIPT],
        envs=[api_pb2.KeyValue(key=k, value=v) for k, v in envs.items()],
        linux=api_pb2.LinuxContainerConfig(security_context=sc),
    )
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="probe-pod", namespace="e2e", uid="u"),
        hostname="probe-pod",
        linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
    )
    image = ImageConfig(user="alice", env=("PATH=/bin", "FROM_IMAGE=1"),
                        entrypoint=("/bin/sh", "-c"), working_dir="/home/alice")
    bundle = workdir / "bundle"
    # No pod: every namespace is new, as the runtime-spec smoke test needs.
    built = build_spec(container_id, config, sandbox, image, PodFacts("none"),
                       str(bundle / "rootfs"))
    assert check(built.spec) == []
    (bundle / "config.json").write_text(json.dumps(built.spec))
    state = workdir / "runc-state"
    try:
        done = subprocess.run(
            [RUNC, "--root", str(state), "run", "--bundle", str(bundle), container_id],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
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
