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
import functools
import json
import sqlite3
from typing import Any

from cri_api.v1 import api_pb2

from crid.containers import image_volumes
from crid.records import Labelled, Records
from crid.store import Store

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
class Container(Labelled):
    """A container as the store knows it; immutable (see ``crid.records``)."""

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
    config_bytes: bytes  # a ContainerConfig, serialized: ``config`` decodes a copy
    resources_bytes: bytes  # a LinuxContainerResources, serialized: ``resources``
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
    def config(self) -> api_pb2.ContainerConfig:
        """The CRI config, decoded afresh: the caller's own copy."""
        return api_pb2.ContainerConfig.FromString(self.config_bytes)

    @property
    def resources(self) -> api_pb2.LinuxContainerResources:
        """The resources now in force, decoded afresh."""
        return api_pb2.LinuxContainerResources.FromString(self.resources_bytes)

    @property
    def metadata(self) -> api_pb2.ContainerMetadata:
        return api_pb2.ContainerMetadata(name=self.name, attempt=self.attempt)

    @functools.cached_property
    def image_ids(self) -> frozenset[str]:
        """The image and those of its image volumes: what it keeps in use."""
        return frozenset((self.image_id, *image_volumes.image_ids(self.config)))


_UPDATABLE = frozenset({"state", "started_ns", "finished_ns", "exit_code", "reason", "message",
                        "pid", "monitor_pid", "resources_bytes", "log_path"})


def _row(container: Container) -> dict[str, Any]:
    row = {f.name: getattr(container, f.name) for f in dataclasses.fields(container)}
    row["config"], row["resources"] = row.pop("config_bytes"), row.pop("resources_bytes")
    row["user_json"] = json.dumps(dataclasses.asdict(row.pop("user")))
    return row


def _container(row: sqlite3.Row) -> Container:
    # sqlite3.Row iterates its values; keys() gives the column names.
    fields = {k: row[k] for k in row.keys()  # noqa: SIM118
              if k not in ("config", "resources", "user_json")}
    user = json.loads(row["user_json"])
    return Container(**fields, config_bytes=row["config"], resources_bytes=row["resources"],
                     user=User(user["uid"], user["gid"], tuple(user["groups"])))


class ContainerRecords(Records[Container]):
    """The containers table (``Records``), with the lookups containers need."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, "containers", _row, _container, _UPDATABLE)

    def by_name(self, pod_id: str, name: str, attempt: int) -> Container | None:
        return next((c for c in self.all()
                     if (c.pod_id, c.name, c.attempt) == (pod_id, name, attempt)), None)

    def of_pod(self, pod_id: str) -> list[Container]:
        return [c for c in self.all() if c.pod_id == pod_id]

    def image_in_use(self, image_id: str) -> bool:
        """As the container's image, or as one of its image volumes."""
        return any(image_id in c.image_ids for c in self.all())

    def count_by_state(self) -> dict[str, int]:
        return dict(collections.Counter(c.state for c in self.all()))
