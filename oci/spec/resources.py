"""``LinuxContainerResources`` → ``linux.resources`` and the cgroup path.

Values of 0 mean "not set" in the CRI and are left out. The swap limit is
the runtime-spec's memory+swap total (cgroup v1 semantics; runtimes convert
for v2). ``oom_score_adj``
goes to the process; it is raised to the runtime's own value when lower,
because an unprivileged-in-this-respect process cannot lower it and the
container would fail to start (containerd's ``restrict_oom_score_adj``).
``unified`` (cgroup v2 files) is refused on a v1 node rather than ignored.
Hugepage limits are dropped on a node without the hugetlb controller.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import CPU, Memory, Resources
from crid.oci.spec.host import Host

from crid.errors import InvalidArgument

DEFAULT_CGROUP_PARENT = "/crid"


def cgroups_path(parent: str, container_id: str) -> str:
    """cgroupfs-style ``<parent>/<id>``, absolute."""
    base = "/" + (parent or DEFAULT_CGROUP_PARENT).strip("/")
    return base.rstrip("/") + "/" + container_id


def linux_resources(res: api_pb2.LinuxContainerResources, host: Host) -> Resources:
    # 0 or "" means unset.
    cpu: CPU = {}
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    memory: Memory = {}
    if res.memory_limit_in_bytes:
        memory["limit"] = res.memory_limit_in_bytes
    # Swap, as containerd does: only where the kernel accounts it; with a
    # memory limit and no swap limit, none (swap limit = memory limit).
    swap = res.memory_swap_limit_in_bytes or res.memory_limit_in_bytes
    if swap and host.swap_controller():
        memory["swap"] = swap
    out: Resources = {}
    if cpu:
        out["cpu"] = cpu
    if memory:
        out["memory"] = memory
    # kubelet sends a limit (often 0) for every page size the node has; with
    # no hugetlb controller the runtime cannot set them and fails the
    # container, so they are left out, as cri-o does.
    if res.hugepage_limits and host.hugetlb_controller():
        out["hugepageLimits"] = [
            {"pageSize": h.page_size, "limit": h.limit} for h in res.hugepage_limits
        ]
    if res.unified:
        if not host.cgroup2():
            raise InvalidArgument(
                "unified (cgroup v2) resources requested, but this node uses cgroup v1: "
                + ", ".join(sorted(res.unified))
            )
        out["unified"] = dict(res.unified)
    return out


def oom_score_adj(res: api_pb2.LinuxContainerResources, host: Host) -> int:
    return max(res.oom_score_adj, host.oom_score_adj())
