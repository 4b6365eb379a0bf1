"""Capabilities, masked/read-only paths, seccomp selection, AppArmor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Seccomp
from crid.oci.spec import security

from crid.errors import InvalidArgument
from tests.oci.spec.fakes import security_context
from tests.oci.spec.seccomp_eval import allowed

Kind = api_pb2.SecurityProfile.ProfileType


def _caps(add: list[str] = [], drop: list[str] = [],  # noqa: B006
          privileged: bool = False) -> list[str]:
    capability = api_pb2.Capability(add_capabilities=add, drop_capabilities=drop)
    return security.capability_set(capability, privileged)


def test_default_capabilities() -> None:
    assert _caps() == list(security.DEFAULT_CAPABILITIES)
    assert len(security.DEFAULT_CAPABILITIES) == 14
    assert len(security.ALL_CAPABILITIES) == 41


@pytest.mark.parametrize("name", ["SYS_ADMIN", "sys_admin", "CAP_SYS_ADMIN", "cap_Sys_Admin"])
def test_add_any_spelling(name: str) -> None:
    assert _caps(add=[name])[-1] == "CAP_SYS_ADMIN"


def test_drop_any_spelling() -> None:
    got = _caps(drop=["chown", "CAP_KILL", "Net_Raw"])
    assert "CAP_CHOWN" not in got and "CAP_KILL" not in got and "CAP_NET_RAW" not in got
    assert len(got) == 11


def test_add_existing_is_not_duplicated() -> None:
    assert _caps(add=["CHOWN"]) == list(security.DEFAULT_CAPABILITIES)
    assert _caps(add=["NET_ADMIN", "cap_net_admin"]).count("CAP_NET_ADMIN") == 1


@pytest.mark.parametrize(
    ("add", "drop", "expected"),
    [
        (["ALL"], [], list(security.ALL_CAPABILITIES)),
        ([], ["ALL"], []),
        (["NET_ADMIN"], ["ALL"], ["CAP_NET_ADMIN"]),
        (["all"], ["KILL"], [c for c in security.ALL_CAPABILITIES if c != "CAP_KILL"]),
        (["ALL"], ["ALL"], []),
        (["SYS_TIME"], ["SYS_TIME"], list(security.DEFAULT_CAPABILITIES)),
    ],
)
def test_all(add: list[str], drop: list[str], expected: list[str]) -> None:
    assert sorted(_caps(add, drop)) == sorted(expected)


def test_unknown_capability() -> None:
    with pytest.raises(InvalidArgument, match="unknown capability 'CAP_FLY'"):
        _caps(add=["CAP_FLY"])


def test_privileged_ignores_drops() -> None:
    assert _caps(drop=["ALL"], privileged=True) == list(security.ALL_CAPABILITIES)


def test_process_capabilities_object() -> None:
    sc = security_context(capabilities=api_pb2.Capability(
        drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"],
        add_ambient_capabilities=["net_bind_service", "CAP_SYS_NICE"]))
    caps = security.capabilities(sc)
    assert caps["bounding"] == caps["permitted"] == caps["effective"] == [
        "CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"]
    assert caps["inheritable"] == caps["ambient"] == ["CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"]
    plain = security.capabilities(security_context())
    assert plain["inheritable"] == [] and plain["ambient"] == []


def test_masked_and_readonly_paths() -> None:
    assert security.masked_paths(security_context()) == list(security.DEFAULT_MASKED_PATHS)
    assert "/proc/kcore" in security.DEFAULT_MASKED_PATHS
    assert security.readonly_paths(security_context()) == list(security.DEFAULT_READONLY_PATHS)
    assert "/proc/sys" in security.DEFAULT_READONLY_PATHS
    custom = security_context(masked_paths=["/proc/x"], readonly_paths=["/proc/y"])
    assert security.masked_paths(custom) == ["/proc/x"]
    assert security.readonly_paths(custom) == ["/proc/y"]
    privileged = security_context(privileged=True, masked_paths=["/proc/x"])
    assert security.masked_paths(privileged) == []
    assert security.readonly_paths(privileged) == []


def _seccomp(sc: api_pb2.LinuxContainerSecurityContext) -> Seccomp | None:
    return security.seccomp(sc, security.capabilities(sc)["bounding"])


def test_seccomp_unset_is_unconfined() -> None:
    assert _seccomp(security_context()) is None
    assert _seccomp(security_context(seccomp_profile_path="unconfined")) is None
    assert _seccomp(security_context(
        seccomp=api_pb2.SecurityProfile(profile_type=Kind.Unconfined))) is None


@pytest.mark.parametrize("sc", [
    security_context(seccomp=api_pb2.SecurityProfile(profile_type=Kind.RuntimeDefault)),
    security_context(seccomp_profile_path="runtime/default"),
    security_context(seccomp_profile_path="docker/default"),
])
def test_seccomp_runtime_default_blocks_unshare_and_mount(
        sc: api_pb2.LinuxContainerSecurityContext) -> None:
    profile = _seccomp(sc)
    assert profile is not None
    assert not allowed(profile, "unshare")
    assert not allowed(profile, "mount")
    assert allowed(profile, "read")


def test_seccomp_runtime_default_follows_added_capabilities() -> None:
    sc = security_context(seccomp=api_pb2.SecurityProfile(profile_type=Kind.RuntimeDefault),
                          capabilities=api_pb2.Capability(add_capabilities=["SYS_ADMIN"]))
    assert allowed(_seccomp(sc), "unshare")


def test_seccomp_privileged_is_unconfined() -> None:
    sc = security_context(privileged=True,
                          seccomp=api_pb2.SecurityProfile(profile_type=Kind.RuntimeDefault))
    assert _seccomp(sc) is None


def _localhost(path: str) -> api_pb2.LinuxContainerSecurityContext:
    return security_context(seccomp=api_pb2.SecurityProfile(profile_type=Kind.Localhost,
                                                            localhost_ref=path))


def test_seccomp_localhost_loads_file(tmp_path: Path) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    assert _seccomp(_localhost(str(path))) == profile
    deprecated = security_context(seccomp_profile_path=f"localhost/{path}")
    assert _seccomp(deprecated) == profile


def test_seccomp_localhost_docker_format(tmp_path: Path) -> None:
    path = tmp_path / "docker.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [{"name": "read", "action": "SCMP_ACT_ALLOW"}],
    }))
    profile = _seccomp(_localhost(str(path)))
    assert profile == {"defaultAction": "SCMP_ACT_ERRNO",
                       "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                       "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}


def test_seccomp_localhost_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist on this node"):
        _seccomp(_localhost(str(tmp_path / "missing.json")))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgument, match="cannot be loaded"):
        _seccomp(_localhost(str(bad)))
    no_action = tmp_path / "noaction.json"
    no_action.write_text("{}")
    with pytest.raises(InvalidArgument, match="no defaultAction"):
        _seccomp(_localhost(str(no_action)))
    with pytest.raises(InvalidArgument, match="not absolute"):
        _seccomp(_localhost("relative.json"))
    with pytest.raises(InvalidArgument, match="not understood"):
        _seccomp(security_context(seccomp_profile_path="whatever"))


@pytest.mark.parametrize("sc", [
    security_context(),
    security_context(apparmor=api_pb2.SecurityProfile(profile_type=Kind.Unconfined)),
    security_context(apparmor=api_pb2.SecurityProfile(profile_type=Kind.RuntimeDefault)),
    security_context(apparmor_profile="unconfined"),
    security_context(apparmor_profile="runtime/default"),
])
def test_apparmor_accepted(sc: api_pb2.LinuxContainerSecurityContext) -> None:
    security.check_apparmor(sc)


@pytest.mark.parametrize("sc", [
    security_context(apparmor=api_pb2.SecurityProfile(profile_type=Kind.Localhost,
                                                      localhost_ref="k8s-deny-write")),
    security_context(apparmor_profile="localhost/k8s-deny-write"),
])
def test_apparmor_profiles_refused(sc: api_pb2.LinuxContainerSecurityContext) -> None:
    with pytest.raises(InvalidArgument, match="AppArmor is not enabled on this node"):
        security.check_apparmor(sc)


def test_from_mask() -> None:
    assert security.from_mask(0) == []
    assert security.from_mask(0b101) == ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]
    assert security.from_mask((1 << 64) - 1) == list(security.ALL_CAPABILITIES)


def test_all_means_what_the_runtime_holds() -> None:
    held = [c for c in security.ALL_CAPABILITIES if c != "CAP_SYS_RESOURCE"]
    assert security.capability_set(api_pb2.Capability(), True, held) == held
    add_all = api_pb2.Capability(add_capabilities=["ALL"])
    assert security.capability_set(add_all, False, held) == held
