"""What the caller knows about the container's pod, handed to the builder.

The sandbox code pins the pod's namespaces and writes its files; the spec
builder only needs their paths. ``None`` means "the pod has none": for a
namespace that means a new one is created for the container unless the
container's namespace option says NODE, in which case the host's is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from crid.oci.runtime_spec import IDMapping


@dataclass(frozen=True)
class PodFacts:
    sandbox_id: str
    # Pinned namespaces (bind mounts of /proc/<pid>/ns/*), joined for POD mode.
    net_ns_path: str | None = None
    ipc_ns_path: str | None = None
    uts_ns_path: str | None = None
    # The pod's pinned user namespace (``hostUsers: false``) and its one
    # mapping, the same for uids and gids: runtime-spec ``{containerID, hostID,
    # size}``. Containers join it; their bind mounts are idmapped with it.
    user_ns_path: str | None = None
    id_mapping: tuple[tuple[int, int, int], ...] = ()
    # Host paths already idmapped by the daemon (image volumes): bound as they are.
    premapped: frozenset[str] = frozenset()
    # The pod's shared PID namespace (e.g. /proc/<infra pid>/ns/pid).
    pid_ns_path: str | None = None
    # For NamespaceMode TARGET: the target container's PID namespace.
    target_pid_ns_path: str | None = None
    # Files the pod shares with its containers, bind-mounted over the defaults.
    resolv_conf_path: str | None = None
    hosts_path: str | None = None
    hostname_path: str | None = None
    shm_path: str | None = None
    # cgroupfs parent of the pod; containers go to <cgroup_parent>/<id>.
    # Empty: the sandbox config's cgroup_parent, else /crid.
    cgroup_parent: str = ""

    def oci_mappings(self) -> list[IDMapping]:
        return [{"containerID": c, "hostID": h, "size": n} for c, h, n in self.id_mapping]
