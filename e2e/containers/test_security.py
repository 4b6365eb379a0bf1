"""Security contexts as the container's processes see them: privileged,
capabilities, seccomp (RuntimeDefault, Localhost), no_new_privs with a setuid
binary, masked and read-only paths."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, PodMaker
from e2e.containers.helpers import exec_sync, pull, run, run_to_exit, sh
from e2e.fixtures.images import Image
from e2e.fixtures.layers import File, busybox_layer, make_layer
from e2e.fixtures.registry import Registry

# Kernel capability numbers (linux/capability.h) of the default set and a few more.
CAP = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
       "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "NET_RAW": 13,
       "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}
DEFAULT = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
           "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

EUID_C = '#include <stdio.h>\n#include <unistd.h>\n' \
         'int main(void) { printf("%d\\n", (int)geteuid()); return 0; }\n'


def security(**fields: Any) -> api_pb2.LinuxContainerConfig:
    return api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(**fields))


def mask(names: set[str]) -> int:
    return sum(1 << CAP[name] for name in names)


def cap_eff(text: str) -> int:
    line = next(ln for ln in text.splitlines() if ln.startswith("CapEff:"))
    return int(line.split()[1], 16)


@pytest.fixture
def privileged_pod(make_pod: PodMaker) -> Pod:
    return make_pod(linux=api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(privileged=True)))


@pytest.mark.parametrize(("caps", "expected"), [
    (api_pb2.Capability(), DEFAULT),
    (api_pb2.Capability(add_capabilities=["NET_ADMIN"], drop_capabilities=["CHOWN"]),
     DEFAULT - {"CHOWN"} | {"NET_ADMIN"}),
    (api_pb2.Capability(add_capabilities=["CAP_NET_BIND_SERVICE"], drop_capabilities=["ALL"]),
     {"NET_BIND_SERVICE"}),
])
def test_capabilities_of_the_container_process(env: Env, pod: Pod, caps: api_pb2.Capability,
                                               expected: set[str]) -> None:
    done, lines = run_to_exit(env.daemon, pod.id, pod.config, env.image,
                              command=["/bin/cat", "/proc/self/status"],
                              linux=security(capabilities=caps))
    assert done.exit_code == 0
    assert cap_eff("\n".join(lines)) == mask(expected)


def test_privileged_gets_every_capability_host_devices_and_writable_sys(
    env: Env, privileged_pod: Pod
) -> None:
    p = privileged_pod
    cid = run(env.daemon, p.id, p.config, env.image, linux=security(privileged=True))
    own = cap_eff(Path("/proc/self/status").read_text())
    assert cap_eff(sh(env.daemon, cid, "cat /proc/self/status")) == own
    assert sh(env.daemon, cid, "stat -c %t,%T /dev/kmsg") == "1,b\n"
    sys_mount = sh(env.daemon, cid, "grep ' /sys ' /proc/self/mounts")
    assert " rw," in sys_mount
    # Nothing masked, nothing read-only in /proc.
    assert sh(env.daemon, cid, "stat -c %F /proc/timer_list") == "regular empty file\n"
    assert " /proc/sys " not in sh(env.daemon, cid, "cat /proc/self/mounts")

    plain = run(env.daemon, p.id, p.config, env.image)
    assert exec_sync(env.daemon, plain, "/bin/stat", "/dev/kmsg").exit_code != 0
    assert " ro," in sh(env.daemon, plain, "grep ' /sys ' /proc/self/mounts")


def test_masked_and_read_only_paths_by_default(env: Env, pod: Pod) -> None:
    # /proc/kcore is masked too, but this kernel has none: /proc/timer_list stands in.
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert sh(env.daemon, cid, "stat -c %F /proc/timer_list") == "character special file\n"
    assert sh(env.daemon, cid, "wc -c < /proc/timer_list").strip() == "0"
    write = exec_sync(env.daemon, cid, "/bin/sh", "-c", "echo 1 > /proc/sys/vm/drop_caches")
    assert write.exit_code != 0 and b"Read-only file system" in write.stderr
    mounts = sh(env.daemon, cid, "cat /proc/self/mounts").splitlines()
    assert any(" /proc/sys " in m and " ro," in m for m in mounts), mounts


def test_explicit_masked_and_read_only_paths(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=security(
        masked_paths=["/etc/passwd"], readonly_paths=["/tmp"]))
    assert sh(env.daemon, cid, "wc -c < /etc/passwd").strip() == "0"
    assert sh(env.daemon, cid, "stat -c %F /proc/timer_list") == "regular empty file\n"
    assert exec_sync(env.daemon, cid, "/bin/touch", "/tmp/x").exit_code != 0


def test_runtime_default_seccomp_blocks_unshare(env: Env, pod: Pod) -> None:
    kinds = api_pb2.SecurityProfile.ProfileType
    confined = run(env.daemon, pod.id, pod.config, env.image, linux=security(
        seccomp=api_pb2.SecurityProfile(profile_type=kinds.RuntimeDefault)))
    blocked = exec_sync(env.daemon, confined, "/bin/unshare", "-U", "/bin/true")
    assert blocked.exit_code != 0 and b"Operation not permitted" in blocked.stderr
    unconfined = run(env.daemon, pod.id, pod.config, env.image)
    assert exec_sync(env.daemon, unconfined, "/bin/unshare", "-U", "/bin/true").exit_code == 0


def test_localhost_seccomp_profile(env: Env, pod: Pod, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]}))
    kinds = api_pb2.SecurityProfile.ProfileType
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=security(
        seccomp=api_pb2.SecurityProfile(profile_type=kinds.Localhost,
                                        localhost_ref=str(profile))))
    refused = exec_sync(env.daemon, cid, "/bin/mkdir", "/tmp/d")
    assert refused.exit_code != 0 and b"Operation not permitted" in refused.stderr
    assert exec_sync(env.daemon, cid, "/bin/touch", "/tmp/f").exit_code == 0


@pytest.fixture(scope="module")
def setuid_image(env: Env, registry: Registry, tmp_path_factory: pytest.TempPathFactory
                 ) -> str:
    """Busybox plus /bin/euid: a static setuid-root program printing its effective uid."""
    build = tmp_path_factory.mktemp("euid")
    (build / "euid.c").write_text(EUID_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(build / "euid"), str(build / "euid.c")],
                   check=True, capture_output=True)
    layer = make_layer([File("/bin/euid", (build / "euid").read_bytes(), mode=0o4755)])
    return pull(env.daemon, registry, Image((busybox_layer(), layer)))


@pytest.mark.parametrize(("no_new_privs", "euid"), [(False, "0"), (True, "1000")])
def test_no_new_privs_stops_a_setuid_binary(env: Env, pod: Pod, setuid_image: str,
                                           no_new_privs: bool, euid: str) -> None:
    cid = run(env.daemon, pod.id, pod.config, setuid_image, linux=security(
        run_as_user=api_pb2.Int64Value(value=1000), no_new_privs=no_new_privs))
    assert sh(env.daemon, cid, "/bin/euid") == euid + "\n"
    assert sh(env.daemon, cid, "grep NoNewPrivs /proc/self/status").split()[1] == \
        ("1" if no_new_privs else "0")
