"""A pod's user namespace (``hostUsers: false``): the request's
``userns_options`` checked and turned into one id mapping.

Mode NODE (or no options) is the host's user namespace, as before. Mode POD
gives the pod a namespace of its own that every container joins: kubelet
sends exactly one uid and one gid mapping, both the same range, starting at
container id 0. CONTAINER and TARGET have no meaning for a pod's user
namespace in the CRI (cri-o and containerd refuse them too).

The range is checked, not trusted: the pod's root must never be the host's
root (host id 0), and the range must fit in 32 bits. kubelet allocates
multiples of 65536 above the host's first 65536 ids; critest asks for
``0 1000 100000``, so a range is not refused for its alignment, only for
being shorter than the 65536 ids a container image may use.
"""

from __future__ import annotations

import dataclasses

from cri_api.v1 import api_pb2

from crid.errors import InvalidArgument
from crid.oci.spec.namespaces import mode_name

Mode = api_pb2.NamespaceMode
MIN_LENGTH = 65536
MAX_ID = 2**32 - 1  # (uid_t)-1 is "no id"


@dataclasses.dataclass(frozen=True)
class IdMapping:
    """Container ids ``container_id``.. are host ids ``host_id``.. (``length`` of them)."""

    container_id: int
    host_id: int
    length: int

    def to_oci(self) -> list[dict[str, int]]:
        return [{"containerID": self.container_id, "hostID": self.host_id,
                 "size": self.length}]

    def proc_line(self) -> str:
        """The line of /proc/<pid>/uid_map (and gid_map) for this mapping."""
        return f"{self.container_id} {self.host_id} {self.length}\n"


def _one(kind: str, found: list[api_pb2.IDMapping]) -> IdMapping:
    if len(found) != 1:
        raise InvalidArgument(f"user namespace mode POD needs exactly one {kind} mapping, "
                              f"got {len(found)}")
    m = found[0]
    if m.container_id != 0:
        raise InvalidArgument(f"user namespace {kind} mapping must start at container id 0 "
                              f"(root inside), got {m.container_id}")
    if m.host_id == 0:
        raise InvalidArgument(f"user namespace {kind} mapping must not map the host's root "
                              "(host id 0)")
    if m.length < MIN_LENGTH:
        raise InvalidArgument(f"user namespace {kind} mapping length {m.length} is shorter "
                              f"than {MIN_LENGTH}")
    if m.host_id + m.length > MAX_ID:
        raise InvalidArgument(f"user namespace {kind} mapping {m.host_id}+{m.length} "
                              "passes the last host id")
    return IdMapping(m.container_id, m.host_id, m.length)


def pod_mapping(options: api_pb2.NamespaceOption) -> IdMapping | None:
    """The pod's id mapping (mode POD), or None for the host's user namespace."""
    if not options.HasField("userns_options"):
        return None
    userns = options.userns_options
    if userns.mode == Mode.NODE:
        return None
    if userns.mode != Mode.POD:
        raise InvalidArgument(f"user namespace mode {mode_name(userns.mode)} is not supported "
                              "for a pod: only NODE and POD are")
    uid = _one("uid", list(userns.uids))
    gid = _one("gid", list(userns.gids))
    if uid != gid:
        raise InvalidArgument("user namespace uid and gid mappings must be the same range")
    if Mode.NODE in (options.network, options.ipc, options.pid):
        raise InvalidArgument("a pod in its own user namespace cannot use the node's network, "
                              "IPC or PID namespace")
    return uid


def of_pod(config: api_pb2.PodSandboxConfig) -> IdMapping | None:
    """The mapping of a pod already made (its config was checked then)."""
    return pod_mapping(config.linux.security_context.namespace_options)
