"""crid's RuntimeDefault seccomp profile is no weaker than moby's default.

moby's ``profiles/seccomp/default.json`` (tests/oci/data, release recorded in
the README beside it) is what other runtimes' defaults are measured against.
For a capability set, moby's daemon keeps a rule only when its ``includes``
hold (every listed capability in the bounding set, the machine's arch listed,
the kernel at least ``minKernel``) and its ``excludes`` don't (any listed
capability present, or the arch listed). We resolve the profile the same way
for x86_64 (Go's ``amd64``) on this kernel, then ask both profiles about every
syscall either names, called with argument values on both sides of every
condition either profile has on it. Whatever crid allows, moby must allow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from crid.oci.runtime_spec import Seccomp
from crid.oci.spec import seccomp_default
from crid.oci.spec.security import ALL_CAPABILITIES, DEFAULT_CAPABILITIES

from tests.oci.spec.seccomp_eval import action, allowed

MOBY_FILE = Path(__file__).resolve().parent.parent / "data" / "moby-seccomp-default.json"
MOBY: dict[str, Any] = json.loads(MOBY_FILE.read_text())
GOARCH = "amd64"
KERNEL = (6, 18)

# Docker's default capability set (moby oci/caps/defaults.go), which is also
# containerd's and the CRI's default.
DOCKER_DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

CAPABILITY_SETS = {
    "default": DOCKER_DEFAULT_CAPABILITIES,
    "default+SYS_ADMIN": (*DOCKER_DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"),
    "default+SYS_PTRACE": (*DOCKER_DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"),
    "all": ALL_CAPABILITIES,
    "none": (),
    **{f"default+{cap.removeprefix('CAP_')}": (*DOCKER_DEFAULT_CAPABILITIES, cap)
       for cap in ALL_CAPABILITIES if cap not in DOCKER_DEFAULT_CAPABILITIES},
}


def _kernel(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def moby_profile(caps: tuple[str, ...] | list[str], goarch: str = GOARCH,
                 kernel: tuple[int, ...] = KERNEL) -> dict[str, Any]:
    """moby's profile as its daemon hands it to runc for these caps and arch
    (the filtering of moby's ``seccomp.setupSeccomp``)."""
    rules = []
    for rule in MOBY["syscalls"]:
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if goarch in (exc.get("arches") or []):
            continue
        if any(c in caps for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and kernel >= _kernel(exc["minKernel"]):
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if not all(c in caps for c in inc.get("caps") or []):
            continue
        if inc.get("minKernel") and kernel < _kernel(inc["minKernel"]):
            continue
        rules.append({k: v for k, v in rule.items()
                      if k in ("names", "action", "args", "errnoRet")})
    arches: list[str] = []
    for entry in MOBY["archMap"]:
        if entry["architecture"] == "SCMP_ARCH_X86_64":
            arches = [entry["architecture"], *(entry["subArchitectures"] or [])]
    return {"defaultAction": MOBY["defaultAction"],
            "defaultErrnoRet": MOBY.get("defaultErrnoRet"),
            "architectures": arches, "syscalls": rules}


def _names(profile: Mapping[str, Any]) -> set[str]:
    return {n for rule in profile["syscalls"] for n in rule["names"]}


def _probes(name: str, *profiles: Mapping[str, Any]) -> list[tuple[int, ...]]:
    """Argument tuples that land on every side of every condition on ``name``."""
    probes: set[tuple[int, ...]] = {()}
    for profile in profiles:
        for rule in profile["syscalls"]:
            if name not in rule["names"]:
                continue
            for cond in rule.get("args") or []:
                value, two = int(cond["value"]), int(cond.get("valueTwo") or 0)
                values = {value, value - 1, value + 1, two, 0, 0xFFFFFFFF}
                if cond["op"] == "SCMP_CMP_MASKED_EQ":
                    values |= {value | two, *(1 << bit for bit in range(64) if value >> bit & 1)}
                for v in values:
                    if 0 <= v < 1 << 64:
                        args = [0] * 6
                        args[int(cond["index"])] = v
                        probes.add(tuple(args))
    return sorted(probes)


def weaker_than_moby(crid: Mapping[str, Any], moby: Mapping[str, Any]) -> list[str]:
    """Every (syscall, arguments) crid allows and moby refuses."""
    holes = []
    for name in sorted(_names(crid) | _names(moby)):
        for args in _probes(name, crid, moby):
            if allowed(crid, name, args) and not allowed(moby, name, args):
                holes.append(f"{name}{args or ''}")
    return holes


def test_moby_data_is_the_profile_we_think() -> None:
    """The resolver reads moby's file as moby does, so the comparison means
    something: io_uring is refused (moby 25.0 on), ptrace allowed on kernels
    >= 4.8, kcmp only with CAP_SYS_PTRACE, AF_VSOCK sockets refused."""
    moby = moby_profile(DOCKER_DEFAULT_CAPABILITIES)
    assert moby["defaultAction"] == "SCMP_ACT_ERRNO"
    assert moby["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert not allowed(moby, "io_uring_setup")
    assert allowed(moby, "ptrace")
    assert not allowed(moby_profile(DOCKER_DEFAULT_CAPABILITIES, kernel=(4, 4)), "ptrace")
    assert not allowed(moby, "kcmp")
    assert allowed(moby_profile([*DOCKER_DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"]), "kcmp")
    assert allowed(moby, "socket", (2,)) and not allowed(moby, "socket", (40,))
    assert allowed(moby, "arch_prctl") and not allowed(moby, "breakpoint")
    assert not allowed(moby, "clone", (0x10000000,))
    assert action(moby, "clone3") == ("SCMP_ACT_ERRNO", 38)
    assert allowed(moby_profile([*DOCKER_DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]), "clone3")


def test_the_comparison_catches_a_hole() -> None:
    """Not vacuous: a profile that allows one call more than moby is caught."""
    crid = seccomp_default.default_profile(DOCKER_DEFAULT_CAPABILITIES, "x86_64")
    widened: Seccomp = {**crid, "syscalls": [*crid["syscalls"],
                                    {"names": ["keyctl"], "action": "SCMP_ACT_ALLOW"}]}
    moby = moby_profile(DOCKER_DEFAULT_CAPABILITIES)
    assert "keyctl" in weaker_than_moby(widened, moby)


@pytest.mark.parametrize("caps", CAPABILITY_SETS.values(), ids=CAPABILITY_SETS.keys())
def test_runtime_default_allows_nothing_moby_refuses(caps: tuple[str, ...]) -> None:
    crid = seccomp_default.default_profile(caps, "x86_64")
    moby = moby_profile(caps)
    assert crid["defaultAction"] == moby["defaultAction"] == "SCMP_ACT_ERRNO"
    assert set(crid["architectures"]) <= set(moby["architectures"])
    # Enough is allowed that the comparison below compares something.
    assert sum(allowed(crid, n) for n in _names(crid)) > 300
    holes = weaker_than_moby(crid, moby)
    assert not holes, f"crid's RuntimeDefault allows what moby's refuses: {holes}"


def test_default_set_is_crids() -> None:
    """The CRI default set crid gives containers is Docker's."""
    assert set(DEFAULT_CAPABILITIES) == set(DOCKER_DEFAULT_CAPABILITIES)
