"""A full disk is RESOURCE_EXHAUSTED naming the dir that ran out, never INTERNAL.

The SQLite cases fill a real database: ``PRAGMA max_page_count`` makes SQLite
answer SQLITE_FULL exactly as a full filesystem does. Full filesystems under
a running daemon are in ``e2e/faults/test_disk_full.py``.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crid import disk_full, errors
from crid.clock import Clock
from crid.interceptor import Aborted, CallInterceptor
from crid.metrics import Metrics
from crid.store import Store

TABLE = ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",)


def test_disk_full_errnos_and_sqlite_full_are_recognised(tmp_path: Path) -> None:
    assert disk_full.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not disk_full.is_disk_full(OSError(errno.EIO, "Input/output error"))
    assert not disk_full.is_disk_full(ValueError("no"))
    db = sqlite3.connect(tmp_path / "db")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("PRAGMA max_page_count = 3")
    with pytest.raises(sqlite3.Error) as full:
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert disk_full.is_disk_full(full.value)


def test_disk_full_under_names_the_dir_and_leaves_other_errors_alone() -> None:
    with pytest.raises(errors.DiskFull) as caught, \
            disk_full.disk_full_under("/var/lib/crid/image", "storing blob sha256:ab"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert caught.value.message == (
        "storing blob sha256:ab: no space left on device on the filesystem under "
        "/var/lib/crid/image; free space there and retry")
    with pytest.raises(errors.DiskFull, match="disk quota exceeded"), \
            disk_full.disk_full_under("/x", "writing"):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    with pytest.raises(PermissionError), disk_full.disk_full_under("/x", "writing"):
        raise PermissionError(errno.EACCES, "denied")
    with pytest.raises(errors.NotFound), disk_full.disk_full_under("/x", "writing"):
        raise errors.NotFound("typed errors pass as they are")


def test_the_interceptor_maps_an_unwrapped_full_disk() -> None:
    interceptor = CallInterceptor(Metrics(), Clock())

    async def full(_request: Any) -> str:
        raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/crid/x/file")

    async def run() -> Any:
        return await interceptor.unary("/s/Write", full)(None)

    with pytest.raises(Aborted) as caught:
        asyncio.run(run())
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert "no space left on device on the filesystem under /var/lib/crid/x" in (
        caught.value.message)


def test_a_full_database_is_disk_full_and_the_store_still_writes_after(tmp_path: Path) -> None:
    store = Store(tmp_path / "crid.db", {"notes": TABLE}).open()
    try:
        with store.transaction() as db:
            db.execute("INSERT INTO notes (body) VALUES ('kept')")
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages + 1}")
        with pytest.raises(errors.DiskFull) as caught, store.transaction() as db:
            db.execute("INSERT INTO notes (body) VALUES (?)", ("x" * 200_000,))
        assert caught.value.message == (
            "writing crid.db: database or disk is full on the filesystem under "
            f"{tmp_path}; free space there and retry")
        # Space freed: the next transaction begins (no transaction left open) and commits.
        with store.transaction() as db:
            db.execute("PRAGMA max_page_count = 1000000")
            db.execute("INSERT INTO notes (body) VALUES ('after')")
        assert [r["body"] for r in store.query("SELECT body FROM notes ORDER BY id")] == [
            "kept", "after"]
    finally:
        store.close()
