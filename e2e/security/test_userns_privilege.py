"""Root in a pod's user namespace holds no host privilege.

A container of a ``hostUsers: false`` pod is given the capabilities that
would own the host if they were the host's (SYS_ADMIN, SYS_MODULE, MKNOD;
no seccomp profile) and a static probe (``userns_probe.c``, built with gcc
at test time) tries: loading a kernel module (init_module), making a block
device node, and dropping the host's page cache through
``/proc/sys/vm/drop_caches`` after remounting /proc/sys read-write. In the
user namespace each fails: the capabilities are the namespace's, and the
kernel checks these against the host's. The same probe in a host-namespace
container with the same capabilities shows the test can fail: there
init_module passes its privilege check (ENOEXEC for the empty image, not
EPERM) and the node is made (it is never opened). The page cache is never
dropped on purpose: that part runs only in the user namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, env, make_pod  # noqa: F401  (the module's daemon)
from e2e.containers.helpers import exec_sync, run
from e2e.sandbox.pods import pod_config, stop_remove
from e2e.security.cri_spec import compile_static, fields
from e2e.userns.conftest import UsernsPodMaker, handler, make_userns_pod  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
HERE = Path(__file__).resolve().parent
CAPS = ["SYS_ADMIN", "SYS_MODULE", "MKNOD"]
# EPERM: no CAP_SYS_MODULE over the host. A kernel built without module
# support (this machine's 6.18: no /proc/modules) says ENOSYS to everyone,
# so there the module check only proves it is never "ok".
_NO_MODULE = ("EPERM",) if Path("/proc/modules").exists() else ("EPERM", "ENOSYS")


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("userns-probe")
    out.chmod(0o755)
    compile_static(HERE / "userns_probe.c", out / "userns_probe")
    return out


def _container(env: Env, pod_id: str, config: api_pb2.PodSandboxConfig,  # noqa: F811
               probe_dir: Path) -> str:
    sc = api_pb2.LinuxContainerSecurityContext(
        capabilities=api_pb2.Capability(add_capabilities=CAPS),
        seccomp=api_pb2.SecurityProfile(
            profile_type=api_pb2.SecurityProfile.ProfileType.Unconfined))
    return run(env.daemon, pod_id, config, env.image,
               linux=api_pb2.LinuxContainerConfig(security_context=sc),
               mounts=[api_pb2.Mount(container_path="/probe", host_path=str(probe_dir),
                                     readonly=True)])


def _probe(env: Env, cid: str, *args: str) -> dict[str, str]:  # noqa: F811
    out = exec_sync(env.daemon, cid, "/probe/userns_probe", *args)
    assert out.exit_code == 0, out.stderr
    return fields(out.stdout.decode())


def test_root_in_a_user_namespace_holds_no_host_privilege(
        env: Env, make_userns_pod: UsernsPodMaker, probe_dir: Path) -> None:  # noqa: F811
    pod = make_userns_pod()
    cid = _container(env, pod.id, pod.config, probe_dir)
    found = _probe(env, cid, "sysctl")
    assert found["init_module"] in _NO_MODULE  # see _NO_MODULE
    assert found["mknod_block"] == "EPERM"
    assert found.get("write_drop_caches") != "ok"
    assert found["open_drop_caches"] != "ok", found


def test_the_same_probe_shows_host_privilege_without_one(
        env: Env, probe_dir: Path) -> None:  # noqa: F811
    config = pod_config()
    pod_id = env.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        cid = _container(env, pod_id, config, probe_dir)
        found = _probe(env, cid)  # never the page cache part
        # passed the CAP_SYS_MODULE check, where the kernel has modules at all
        assert found["init_module"] in ("ENOEXEC", "ENOSYS")
        assert found["mknod_block"] == "ok"
    finally:
        stop_remove(env.daemon, pod_id)
