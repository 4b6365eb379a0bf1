"""Container records and the states they move through.

::

    CreateContainer ──► CREATED ──StartContainer──► RUNNING ──(exit)──► EXITED
                           │                                              ▲
                           └──────────────StopContainer───────────────────┘
    RemoveContainer: from any state (a running one is stopped first) ──► (gone)

A row is written once the container exists in the runtime, and changed only
through ``ContainerRecords.update``, so what the store says is what crid
promised kubelet. ``UNKNOWN`` marks a container whose monitor vanished
without leaving an exit code; its process may still run, so StopContainer
kills it through the runtime and records the exit itself (``EXITED``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
from typing import Any

from cri_api.v1 import api_pb2

from crid.containers import image_volumes
from crid.store import Store
from crid.table_copy import TableCopy

CREATED = "created"
RUNNING = "running"
EXITED = "exited"
UNKNOWN = "unknown"

CRI_STATE = {
    CREATED: api_pb2.CONTAINER_CREATED,
    RUNNING: api_pb2.CONTAINER_RUNNING,
    EXITED: api_pb2.CONTAINER_EXITED,
    UNKNOWN: api_pb2.CONTAINER_UNKNOWN,
}


@dataclasses.dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Container:
    id: str
    pod_id: str
    name: str
    attempt: int
    state: str
    created_ns: int
    handler: str
    image: str  # as the request named it
    image_ref: str  # what kubelet shows as the image it runs (a repo digest or the id)
    image_id: str
    config: api_pb2.ContainerConfig
    resources: api_pb2.LinuxContainerResources
    log_path: str
    bundle: str  # runroot: config.json, conmon's files, the rootfs mount point
    layer_dir: str  # root: the writable layer (upper, work)
    user: User
    stop_signal: str
    started_ns: int = 0
    finished_ns: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    monitor_pid: int = 0

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.labels)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.config.annotations)


_ENCODED = {"config", "resources", "user"}
_UPDATABLE = {"state", "started_ns", "finished_ns", "exit_code", "reason", "message",
              "pid", "monitor_pid", "resources", "log_path"}


def _encode(key: str, value: Any) -> tuple[str, Any]:
    if key in ("config", "resources"):
        return key, value.SerializeToString()
    if key == "user":
        return "user_json", json.dumps(dataclasses.asdict(value))
    return key, value


def _decode(row: Any) -> Container:
    # sqlite3.Row iterates its values; keys() gives the column names.
    fields = {k: row[k] for k in row.keys() if k not in ("config", "resources", "user_json")}  # noqa: SIM118
    user = json.loads(row["user_json"])
    return Container(
        **fields,
        config=api_pb2.ContainerConfig.FromString(row["config"]),
        resources=api_pb2.LinuxContainerResources.FromString(row["resources"]),
        user=User(user["uid"], user["gid"], tuple(user["groups"])),
    )


class ContainerRecords:
    """The containers table, read from an in-memory copy (``TableCopy``): this
    object is the table's only writer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._copy = TableCopy(store, "containers", _decode)

    def insert(self, container: Container) -> None:
        self._copy.insert(dict(_encode(f.name, getattr(container, f.name))
                               for f in dataclasses.fields(container)), container)

    def update(self, container_id: str, **fields: Any) -> Container | None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise KeyError(f"containers.{', '.join(sorted(unknown))} cannot be updated")
        return self._copy.update(container_id, dict(_encode(k, v) for k, v in fields.items()),
                                 lambda current: dataclasses.replace(current, **fields))

    def delete(self, container_id: str) -> None:
        self._copy.delete(container_id)

    def get(self, container_id: str) -> Container | None:
        return self._copy.get(container_id)

    def by_prefix(self, prefix: str) -> list[Container]:
        return [c for c in self._copy.all() if c.id.startswith(prefix)]

    def by_name(self, pod_id: str, name: str, attempt: int) -> Container | None:
        return next((c for c in self._copy.all()
                     if (c.pod_id, c.name, c.attempt) == (pod_id, name, attempt)), None)

    def of_pod(self, pod_id: str) -> list[Container]:
        return [c for c in self._copy.all() if c.pod_id == pod_id]

    def all(self) -> list[Container]:
        return sorted(self._copy.all(), key=lambda c: c.created_ns)

    def count(self) -> int:
        return self._copy.count()

    def generation(self) -> int:
        """Changes with every write to the table."""
        return self._copy.generation

    def image_in_use(self, image_id: str) -> bool:
        """As the container's image, or as one of its image volumes."""
        return any(c.image_id == image_id or image_id in image_volumes.image_ids(c.config)
                   for c in self._copy.all())

    def count_by_state(self) -> dict[str, int]:
        return dict(collections.Counter(c.state for c in self._copy.all()))
