"""crid's pods and containers as NRI sees them (``nri_pb2.PodSandbox``/``Container``).

A container being created is described from the runtime-spec crid is about
to hand the runtime (args, env, mounts, hooks, rlimits, resources, cgroups
path, OOM score), so plugins adjust what will really run. Later events and
Synchronize describe it from its record: identity, labels, annotations,
state and exit; the spec is not re-read for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from cri_api.v1 import api_pb2

from crid.api import nri_pb2
from crid.containers.records import CREATED, EXITED, RUNNING
from crid.containers.records import Container as ContainerRecord
from crid.oci.runtime_spec import CPU, HookName, Memory, Resources, Spec
from crid.sandbox.records import Sandbox

_STATES = {CREATED: nri_pb2.CONTAINER_CREATED, RUNNING: nri_pb2.CONTAINER_RUNNING,
           EXITED: nri_pb2.CONTAINER_STOPPED}
_HOOKS: dict[HookName, str] = {"prestart": "prestart", "createRuntime": "create_runtime",
          "createContainer": "create_container", "startContainer": "start_container",
          "poststart": "poststart", "poststop": "poststop"}


def pod(sandbox: Sandbox) -> nri_pb2.PodSandbox:
    message = nri_pb2.PodSandbox(
        id=sandbox.id, name=sandbox.name, uid=sandbox.uid, namespace=sandbox.namespace,
        labels=sandbox.labels, annotations=sandbox.annotations,
        runtime_handler=sandbox.runtime_handler, ips=list(sandbox.ips),
        pid=sandbox.infra.pid if sandbox.infra else 0)
    message.linux.cgroup_parent = sandbox.cgroup_parent
    for kind, path in sorted(sandbox.namespaces.items()):
        message.linux.namespaces.add(type="network" if kind == "net" else kind, path=path)
    return message


def container(record: ContainerRecord) -> nri_pb2.Container:
    config = record.config
    return nri_pb2.Container(
        id=record.id, pod_sandbox_id=record.pod_id, name=record.name,
        state=_STATES.get(record.state, nri_pb2.CONTAINER_UNKNOWN),
        labels=record.labels, annotations=record.annotations,
        created_at=record.created_ns, started_at=record.started_ns,
        finished_at=record.finished_ns, exit_code=record.exit_code,
        status_reason=record.reason, status_message=record.message, pid=record.pid,
        args=[*config.command, *config.args])


def creating(container_id: str, pod_id: str, name: str, labels: Mapping[str, str],
             annotations: Mapping[str, str], spec: Spec) -> nri_pb2.Container:
    """The container crid is about to create, from its runtime-spec."""
    process, linux = spec.get("process", {}), spec.get("linux", {})
    message = nri_pb2.Container(
        id=container_id, pod_sandbox_id=pod_id, name=name, state=nri_pb2.CONTAINER_UNKNOWN,
        labels=dict(labels), annotations=dict(annotations),
        args=list(process.get("args", [])), env=list(process.get("env", [])))
    for mount in spec.get("mounts", []):
        message.mounts.add(destination=mount.get("destination", ""), type=mount.get("type", ""),
                           source=mount.get("source", ""), options=mount.get("options", []))
    for oci_kind, kind in _HOOKS.items():
        for hook in spec.get("hooks", {}).get(oci_kind, []):
            added = getattr(message.hooks, kind).add(
                path=hook.get("path", ""), args=hook.get("args", []), env=hook.get("env", []))
            if "timeout" in hook:
                added.timeout.value = hook["timeout"]
    for rlimit in process.get("rlimits", []):
        message.rlimits.add(type=rlimit["type"], hard=rlimit["hard"], soft=rlimit["soft"])
    user = process.get("user", {})
    message.user.uid, message.user.gid = user.get("uid", 0), user.get("gid", 0)
    message.user.additional_gids.extend(user.get("additionalGids", []))
    target = message.linux
    target.cgroups_path = linux.get("cgroupsPath", "")
    if "oomScoreAdj" in process:
        target.oom_score_adj.value = process["oomScoreAdj"]
    for namespace in linux.get("namespaces", []):
        target.namespaces.add(type=namespace.get("type", ""), path=namespace.get("path", ""))
    for device in linux.get("devices", []):
        target.devices.add(path=device.get("path", ""), type=device.get("type", ""),
                           major=device.get("major", 0), minor=device.get("minor", 0))
    _resources(linux.get("resources", {}), target.resources)
    target.sysctl.update(linux.get("sysctl", {}))
    return message


# (runtime-spec key, NRI field) of the resources a created container is described with
_MEMORY: tuple[tuple[Literal["limit", "reservation", "swap"], str], ...] = (
    ("limit", "limit"), ("reservation", "reservation"), ("swap", "swap"))
_CPU: tuple[tuple[Literal["shares", "quota", "period"], str], ...] = (
    ("shares", "shares"), ("quota", "quota"), ("period", "period"))


def _resources(source: Resources, target: nri_pb2.LinuxResources) -> None:
    memory: Memory = source.get("memory", {})
    cpu: CPU = source.get("cpu", {})
    for key, field in _MEMORY:
        if key in memory:
            getattr(target.memory, field).value = memory[key]
    for cpu_key, field in _CPU:
        if cpu_key in cpu:
            getattr(target.cpu, field).value = cpu[cpu_key]
    target.cpu.cpus, target.cpu.mems = cpu.get("cpus", ""), cpu.get("mems", "")
    if "limit" in source.get("pids", {}):
        target.pids.limit = source["pids"]["limit"]
    for limit in source.get("hugepageLimits", []):
        target.hugepage_limits.add(page_size=limit["pageSize"], limit=limit["limit"])
    target.unified.update(source.get("unified", {}))


# CRI LinuxContainerResources field <-> NRI LinuxResources (group, optional field).
_CRI_NRI = (("memory_limit_in_bytes", "memory", "limit"),
            ("memory_swap_limit_in_bytes", "memory", "swap"),
            ("cpu_shares", "cpu", "shares"), ("cpu_quota", "cpu", "quota"),
            ("cpu_period", "cpu", "period"))


def nri_resources(resources: api_pb2.LinuxContainerResources) -> nri_pb2.LinuxResources:
    """CRI's ``LinuxContainerResources`` as NRI's ``LinuxResources``."""
    target = nri_pb2.LinuxResources(unified=dict(resources.unified))
    for cri, group, field in _CRI_NRI:
        if value := getattr(resources, cri):
            getattr(getattr(target, group), field).value = value
    target.cpu.cpus, target.cpu.mems = resources.cpuset_cpus, resources.cpuset_mems
    for limit in resources.hugepage_limits:
        target.hugepage_limits.add(page_size=limit.page_size, limit=limit.limit)
    return target


def cri_resources(resources: nri_pb2.LinuxResources) -> dict[str, Any]:
    """An NRI resource update as the fields of CRI's ``LinuxContainerResources``."""
    fields: dict[str, Any] = {}
    for cri, group, field in _CRI_NRI:
        if getattr(resources, group).HasField(field):
            fields[cri] = getattr(getattr(resources, group), field).value
    if resources.cpu.cpus:
        fields["cpuset_cpus"] = resources.cpu.cpus
    if resources.cpu.mems:
        fields["cpuset_mems"] = resources.cpu.mems
    if resources.unified:
        fields["unified"] = dict(resources.unified)
    return fields
