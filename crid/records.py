"""``Records[T]``: one table of records (containers, pods) and its in-memory copy.

List and stats calls read every row many times a second; decoding rows
(protobuf blobs, JSON) on each read cost more than the rest of those calls.
So a ``Records`` object is its table's only writer and keeps a copy of it in
step with each write — the statement commits first, then the copy changes,
under one lock (worker threads read and write too) — and reads the copy.

Copy-out: callers never hold what the store holds. A record is an immutable
value (a frozen dataclass of strings, numbers, tuples and read-only
mappings) that a write replaces, never changes, so handing out the same one
is handing out a copy; its protobuf parts are kept serialized and each read
of one decodes a fresh message the caller may change. The record types
(``crid.containers.records``, ``crid.sandbox.records``) give ``Records`` their
table's name and the two translations, record to row and row to record.
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from crid.store import Store


class Record(Protocol):
    """What ``Records`` needs of a record: an id and a creation time to list by."""

    @property
    def id(self) -> str: ...

    @property
    def created_ns(self) -> int: ...


class _Config(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...


class Labelled:
    """For a record with a CRI config: its labels and annotations, which every
    list and stats call reads, decoded once per record and read-only."""

    @property
    def config(self) -> _Config:
        raise NotImplementedError

    @functools.cached_property
    def labels(self) -> Mapping[str, str]:
        return MappingProxyType(dict(self.config.labels))

    @functools.cached_property
    def annotations(self) -> Mapping[str, str]:
        return MappingProxyType(dict(self.config.annotations))


T = TypeVar("T", bound=Record)


class Records(Generic[T]):
    def __init__(self, store: Store, table: str, to_row: Callable[[T], dict[str, Any]],
                 from_row: Callable[[sqlite3.Row], T], updatable: frozenset[str]) -> None:
        self.store = store
        self._table = table
        self._to_row = to_row
        self._from_row = from_row
        self._updatable = updatable
        self._lock = threading.Lock()
        self._loaded: dict[str, T] | None = None
        self._listed: tuple[T, ...] | None = None  # by creation time; None after a write
        # Bumped by every write: readers that keep something made from the
        # records (a whole list response) know by it whether that is still current.
        self._generation = 0

    def _rows(self) -> dict[str, T]:
        """The copy, loaded on first use (call with the lock held)."""
        if self._loaded is None:
            rows = self.store.query(f"SELECT * FROM {self._table} ORDER BY created_ns")
            self._loaded = {row["id"]: self._from_row(row) for row in rows}
        return self._loaded

    def _changed(self) -> None:
        self._listed = None
        self._generation += 1

    # --- reads ---------------------------------------------------------------------

    def get(self, record_id: str) -> T | None:
        with self._lock:
            return self._rows().get(record_id)

    def all(self) -> list[T]:
        """Every record, oldest first."""
        with self._lock:
            if self._listed is None:
                self._listed = tuple(sorted(self._rows().values(), key=lambda r: r.created_ns))
            return list(self._listed)

    def by_prefix(self, prefix: str) -> list[T]:
        return [r for r in self.all() if r.id.startswith(prefix)]

    def count(self) -> int:
        with self._lock:
            return len(self._rows())

    def generation(self) -> int:
        """Changes with every write to the table."""
        return self._generation

    # --- writes --------------------------------------------------------------------

    def _execute(self, sql: str, params: dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db.execute(sql, params)

    def insert(self, record: T) -> None:
        row = self._to_row(record)
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._lock:
            self._execute(f"INSERT INTO {self._table} ({names}) VALUES ({marks})", row)
            self._rows()[record.id] = record
            self._changed()

    def update(self, record_id: str, **fields: Any) -> T | None:
        """Change the named fields of a record; the new record (None if there is none)."""
        unknown = set(fields) - self._updatable
        if unknown:
            raise KeyError(f"{self._table}.{', '.join(sorted(unknown))} cannot be updated")
        with self._lock:
            rows = self._rows()
            current = rows.get(record_id)
            if current is None:  # the copy is the table: no row to change
                return None
            updated: T = dataclasses.replace(current, **fields)  # type: ignore[type-var]
            row = self._to_row(updated)
            assignments = ", ".join(f"{k} = :{k}" for k in row if k != "id")
            self._execute(f"UPDATE {self._table} SET {assignments} WHERE id = :id", row)
            rows[record_id] = updated
            self._changed()
            return updated

    def delete(self, record_id: str) -> None:
        with self._lock:
            self._execute(f"DELETE FROM {self._table} WHERE id = :id", {"id": record_id})
            self._rows().pop(record_id, None)
            self._changed()
