"""Security context → capabilities, masked/read-only paths, seccomp, AppArmor.

Defaults are containerd's: its capability set, its masked and read-only
``/proc`` and ``/sys`` paths, and a RuntimeDefault seccomp profile
(:mod:`crid.oci.spec.seccomp_default`). A privileged container gets every
capability, no masked or read-only paths and no seccomp filter.

Seccomp: an unset profile means Unconfined (what the CRI says and critest
checks); ``RuntimeDefault`` is our default profile; ``Localhost`` loads a
runtime-spec seccomp JSON file from the node. The deprecated string field
``seccomp_profile_path`` (``runtime/default``, ``docker/default``,
``unconfined``, ``localhost/<path>``) is honoured when the message is unset.

AppArmor is not enabled on the nodes crid targets: an unset, Unconfined or
RuntimeDefault profile means "no profile"; a Localhost profile is refused,
since we could not enforce it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Capabilities, Seccomp
from crid.oci.spec import seccomp_default

from crid.errors import InvalidArgument

ALL_CAPABILITIES = tuple(
    "CAP_" + name
    for name in [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
        "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
        "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
        "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
        "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
        "PERFMON", "BPF", "CHECKPOINT_RESTORE",
    ]
)

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

DEFAULT_MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)

DEFAULT_READONLY_PATHS = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)


def normalize_capability(name: str) -> str:
    """``sys_admin``, ``CAP_SYS_ADMIN``, ``Sys_Admin`` → ``CAP_SYS_ADMIN``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in ALL_CAPABILITIES:
        raise InvalidArgument(f"unknown capability {name!r}")
    return full


def from_mask(mask: int) -> list[str]:
    """Capability names of a ``CapEff``-style bit mask (bit n = capability n)."""
    return [name for bit, name in enumerate(ALL_CAPABILITIES) if mask >> bit & 1]


def capability_set(
    capability: api_pb2.Capability, privileged: bool,
    available: Sequence[str] = ALL_CAPABILITIES,
) -> list[str]:
    """containerd's order: add ALL, drop ALL, then single adds, then single drops.

    "All" (privileged, or add ALL) means all that the runtime itself holds
    (``available``), as containerd does: a runtime cannot grant more, and a
    node's runtime may itself run with a reduced set.
    """
    if privileged:
        return list(available)
    add = [normalize_capability(c) for c in capability.add_capabilities]
    drop = [normalize_capability(c) for c in capability.drop_capabilities]
    caps = list(DEFAULT_CAPABILITIES)
    if "ALL" in add:
        caps = list(available)
    if "ALL" in drop:
        caps = []
    caps += [c for c in add if c != "ALL"]
    return [c for c in dict.fromkeys(caps) if c not in drop]


def capabilities(
    security: api_pb2.LinuxContainerSecurityContext,
    available: Sequence[str] = ALL_CAPABILITIES,
) -> Capabilities:
    """The runtime-spec ``process.capabilities`` object."""
    caps = capability_set(security.capabilities, security.privileged, available)
    ambient = [
        c for c in (
            normalize_capability(a) for a in security.capabilities.add_ambient_capabilities
        )
        if c != "ALL"
    ]
    for cap in ambient:
        if cap not in caps:
            caps.append(cap)
    return {
        "bounding": list(caps),
        "effective": list(caps),
        "permitted": list(caps),
        # An ambient capability must also be inheritable; nothing else is, so
        # file capabilities cannot regain what was dropped (CVE-2022-24769).
        "inheritable": list(ambient),
        "ambient": list(ambient),
    }


def masked_paths(security: api_pb2.LinuxContainerSecurityContext) -> list[str]:
    if security.privileged:
        return []
    return list(security.masked_paths) or list(DEFAULT_MASKED_PATHS)


def readonly_paths(security: api_pb2.LinuxContainerSecurityContext) -> list[str]:
    if security.privileged:
        return []
    return list(security.readonly_paths) or list(DEFAULT_READONLY_PATHS)


def _profile_from_path(path: str) -> api_pb2.SecurityProfile | None:
    """The deprecated ``seccomp_profile_path`` string as a SecurityProfile."""
    kinds = api_pb2.SecurityProfile.ProfileType
    if path in ("", "unconfined"):
        return None
    if path in ("runtime/default", "docker/default"):
        return api_pb2.SecurityProfile(profile_type=kinds.RuntimeDefault)
    if path.startswith("localhost/"):
        return api_pb2.SecurityProfile(
            profile_type=kinds.Localhost, localhost_ref=path.removeprefix("localhost")
        )
    raise InvalidArgument(f"seccomp profile path {path!r} is not understood")


def load_seccomp_file(path: str) -> Seccomp:
    """A Localhost profile: runtime-spec ``linux.seccomp`` JSON, or docker's
    format with an ``archMap``, which is reduced to its architectures."""
    if not path.startswith("/"):
        raise InvalidArgument(f"seccomp profile path {path!r} is not absolute")
    try:
        with open(path, "rb") as f:
            profile = json.load(f)
    except FileNotFoundError:
        raise InvalidArgument(f"seccomp profile {path} does not exist on this node") from None
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"seccomp profile {path} cannot be loaded: {e}") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str):
        raise InvalidArgument(f"seccomp profile {path} has no defaultAction")
    arch_map = profile.pop("archMap", None)
    if arch_map and not profile.get("architectures"):
        arches: list[str] = []
        for entry in arch_map:
            arches += [entry.get("architecture", ""), *entry.get("subArchitectures", [])]
        profile["architectures"] = [a for a in arches if a]
    for rule in profile.get("syscalls") or []:
        if "name" in rule and "names" not in rule:
            rule["names"] = [rule.pop("name")]
    # The node's file, passed on as written past the checks above: crid-runtime
    # checks the rest of its shape (crid.oci.config) when it loads the bundle.
    return cast(Seccomp, profile)


def seccomp(
    security: api_pb2.LinuxContainerSecurityContext, bounding: list[str]
) -> Seccomp | None:
    """The ``linux.seccomp`` object, or None for no filter."""
    if security.privileged:
        return None
    profile = (
        security.seccomp
        if security.HasField("seccomp")
        else _profile_from_path(security.seccomp_profile_path)
    )
    kinds = api_pb2.SecurityProfile.ProfileType
    if profile is None or profile.profile_type == kinds.Unconfined:
        return None
    if profile.profile_type == kinds.RuntimeDefault:
        return seccomp_default.default_profile(bounding)
    return load_seccomp_file(profile.localhost_ref)


def check_apparmor(security: api_pb2.LinuxContainerSecurityContext) -> None:
    kinds = api_pb2.SecurityProfile.ProfileType
    if security.HasField("apparmor"):
        if security.apparmor.profile_type == kinds.Localhost:
            raise InvalidArgument(
                f"AppArmor profile {security.apparmor.localhost_ref!r} requested, but "
                "AppArmor is not enabled on this node"
            )
    elif security.apparmor_profile not in ("", "unconfined", "runtime/default"):
        raise InvalidArgument(
            f"AppArmor profile {security.apparmor_profile!r} requested, but AppArmor is "
            "not enabled on this node"
        )
