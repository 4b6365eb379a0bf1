"""Issue 14, hole 6: crid's RuntimeDefault seccomp profile is no weaker than
moby's default (tests/oci/spec/test_seccomp_vs_moby.py compares the two
profiles call by call; this performs the calls for real).

crid's spec builder writes config.json from a CRI request with a
RuntimeDefault seccomp profile; each handler (``crid-runtime``, ``runc``)
enforces it. A small static C probe (``seccomp_probe.c``, built with gcc at
test time) makes io_uring_setup(2), kcmp(2), pidfd_getfd(2),
process_madvise(2) and AF_VSOCK/AF_ALG socket(2) calls and prints their
errno. The same probe runs on the host first: io_uring works there
(``kernel.io_uring_disabled`` is 0), so an EPERM inside is the profile's.
The same container without a profile (Unconfined) and with CAP_SYS_PTRACE
are the controls that show each refusal comes from the profile's rule for
exactly that call.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.bundle import Bundle, Runtime
from e2e.security.cri_spec import PROBE_SOURCE, compile_static, cri_config, fields

KINDS = api_pb2.SecurityProfile.ProfileType
PTRACE_GATED = ("kcmp", "pidfd_getfd", "process_madvise")
ALWAYS_REFUSED = ("io_uring_setup", "socket_vsock", "socket_alg")
CONTROLS = ("socket_unix", "socket_inet")  # allowed: the filter is not deny-all
PROBES = (*ALWAYS_REFUSED, *PTRACE_GATED, *CONTROLS)
EPERM = str(errno.EPERM)



@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_static(PROBE_SOURCE, tmp_path_factory.mktemp("probe") / "seccomp_probe")


def on_host(probe: Path) -> dict[str, str]:
    r = subprocess.run([str(probe), *PROBES], capture_output=True, text=True, timeout=30,
                       check=True)
    return fields(r.stdout)


def in_container(runtime: Runtime, bundle: Bundle, probe: Path,
                 sc: api_pb2.LinuxContainerSecurityContext) -> dict[str, str]:
    target = bundle.rootfs / "bin" / "seccomp_probe"
    if not target.exists():
        shutil.copy2(probe, target)
    cri_config(bundle, ["/bin/seccomp_probe", *PROBES], sc)
    r = runtime.run(bundle)
    assert r.returncode == 0, f"{runtime.name}: {r.stderr}"
    found = fields(r.stdout)
    assert set(found) == set(PROBES), r.stdout
    return found


def runtime_default(*add: str) -> api_pb2.LinuxContainerSecurityContext:
    return api_pb2.LinuxContainerSecurityContext(
        run_as_user=api_pb2.Int64Value(value=0),
        capabilities=api_pb2.Capability(add_capabilities=list(add)),
        seccomp=api_pb2.SecurityProfile(profile_type=KINDS.RuntimeDefault))


def test_calls_work_on_the_host(probe: Path) -> None:
    """The kernel has every call: none of the refusals below is the kernel's."""
    host = on_host(probe)
    for name in ("io_uring_setup", *PTRACE_GATED, *CONTROLS):
        assert host[name] == "0", (name, host)
    for name in ("socket_vsock", "socket_alg"):  # EAFNOSUPPORT without the module: fine
        assert host[name] != EPERM, (name, host)


def test_runtime_default_refuses_what_moby_refuses(runtime: Runtime, bundle: Bundle,
                                                    probe: Path) -> None:
    host = on_host(probe)
    assert host["io_uring_setup"] == "0", "io_uring must work on the host for this test"
    inside = in_container(runtime, bundle, probe, runtime_default())
    for name in (*ALWAYS_REFUSED, *PTRACE_GATED):
        assert inside[name] == EPERM, (runtime.name, name, inside)
    for name in CONTROLS:
        assert inside[name] == "0", (runtime.name, name, inside)


def test_unconfined_container_can_make_the_calls(runtime: Runtime, bundle: Bundle,
                                                 probe: Path) -> None:
    """Control: the same container without a profile gets io_uring, so the
    EPERM above is the profile's, not the namespaces'."""
    inside = in_container(runtime, bundle, probe, api_pb2.LinuxContainerSecurityContext(
        run_as_user=api_pb2.Int64Value(value=0),
        seccomp=api_pb2.SecurityProfile(profile_type=KINDS.Unconfined)))
    assert inside["io_uring_setup"] == "0", (runtime.name, inside)
    assert inside["kcmp"] == "0", (runtime.name, inside)
    assert inside["socket_vsock"] != EPERM, (runtime.name, inside)


def test_sys_ptrace_opens_ptrace_calls_but_never_io_uring(runtime: Runtime, bundle: Bundle,
                                                         probe: Path) -> None:
    """moby's capability-conditional rule: kcmp, pidfd_getfd and
    process_madvise come with CAP_SYS_PTRACE; io_uring never does."""
    inside = in_container(runtime, bundle, probe, runtime_default("SYS_PTRACE"))
    for name in PTRACE_GATED:
        assert inside[name] == "0", (runtime.name, name, inside)
    for name in ALWAYS_REFUSED:
        assert inside[name] == EPERM, (runtime.name, name, inside)
