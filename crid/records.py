"""``Records[T]``: one table of records (containers, pods) and its in-memory copy.

List and stats calls read every row many times a second; decoding rows
(protobuf blobs, JSON) on each read cost more than the rest of those calls.
So a ``Records`` object is its table's only writer, keeps a copy of it and
reads the copy.

The rule (``crid.store``'s, for every table): the event loop does no SQLite.

- Reads come from the copy: no I/O, fine on the loop and in worker threads.
  The copy is loaded from the table on first use, which is the startup
  recovery, before the socket serves.
- A write changes the copy at once (under one short lock, so a reader never
  sees half of it) and queues its statement on the store's one writer thread,
  so rows are written in the order the copy changed. ``await insert/update/
  delete`` returns once the row is committed: a CRI call awaits its writes
  before it replies, so what kubelet was told is on disk.
- A loop callback cannot await: the exit watch records an exit with
  ``update_soon``, which changes the copy the same way and leaves the write
  queued (a failure is logged). That is crash-safe because the fact it
  records stays on disk until the row is written: conmon's exit file is
  deleted only by RemoveContainer, after the row is, and startup recovery
  reads every exit file again.
- A write that fails undoes its change to the copy, unless a later write
  changed that record since (it then carries the whole row with it).

Copy-out: callers never hold what the store holds. A record is an immutable
value (a frozen dataclass of strings, numbers, tuples and read-only
mappings) that a write replaces, never changes, so handing out the same one
is handing out a copy; its protobuf parts are kept serialized and each read
of one decodes a fresh message the caller may change. The record types
(``crid.containers.records``, ``crid.sandbox.records``) give ``Records`` their
table's name and the two translations, record to row and row to record.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import sqlite3
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from crid import logs
from crid.store import Store

log = logs.get("crid.records")
_ABSENT: Any = object()  # no record under an id (before an insert, after a delete)


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
        self._lock = threading.RLock()  # re-entered: _update stages under it
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

    async def insert(self, record: T) -> None:
        row = self._to_row(record)
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        await self._written(self._stage(
            record.id, record, f"INSERT INTO {self._table} ({names}) VALUES ({marks})", row))

    async def update(self, record_id: str, **fields: Any) -> T | None:
        """Change the named fields of a record; the new record (None if there is none)."""
        updated, written = self._update(record_id, fields)
        if written is not None:
            await self._written(written)
        return updated

    def update_soon(self, record_id: str, **fields: Any) -> T | None:
        """``update`` for a loop callback: the copy changes now, the row is written
        behind (a failure is logged, not raised)."""
        updated, written = self._update(record_id, fields)
        if written is not None:
            written.add_done_callback(self._log_failure)
        return updated

    async def delete(self, record_id: str) -> None:
        await self._written(self._stage(
            record_id, _ABSENT, f"DELETE FROM {self._table} WHERE id = :id", {"id": record_id}))

    def _update(self, record_id: str, fields: dict[str, Any]
                ) -> tuple[T | None, concurrent.futures.Future[None] | None]:
        unknown = set(fields) - self._updatable
        if unknown:
            raise KeyError(f"{self._table}.{', '.join(sorted(unknown))} cannot be updated")
        with self._lock:
            current = self._rows().get(record_id)
            if current is None:  # the copy is the table: no row to change
                return None, None
            updated: T = dataclasses.replace(current, **fields)  # type: ignore[type-var]
            row = self._to_row(updated)
            assignments = ", ".join(f"{k} = :{k}" for k in row if k != "id")
            return updated, self._stage(
                record_id, updated, f"UPDATE {self._table} SET {assignments} WHERE id = :id", row)

    def _stage(self, record_id: str, new: T, sql: str, params: dict[str, Any]
               ) -> concurrent.futures.Future[None]:
        """Change the copy and queue the statement, as one step under the lock (so
        the queue's order is the copy's)."""
        with self._lock:
            rows = self._rows()
            old = rows.get(record_id, _ABSENT)
            if new is _ABSENT:
                rows.pop(record_id, None)
            else:
                rows[record_id] = new
            self._changed()
            return self.store.submit(lambda: self._commit(record_id, old, new, sql, params))

    def _commit(self, record_id: str, old: T, new: T, sql: str, params: dict[str, Any]) -> None:
        """On the writer thread: write the row; if that fails, undo the copy's change."""
        try:
            with self.store.transaction() as db:
                db.execute(sql, params)
        except BaseException:
            with self._lock:
                rows = self._rows()
                if rows.get(record_id, _ABSENT) is new:  # no later write changed it
                    if old is _ABSENT:
                        rows.pop(record_id, None)
                    else:
                        rows[record_id] = old
                    self._changed()
            raise

    @staticmethod
    async def _written(written: concurrent.futures.Future[None]) -> None:
        # Shielded: a cancelled call stops waiting; the queued write still happens.
        await asyncio.shield(asyncio.wrap_future(written))

    def _log_failure(self, written: concurrent.futures.Future[None]) -> None:
        error = None if written.cancelled() else written.exception()
        if error is not None:
            log.error("writing a row failed; its change is undone in memory",
                      table=self._table, error=repr(error))
