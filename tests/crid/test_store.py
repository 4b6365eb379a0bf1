"""The state store: per-component migrations and all-or-nothing transactions."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from crid.store import Store, StoreUnusable, StoreWriteFailed

PETS = (
    "CREATE TABLE pets (name TEXT PRIMARY KEY);",
    "ALTER TABLE pets ADD COLUMN legs INTEGER NOT NULL DEFAULT 4;\n"
    "CREATE INDEX pets_legs ON pets (legs);",
)


def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", {"pets": PETS}).open()
    assert store.schema_version("pets") == 2
    assert store.schema_version("crid") == 1
    with store.transaction() as db:
        db.execute("INSERT INTO pets (name) VALUES ('rex')")
    store.close()
    reopened = Store(tmp_path / "db", {"pets": PETS}).open()  # nothing to apply; no error
    assert [dict(r) for r in reopened.query("SELECT * FROM pets")] == [{"name": "rex", "legs": 4}]


def test_a_newer_component_is_migrated_from_where_it_stands(tmp_path: Path) -> None:
    Store(tmp_path / "db", {"pets": PETS[:1]}).open().close()
    store = Store(tmp_path / "db", {"pets": PETS}).open()
    assert store.schema_version("pets") == 2
    assert "legs" in [r["name"] for r in store.query("PRAGMA table_info(pets)")]


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "db", {"pets": PETS}).open().close()
    with pytest.raises(RuntimeError, match="refusing to downgrade"):
        Store(tmp_path / "db", {"pets": PETS[:1]}).open()


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    broken = (PETS[0], "ALTER TABLE pets ADD COLUMN x INTEGER;\nNOT SQL;")
    with pytest.raises(sqlite3.OperationalError):
        Store(tmp_path / "db", {"pets": broken}).open()
    store = Store(tmp_path / "db", {"pets": PETS[:1]}).open()
    assert store.schema_version("pets") == 1
    assert "x" not in [r["name"] for r in store.query("PRAGMA table_info(pets)")]


def test_a_transaction_that_raises_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", {"pets": PETS}).open()
    with pytest.raises(ValueError), store.transaction() as db:
        db.execute("INSERT INTO pets (name) VALUES ('half')")
        raise ValueError("part-way failure")
    assert store.query("SELECT * FROM pets") == []


def test_meta_values_persist(tmp_path: Path) -> None:
    async def scenario() -> str | None:
        store = Store(tmp_path / "db").open()
        await store.set_meta("pod_cidr", "10.88.0.0/16")
        await store.set_meta("pod_cidr", "10.89.0.0/16")
        store.close()
        return await Store(tmp_path / "db").open().get_meta("pod_cidr")
    assert asyncio.run(scenario()) == "10.89.0.0/16"


def test_writes_run_on_one_thread_in_order_and_close_waits_for_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", {"pets": PETS}).open()
    threads = set()

    def insert(name: str) -> None:
        threads.add(threading.current_thread().name)
        with store.transaction() as db:
            db.execute("INSERT INTO pets (name) VALUES (?)", (name,))
    for name in ("a", "b", "c"):
        store.submit(lambda name=name: insert(name))  # type: ignore[misc]
    store.close()  # waits for the queue
    assert len(threads) == 1 and threading.current_thread().name not in threads
    reopened = Store(tmp_path / "db", {"pets": PETS}).open()
    assert [r["name"] for r in reopened.query("SELECT name FROM pets ORDER BY rowid")] == \
        ["a", "b", "c"]


def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "db").open()
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"


def test_the_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # what SQLite would otherwise give them: 0644 less the umask
    try:
        for leftover in ("db-wal", "db-shm"):  # an older crid's, world-readable
            (tmp_path / leftover).touch(0o644)
        (tmp_path / "db-wal").unlink()
        store = Store(tmp_path / "db", {"pets": PETS}).open()
        with store.transaction() as db:
            db.execute("INSERT INTO pets (name) VALUES ('rex')")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        store.close()
    finally:
        os.umask(old)
    assert modes == {"db": 0o600, "db-wal": 0o600, "db-shm": 0o600}


def test_a_damaged_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = Store(path, {"pets": PETS}).open()
    with store.transaction() as db:
        db.executemany("INSERT INTO pets (name) VALUES (?)",
                       [(f"p{i:04}" * 40,) for i in range(400)])
    store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    size = path.stat().st_size
    damaged = tmp_path / "damaged"
    damaged.write_bytes(path.read_bytes())
    with open(damaged, "r+b") as f:  # a page of the table overwritten: only a check sees it
        f.seek(size - 3 * 4096)
        f.write(b"\xff" * 4096)
    with pytest.raises(StoreUnusable, match=f"{damaged} is damaged") as caught:
        Store(damaged, {"pets": PETS}).open()
    assert "Restore it from a backup" in caught.value.message
    with open(path, "r+b") as f:  # cut in half: pages of the table are gone
        f.truncate(size // 2)
    with pytest.raises(StoreUnusable, match=f"{path} is damaged"):
        Store(path, {"pets": PETS}).open()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "db").write_bytes(b"not sqlite at all, " * 300)
    with pytest.raises(StoreUnusable, match="is damaged or unwritable"):
        Store(tmp_path / "db").open()


def test_a_missing_or_empty_file_opens_as_a_new_store(tmp_path: Path) -> None:
    assert Store(tmp_path / "new").open().was_empty
    (tmp_path / "zero").touch()
    assert Store(tmp_path / "zero").open().was_empty
    Store(tmp_path / "used").open().close()
    assert not Store(tmp_path / "used").open().was_empty


def test_a_write_the_file_refuses_raises_store_write_failed(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", {"pets": PETS}).open()
    store.query("PRAGMA query_only = 1")  # SQLITE_READONLY on every write, as a ro disk
    with pytest.raises(StoreWriteFailed, match=f"cannot write the state database {tmp_path}"), \
            store.transaction() as db:
        db.execute("INSERT INTO pets (name) VALUES ('rex')")
    store.query("PRAGMA query_only = 0")
    assert store.query("SELECT * FROM pets") == []
    with store.transaction() as db:  # the connection is usable again
        db.execute("INSERT INTO pets (name) VALUES ('rex')")
    assert len(store.query("SELECT * FROM pets")) == 1


def test_a_bad_statement_is_not_blamed_on_the_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", {"pets": PETS}).open()
    with pytest.raises(sqlite3.OperationalError, match="no such table"), \
            store.transaction() as db:
        db.execute("INSERT INTO nope (name) VALUES ('rex')")

