"""Pod sandbox records: what the store keeps about each pod, and their states.

::

    (RunPodSandbox) ──► READY ──StopPodSandbox──► NOTREADY ──RemovePodSandbox──► (gone)

A row is written only once a pod is fully made, so every row is a pod that
exists. ``network_pending`` marks a pod whose CNI DEL failed on stop: remove
tries it again. ``infra`` is the JSON of the infra process (or ``{}``);
``namespaces`` maps a kind to its pin file (an absent kind is the host's).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cri_api.v1 import api_pb2

from crid.sandbox.infra import Infra
from crid.store import Store
from crid.table_copy import TableCopy

READY = "ready"
NOTREADY = "notready"


@dataclasses.dataclass(frozen=True)
class Sandbox:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: str
    created_ns: int
    runtime_handler: str
    config: api_pb2.PodSandboxConfig
    pod_dir: str
    namespaces: Mapping[str, str]
    shm: str
    cgroup_parent: str
    infra: Infra | None
    ips: Sequence[str]
    network_pending: bool
    cgroup_owned: bool  # crid made the pod cgroup, so removes it

    @property
    def netns(self) -> str:
        return self.namespaces.get("net", "")


def _row(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "id": sandbox.id, "name": sandbox.name, "namespace": sandbox.namespace,
        "uid": sandbox.uid, "attempt": sandbox.attempt, "state": sandbox.state,
        "created_ns": sandbox.created_ns, "runtime_handler": sandbox.runtime_handler,
        "config": sandbox.config.SerializeToString(), "pod_dir": sandbox.pod_dir,
        "namespaces": json.dumps(dict(sandbox.namespaces)), "shm": sandbox.shm,
        "cgroup_parent": sandbox.cgroup_parent,
        "infra": json.dumps(dataclasses.asdict(sandbox.infra) if sandbox.infra else {}),
        "ips": json.dumps(list(sandbox.ips)),
        "network_pending": int(sandbox.network_pending),
        "cgroup_owned": int(sandbox.cgroup_owned),
    }


def _sandbox(row: Any) -> Sandbox:
    infra = json.loads(row["infra"])
    return Sandbox(
        id=row["id"], name=row["name"], namespace=row["namespace"], uid=row["uid"],
        attempt=row["attempt"], state=row["state"], created_ns=row["created_ns"],
        runtime_handler=row["runtime_handler"],
        config=api_pb2.PodSandboxConfig.FromString(row["config"]),
        pod_dir=row["pod_dir"], namespaces=json.loads(row["namespaces"]), shm=row["shm"],
        cgroup_parent=row["cgroup_parent"], infra=Infra(**infra) if infra else None,
        ips=tuple(json.loads(row["ips"])), network_pending=bool(row["network_pending"]),
        cgroup_owned=bool(row["cgroup_owned"]),
    )


class SandboxRecords:
    """The sandboxes table, read from an in-memory copy (``TableCopy``): this
    object is the table's only writer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._copy = TableCopy(store, "sandboxes", _sandbox)

    def insert(self, sandbox: Sandbox) -> None:
        self._copy.insert(_row(sandbox), sandbox)

    def update(self, sandbox_id: str, **fields: Any) -> None:
        values = {k: _row_value(k, v) for k, v in fields.items()}
        # Through the row encoding and back, so the copy holds what a read would.
        self._copy.update(sandbox_id, values,
                          lambda current: _sandbox({**_row(current), **values}))

    def delete(self, sandbox_id: str) -> None:
        self._copy.delete(sandbox_id)

    def get(self, sandbox_id: str) -> Sandbox | None:
        return self._copy.get(sandbox_id)

    def find_by_prefix(self, prefix: str) -> list[Sandbox]:
        return [s for s in self.all() if s.id.startswith(prefix)]

    def find_by_name(self, name: str, namespace: str, uid: str, attempt: int) -> Sandbox | None:
        return next((s for s in self._copy.all()
                     if (s.name, s.namespace, s.uid, s.attempt) == (name, namespace, uid, attempt)),
                    None)

    def all(self) -> list[Sandbox]:
        return sorted(self._copy.all(), key=lambda s: s.created_ns)

    def count(self) -> int:
        return self._copy.count()

    def generation(self) -> int:
        """Changes with every write to the table."""
        return self._copy.generation


_UPDATABLE = ("state", "ips", "network_pending", "infra")


def _row_value(key: str, value: Any) -> Any:
    if key not in _UPDATABLE:
        raise KeyError(f"sandboxes.{key} is not updatable")
    if key == "infra":
        return json.dumps(dataclasses.asdict(value) if value else {})
    if key == "ips":
        return json.dumps(list(value))
    if key == "network_pending":
        return int(value)
    return value
