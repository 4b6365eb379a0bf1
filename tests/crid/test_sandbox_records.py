from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from crid.sandbox import records, schema
from crid.sandbox.infra import Infra
from crid.store import Store, StoreWriteFailed


def sandbox(sandbox_id: str, name: str = "web") -> records.Sandbox:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid="u", namespace="ns"),
        labels={"app": name})
    return records.Sandbox(
        id=sandbox_id, name=name, namespace="ns", uid="u", attempt=0, state=records.READY,
        created_ns=1, runtime_handler="crid", config_bytes=config.SerializeToString(),
        pod_dir="/run/crid/pods/x",
        namespaces={"net": "/run/crid/pods/x/net"}, shm="/run/crid/pods/x/shm",
        cgroup_parent="/crid/x", infra=Infra(pid=5, start_time=6, parent_pid=4), ips=("10.0.0.1",),
        network_pending=False, cgroup_owned=True,
    )


def test_round_trip_update_and_lookups(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open()
    table = records.SandboxRecords(store)
    asyncio.run(table.insert(sandbox("abc123")))
    asyncio.run(table.insert(sandbox("abd456", name="db")))
    got = table.get("abc123")
    assert got == sandbox("abc123")
    assert got is not None and got.netns == "/run/crid/pods/x/net"
    asyncio.run(table.update("abc123", state=records.NOTREADY, network_pending=True, ips=()))
    got = table.get("abc123")
    assert got is not None and got.state == records.NOTREADY and got.network_pending
    assert got.ips == ()
    assert {s.id for s in table.by_prefix("ab")} == {"abc123", "abd456"}
    assert [s.id for s in table.by_prefix("abd")] == ["abd456"]
    assert table.by_name("db", "ns", "u", 0) is not None
    assert table.by_name("db", "ns", "u", 1) is None
    with pytest.raises(KeyError):
        asyncio.run(table.update("abc123", name="other"))
    asyncio.run(table.delete("abc123"))
    assert table.get("abc123") is None and table.count() == 1


def test_the_in_memory_copy_holds_what_the_table_holds(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open()
    table = records.SandboxRecords(store)
    asyncio.run(table.insert(sandbox("abc123")))
    asyncio.run(table.insert(sandbox("abd456", name="db")))
    asyncio.run(table.update("abc123", state=records.NOTREADY, ips=("10.0.0.9",), infra=None))
    asyncio.run(table.delete("abd456"))
    fresh = records.SandboxRecords(store)  # loads from the table itself
    assert fresh.all() == table.all()
    assert [s.ips for s in fresh.all()] == [("10.0.0.9",)]
    assert fresh.all()[0].infra is None


def test_a_failed_write_leaves_the_copy_unchanged(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open()
    table = records.SandboxRecords(store)
    asyncio.run(table.insert(sandbox("abc123")))
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        asyncio.run(table.insert(sandbox("abc123")))
    assert table.count() == 1 and table.get("abc123") == sandbox("abc123")


def test_update_soon_changes_the_copy_at_once_and_the_row_after(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open()
    table = records.SandboxRecords(store)
    asyncio.run(table.insert(sandbox("abc123")))
    generation = table.generation()
    updated = table.update_soon("abc123", state=records.NOTREADY)  # as a loop callback does
    assert updated is not None and table.get("abc123") == updated
    assert table.generation() > generation
    store.close()  # drains the writer's queue
    fresh = records.SandboxRecords(
        Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open())
    assert [s.state for s in fresh.all()] == [records.NOTREADY]


def test_a_refused_update_is_undone_in_the_copy(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open()
    table = records.SandboxRecords(store)
    asyncio.run(table.insert(sandbox("abc123")))
    with store.transaction() as db:
        db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON sandboxes"
                   " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        asyncio.run(table.update("abc123", state=records.NOTREADY))
    assert table.get("abc123") == sandbox("abc123")
    table.update_soon("abc123", state=records.NOTREADY)  # logged, then undone
    store.close()
    assert table.get("abc123") == sandbox("abc123")


def test_a_write_the_disk_refuses_fails_the_call_and_the_copy_stays_with_the_disk(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open()
    table = records.SandboxRecords(store)
    asyncio.run(table.insert(sandbox("abc123")))
    store.query("PRAGMA query_only = 1")  # what a read-only disk answers: SQLITE_READONLY
    with pytest.raises(StoreWriteFailed, match="cannot write the state database"):
        asyncio.run(table.insert(sandbox("abd456", name="db")))
    with pytest.raises(StoreWriteFailed):
        asyncio.run(table.update("abc123", state=records.NOTREADY))
    with pytest.raises(StoreWriteFailed):
        asyncio.run(table.delete("abc123"))
    assert table.all() == [sandbox("abc123")]
    store.query("PRAGMA query_only = 0")
    assert records.SandboxRecords(store).all() == table.all()
