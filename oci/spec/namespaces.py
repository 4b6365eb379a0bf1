"""Namespace options → ``linux.namespaces``.

network and ipc: POD joins the pod's pinned namespace, NODE uses the host's
(no entry). pid: POD joins the pod's shared PID namespace, CONTAINER makes a
new one, NODE uses the host's, TARGET joins another container's. uts follows
network: host-network pods keep the host's UTS namespace, others join the
pod's. Mount namespaces are always new; so are cgroup namespaces.
A pod that uses the node's network or IPC namespace has none of its own for a
container to join, so its containers use the node's too, whatever they ask
(``for_container``; containerd gets the same by joining the pause process's).
A pod with a user namespace of its own (``userns_options`` POD, made and
pinned by the sandbox code) has every container join it, whatever the
container's own copy of the options says: the pod's are authoritative, as
for a privileged pod. A container asking for one in a pod without one is
refused.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Namespace
from crid.oci.spec.facts import PodFacts

from crid.errors import InvalidArgument

Mode = api_pb2.NamespaceMode


def mode_name(mode: Mode.ValueType) -> str:
    """A request's mode by name; proto3 enums are open, so it may have none."""
    return Mode.Name(mode) if mode in Mode.values() else f"{mode} (unknown)"


def _entry(kind: str, path: str | None) -> Namespace:
    return {"type": kind, "path": path} if path else {"type": kind}


def _shared(kind: str, mode: Mode.ValueType, path: str | None) -> list[Namespace]:
    if mode == Mode.NODE:
        return []
    if mode != Mode.POD:
        raise InvalidArgument(f"{kind} namespace mode {mode_name(mode)} is not supported")
    return [_entry(kind, path)]


def _pid(mode: Mode.ValueType, pod: PodFacts) -> list[Namespace]:
    if mode == Mode.NODE:
        return []
    if mode == Mode.CONTAINER:
        return [{"type": "pid"}]
    if mode == Mode.TARGET:
        if not pod.target_pid_ns_path:
            raise InvalidArgument("pid namespace mode TARGET needs a running target container")
        return [_entry("pid", pod.target_pid_ns_path)]
    # POD: join the pod's shared namespace; without one (no infra process
    # yet), the container founds its own.
    return [_entry("pid", pod.pid_ns_path)]


def for_container(
    options: api_pb2.NamespaceOption, pod_options: api_pb2.NamespaceOption
) -> api_pb2.NamespaceOption:
    """The container's options, with network and ipc NODE where the pod's are."""
    effective = api_pb2.NamespaceOption()
    effective.CopyFrom(options)
    if pod_options.network == Mode.NODE:
        effective.network = Mode.NODE
    if pod_options.ipc == Mode.NODE:
        effective.ipc = Mode.NODE
    return effective


def namespaces(options: api_pb2.NamespaceOption, pod: PodFacts) -> list[Namespace]:
    found: list[Namespace] = []
    if pod.user_ns_path:
        found.append(_entry("user", pod.user_ns_path))  # first: it owns the rest
    elif options.HasField("userns_options") and options.userns_options.mode == Mode.POD:
        raise InvalidArgument("user namespace mode POD: the pod has no user namespace of its "
                              "own (its sandbox was made with mode NODE)")
    found += _pid(options.pid, pod)
    found += _shared("network", options.network, pod.net_ns_path)
    found += _shared("ipc", options.ipc, pod.ipc_ns_path)
    if options.network != Mode.NODE:
        found.append(_entry("uts", pod.uts_ns_path))
    found += [{"type": "mount"}, {"type": "cgroup"}]
    return found


def hostname(options: api_pb2.NamespaceOption, pod: PodFacts, name: str) -> str:
    """The spec's hostname: set only when the container gets a UTS namespace of
    its own (runtimes refuse a hostname without one; a pod's pinned UTS
    namespace already carries it)."""
    if options.network == Mode.NODE or pod.uts_ns_path:
        return ""
    return name
