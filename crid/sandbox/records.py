"""Pod sandbox records: what the store keeps about each pod, and their states.

::

    (RunPodSandbox) ──► READY ──StopPodSandbox──► NOTREADY ──RemovePodSandbox──► (gone)
                          └──── infra process died ───┘

A row is written only once a pod is fully made, so every row is a pod that
exists. ``network_pending`` marks a pod whose network is still attached
though it is NOTREADY: its CNI DEL failed on stop (remove tries it again), or
its infra process died and no stop came yet. ``infra`` is the JSON of the
infra process (or ``{}``); ``namespaces`` maps a kind to its pin file (an
absent kind is the host's).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from cri_api.v1 import api_pb2

from crid.records import Labelled, Records
from crid.sandbox.infra import Infra
from crid.store import Store

READY = "ready"
NOTREADY = "notready"


@dataclasses.dataclass(frozen=True)
class Sandbox(Labelled):
    """A pod as the store knows it; immutable (see ``crid.records``)."""

    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: str
    created_ns: int
    runtime_handler: str
    config_bytes: bytes  # a PodSandboxConfig, serialized: ``config`` decodes a copy
    pod_dir: str
    namespaces: Mapping[str, str]
    shm: str
    cgroup_parent: str
    infra: Infra | None
    ips: Sequence[str]
    network_pending: bool
    cgroup_owned: bool  # crid made the pod cgroup, so removes it

    def __post_init__(self) -> None:
        # Held read-only, whatever the caller passed: no one else may change them.
        object.__setattr__(self, "namespaces", MappingProxyType(dict(self.namespaces)))
        object.__setattr__(self, "ips", tuple(self.ips))
        object.__setattr__(self, "network_pending", bool(self.network_pending))

    @property
    def netns(self) -> str:
        return self.namespaces.get("net", "")

    @property
    def config(self) -> api_pb2.PodSandboxConfig:
        """The CRI config, decoded afresh: the caller's own copy."""
        return api_pb2.PodSandboxConfig.FromString(self.config_bytes)

    @property
    def metadata(self) -> api_pb2.PodSandboxMetadata:
        return api_pb2.PodSandboxMetadata(name=self.name, uid=self.uid,
                                          namespace=self.namespace, attempt=self.attempt)


def _row(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "id": sandbox.id, "name": sandbox.name, "namespace": sandbox.namespace,
        "uid": sandbox.uid, "attempt": sandbox.attempt, "state": sandbox.state,
        "created_ns": sandbox.created_ns, "runtime_handler": sandbox.runtime_handler,
        "config": sandbox.config_bytes, "pod_dir": sandbox.pod_dir,
        "namespaces": json.dumps(dict(sandbox.namespaces)), "shm": sandbox.shm,
        "cgroup_parent": sandbox.cgroup_parent,
        "infra": json.dumps(dataclasses.asdict(sandbox.infra) if sandbox.infra else {}),
        "ips": json.dumps(list(sandbox.ips)),
        "network_pending": int(sandbox.network_pending),
        "cgroup_owned": int(sandbox.cgroup_owned),
    }


def _sandbox(row: sqlite3.Row) -> Sandbox:
    infra = json.loads(row["infra"])
    return Sandbox(
        id=row["id"], name=row["name"], namespace=row["namespace"], uid=row["uid"],
        attempt=row["attempt"], state=row["state"], created_ns=row["created_ns"],
        runtime_handler=row["runtime_handler"], config_bytes=row["config"],
        pod_dir=row["pod_dir"], namespaces=json.loads(row["namespaces"]), shm=row["shm"],
        cgroup_parent=row["cgroup_parent"], infra=Infra(**infra) if infra else None,
        ips=json.loads(row["ips"]), network_pending=bool(row["network_pending"]),
        cgroup_owned=bool(row["cgroup_owned"]),
    )


class SandboxRecords(Records[Sandbox]):
    """The sandboxes table (``Records``), with the lookup RunPodSandbox needs."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, "sandboxes", _row, _sandbox,
                         frozenset({"state", "ips", "network_pending", "infra"}))

    def by_name(self, name: str, namespace: str, uid: str, attempt: int) -> Sandbox | None:
        return next((s for s in self.all()
                     if (s.name, s.namespace, s.uid, s.attempt) == (name, namespace, uid, attempt)),
                    None)
