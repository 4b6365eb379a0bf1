"""An in-memory copy of one table, for a records class that is its only writer.

List and stats calls read every row many times a second; decoding rows
(protobuf blobs, JSON) on each read cost more than the rest of those calls.
A records class that alone writes its table keeps this copy in step with
each write — the statement commits first, then the copy changes, under one
lock — so reading the copy is reading the table. Worker threads read and
write too, hence the lock. Records are immutable: a write replaces one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from crid.store import Store

T = TypeVar("T")


class TableCopy(Generic[T]):
    def __init__(self, store: Store, table: str, decode: Callable[[Any], T]) -> None:
        self.store = store
        self._table = table
        self._decode = decode
        self._lock = threading.Lock()
        self._loaded: dict[str, T] | None = None
        # Bumped by every write: readers that keep something made from the rows
        # (a whole list response) know by it whether that is still current.
        self.generation = 0

    def _rows(self) -> dict[str, T]:
        """The copy, loaded on first use (call with the lock held)."""
        if self._loaded is None:
            rows = self.store.query(f"SELECT * FROM {self._table} ORDER BY created_ns")
            self._loaded = {row["id"]: self._decode(row) for row in rows}
        return self._loaded

    def all(self) -> list[T]:
        with self._lock:
            return list(self._rows().values())

    def get(self, record_id: str) -> T | None:
        with self._lock:
            return self._rows().get(record_id)

    def count(self) -> int:
        with self._lock:
            return len(self._rows())

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db.execute(sql, params)

    def insert(self, row: dict[str, Any], record: T) -> None:
        """Insert ``row`` (column -> value, with ``id``); the copy gains ``record``."""
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._lock:
            self._execute(f"INSERT INTO {self._table} ({names}) VALUES ({marks})", row)
            self._rows()[row["id"]] = record
            self.generation += 1

    def update(self, record_id: str, values: dict[str, Any],
               change: Callable[[T], T]) -> T | None:
        """Set ``values`` (column -> value) on the row; the copy's record becomes
        ``change(record)`` (None if absent)."""
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        with self._lock:
            self._execute(f"UPDATE {self._table} SET {assignments} WHERE id = :id",
                          {**values, "id": record_id})
            rows = self._rows()
            self.generation += 1
            current = rows.get(record_id)
            if current is None:
                return None
            rows[record_id] = updated = change(current)
            return updated

    def delete(self, record_id: str) -> None:
        with self._lock:
            self._execute(f"DELETE FROM {self._table} WHERE id = ?", (record_id,))
            self._rows().pop(record_id, None)
            self.generation += 1
