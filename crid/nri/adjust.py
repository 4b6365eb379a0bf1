"""NRI container adjustments: merged across plugins by ownership, applied to the OCI spec.

Plugins answer CreateContainer in index order; each adjustment is applied to
the runtime-spec dict crid is about to hand the runtime. Every field a
plugin touches is claimed for it: an annotation, env var or sysctl by key, a
mount by destination, an rlimit by type, a device by path, each resource
value and each single-valued field (args, cgroups path, OOM score) as a
whole. A second plugin touching a claimed field is an error naming both,
and the create fails (NRI's rule: no silent last-writer-wins). OCI hooks
only accumulate. A name prefixed with ``-`` removes the entry (NRI's
marker), and claims it the same way.

What crid cannot honour (seccomp policy, namespaces, I/O priority,
scheduler, RDT, memory policy, network devices) fails the create with
INVALID_ARGUMENT rather than being dropped. CDI devices go through the
``CdiInjector`` seam given by the caller (crid's CDI support); without one
they fail the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from crid.api import nri_pb2
from crid.errors import InvalidArgument
from crid.oci.runtime_spec import (
    Device,
    Hook,
    HookName,
    Linux,
    Process,
    Resources,
    Spec,
)

CdiInjector = Callable[[list[str], Spec], None]

# (NRI Hooks field, runtime-spec hooks key)
_HOOK_KINDS: tuple[tuple[str, HookName], ...] = (
    ("prestart", "prestart"), ("create_runtime", "createRuntime"),
    ("create_container", "createContainer"), ("start_container", "startContainer"),
    ("poststart", "poststart"), ("poststop", "poststop"))
# (NRI field, runtime-spec key), per resource group
_MEMORY: tuple[tuple[str, Literal["limit", "reservation", "swap", "swappiness"]], ...] = (
    ("limit", "limit"), ("reservation", "reservation"), ("swap", "swap"),
    ("swappiness", "swappiness"))
_CPU: tuple[tuple[str, Literal["shares", "quota", "period", "realtimeRuntime",
                               "realtimePeriod"]], ...] = (
    ("shares", "shares"), ("quota", "quota"), ("period", "period"),
    ("realtime_runtime", "realtimeRuntime"), ("realtime_period", "realtimePeriod"))
_UNSUPPORTED = ("seccomp_policy", "namespaces", "io_priority", "scheduler", "rdt",
                "memory_policy", "net_devices")


def _removal(name: str) -> tuple[str, bool]:
    return (name[1:], True) if name.startswith("-") else (name, False)


class Adjuster:
    """Applies plugins' adjustments to ``spec`` in order, claiming what each touches."""

    def __init__(self, spec: Spec, cdi: CdiInjector | None = None) -> None:
        self.spec = spec
        self.owners: dict[str, str] = {}
        self._cdi = cdi

    def claim(self, field: str, plugin: str) -> None:
        owner = self.owners.setdefault(field, plugin)
        if owner != plugin:
            raise InvalidArgument(
                f"NRI plugins {owner} and {plugin} both adjust {field} of the container")

    def apply(self, plugin: str, adjust: nri_pb2.ContainerAdjustment) -> None:
        process = self.spec.setdefault("process", {})
        linux = self.spec.setdefault("linux", {})
        annotations = self.spec.setdefault("annotations", {})
        for key, value in adjust.annotations.items():
            name, remove = _removal(key)
            self.claim(f"annotation {name}", plugin)
            if remove:
                annotations.pop(name, None)
            else:
                annotations[name] = value
        for mount in adjust.mounts:
            self._mount(plugin, mount)
        for kv in adjust.env:
            self._env(plugin, process, kv.key, kv.value)
        if adjust.HasField("hooks"):
            self._hooks(adjust.hooks)
        for rlimit in adjust.rlimits:
            self.claim(f"rlimit {rlimit.type}", plugin)
            limits = [r for r in process.get("rlimits", []) if r.get("type") != rlimit.type]
            limits.append({"type": rlimit.type, "hard": rlimit.hard, "soft": rlimit.soft})
            process["rlimits"] = limits
        if adjust.CDI_devices:
            if self._cdi is None:
                raise InvalidArgument(
                    f"NRI plugin {plugin} injects CDI devices, but this crid has no CDI "
                    "support")
            for device in adjust.CDI_devices:
                self.claim(f"CDI device {device.name}", plugin)
            self._cdi([d.name for d in adjust.CDI_devices], self.spec)
        if adjust.args:
            self.claim("args", plugin)
            process["args"] = list(adjust.args)
        if adjust.HasField("linux"):
            self._linux(plugin, process, linux, adjust.linux)

    def _mount(self, plugin: str, mount: nri_pb2.Mount) -> None:
        destination, remove = _removal(mount.destination)
        self.claim(f"mount {destination}", plugin)
        mounts = [m for m in self.spec.get("mounts", []) if m.get("destination") != destination]
        if not remove:
            if not destination.startswith("/"):
                raise InvalidArgument(f"NRI plugin {plugin}: mount destination "
                                      f"{destination!r} is not absolute")
            mounts.append({"destination": destination, "type": mount.type or "bind",
                           "source": mount.source, "options": list(mount.options)})
        self.spec["mounts"] = mounts

    def _env(self, plugin: str, process: Process, key: str, value: str) -> None:
        name, remove = _removal(key)
        if not name or "=" in name:
            raise InvalidArgument(f"NRI plugin {plugin}: invalid env name {key!r}")
        self.claim(f"env {name}", plugin)
        env = [e for e in process.get("env", []) if e.split("=", 1)[0] != name]
        if not remove:
            env.append(f"{name}={value}")
        process["env"] = env

    def _hooks(self, hooks: nri_pb2.Hooks) -> None:
        target = self.spec.setdefault("hooks", {})
        for kind, oci_kind in _HOOK_KINDS:
            for hook in getattr(hooks, kind):
                entry: Hook = {"path": hook.path}
                if hook.args:
                    entry["args"] = list(hook.args)
                if hook.env:
                    entry["env"] = list(hook.env)
                if hook.HasField("timeout"):
                    entry["timeout"] = hook.timeout.value
                target.setdefault(oci_kind, []).append(entry)

    def _linux(self, plugin: str, process: Process, linux: Linux,
               adjust: nri_pb2.LinuxContainerAdjustment) -> None:
        for field in _UNSUPPORTED:
            present = (len(getattr(adjust, field)) if field in ("namespaces", "net_devices")
                       else adjust.HasField(field))
            if present:
                raise InvalidArgument(
                    f"NRI plugin {plugin} adjusts linux.{field}, which crid does not support")
        for device in adjust.devices:
            self._device(plugin, linux, device)
        if adjust.HasField("resources"):
            self._resources(plugin, linux.setdefault("resources", {}), adjust.resources)
        if adjust.cgroups_path:
            self.claim("cgroups path", plugin)
            linux["cgroupsPath"] = adjust.cgroups_path
        if adjust.HasField("oom_score_adj"):
            self.claim("OOM score", plugin)
            process["oomScoreAdj"] = adjust.oom_score_adj.value
        for key, value in adjust.sysctl.items():
            name, remove = _removal(key)
            self.claim(f"sysctl {name}", plugin)
            sysctls = linux.setdefault("sysctl", {})
            if remove:
                sysctls.pop(name, None)
            else:
                sysctls[name] = value

    def _device(self, plugin: str, linux: Linux, device: nri_pb2.LinuxDevice) -> None:
        path, remove = _removal(device.path)
        self.claim(f"device {path}", plugin)
        devices = [d for d in linux.get("devices", []) if d.get("path") != path]
        if not remove:
            entry: Device = {"path": path, "type": device.type,
                             "major": device.major, "minor": device.minor}
            if device.HasField("file_mode"):
                entry["fileMode"] = device.file_mode.value
            if device.HasField("uid"):
                entry["uid"] = device.uid.value
            if device.HasField("gid"):
                entry["gid"] = device.gid.value
            devices.append(entry)
            rules = linux.setdefault("resources", {}).setdefault("devices", [])
            rules.append({"allow": True, "type": device.type, "major": device.major,
                          "minor": device.minor, "access": "rwm"})
        linux["devices"] = devices

    def _resources(self, plugin: str, target: Resources,
                   resources: nri_pb2.LinuxResources) -> None:
        def claim(group: str, key: str) -> None:
            self.claim(f"resource {group}.{key}", plugin)

        memory, cpu = resources.memory, resources.cpu
        for field, memory_key in _MEMORY:
            if resources.HasField("memory") and memory.HasField(field):
                claim("memory", memory_key)
                target.setdefault("memory", {})[memory_key] = getattr(memory, field).value
        for field, cpu_key in _CPU:
            if resources.HasField("cpu") and cpu.HasField(field):
                claim("cpu", cpu_key)
                target.setdefault("cpu", {})[cpu_key] = getattr(cpu, field).value
        if cpu.cpus:
            claim("cpu", "cpus")
            target.setdefault("cpu", {})["cpus"] = cpu.cpus
        if cpu.mems:
            claim("cpu", "mems")
            target.setdefault("cpu", {})["mems"] = cpu.mems
        if resources.HasField("pids"):
            claim("pids", "limit")
            target["pids"] = {"limit": resources.pids.limit}
        if resources.hugepage_limits:
            self.claim("resource hugepageLimits", plugin)
            target["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit}
                                        for h in resources.hugepage_limits]
        for key, value in resources.unified.items():
            self.claim(f"resource unified {key}", plugin)
            target.setdefault("unified", {})[key] = value
