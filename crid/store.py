"""The SQLite state store: pods, containers, images and tags live here.

One database file under the root dir, in WAL mode, written only inside
transactions, so a daemon killed at any moment leaves either the old or the
new row, never half of one. Rows hold containers' specs, their env among
them, so the file is 0600 before SQLite first opens it; SQLite gives its
``-wal`` and ``-shm`` files the database's mode.

The schema is versioned per *component* (``crid``, ``image``, ...): each
component owns its tables and an ordered list of migrations, and the store
applies the ones a database has not seen yet, each in its own transaction.
A component never edits an applied migration; it appends a new one.

The event loop does no SQLite (one rule for every table: containers, pods,
images). Reads on the loop come from in-memory copies the tables' owners keep
(``crid.records``, ``crid.image.records``), loaded once at startup before
the socket serves; the rare read no copy serves (``get_meta``) runs in a
worker thread. Every write runs on the store's one writer thread, in the
order it was submitted: ``await store.write(work)`` from the loop,
``store.submit(work).result()`` from a worker thread (an image pull). One
writer means writes never interleave and a commit never waits on the loop.

A damaged file is refused, never served as an empty state: ``open`` fails
with ``StoreUnusable`` (crid exits 1 naming the file and what to do) when the
file cannot be opened for writing (read-only mount, ``chattr +i``) or SQLite's
``quick_check`` finds it damaged (truncated, overwritten). SQLite itself
replays a WAL a killed daemon left, on that same open. A file that is missing
or empty opens as a new store; ``was_empty`` says so, and the daemon then
refuses it if the node still holds pods or containers (``crid.lost_state``).
A write that fails while running raises ``DiskFull`` (RESOURCE_EXHAUSTED,
``crid.errors``) when the disk is full, else ``StoreWriteFailed`` (the disk
went read-only, I/O errors), which the CRI call returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from crid import private
from crid.disk_full import disk_full, is_disk_full
from crid.errors import FailedPrecondition, Unavailable

Migrations = Mapping[str, Sequence[str]]
R = TypeVar("R")

#: The tables the daemon itself owns. Domains (images, pods, containers)
#: register their own lists next to their code and pass them to ``Store``.
CORE_MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)


class StoreUnusable(FailedPrecondition):
    """The database cannot be used at start: crid refuses to start on it."""


class StoreWriteFailed(Unavailable):
    """A write did not reach the disk; nothing of it was kept."""


class Store:
    """A thread-safe handle on the state database.

    One lock serialises use of the connection: the writer thread writes
    through it, startup loads and worker threads read through it.
    Made with nothing open; ``open()`` opens the file and migrates it.
    """

    def __init__(self, path: Path, migrations: Migrations | None = None) -> None:
        self.path = path
        self._migrations = {"crid": CORE_MIGRATIONS, **(migrations or {})}
        self._lock = threading.RLock()
        # The single writer: its thread starts on the first write, not here.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="crid-store-writer")
        self._db: sqlite3.Connection | None = None  # set by open()
        #: Set by open(): the file was missing or held nothing (a new store).
        self.was_empty = False

    def open(self) -> Store:
        """Open the file (made 0600 first), check it and bring its schema up to
        date; ``StoreUnusable`` when it cannot be written or is damaged."""
        path = self.path
        try:
            self.was_empty = path.stat().st_size == 0
        except FileNotFoundError:
            self.was_empty = True
        try:
            # Opened for writing here: SQLite would fall back to read-only silently.
            private.create(path)
            for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):
                if companion.exists():  # left by an older crid, with a looser mode
                    private.create(companion)
        except OSError as exc:
            raise StoreUnusable(
                f"the state database {exc.filename or path} cannot be opened for writing "
                f"({exc.strerror}): make it writable (a read-write mount, chattr -i, "
                "owner root) and start crid again") from None
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a
        # transaction spans exactly the block the caller wrote.
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db = db
        try:
            db.row_factory = sqlite3.Row
            # First, before any write: a damaged file is not written to.
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems))
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across a killed process in WAL mode, which is the
            # failure we promise to survive; FULL would fsync on every commit.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            self.migrate(self._migrations)
        except (sqlite3.DatabaseError, StoreWriteFailed) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and not storage_error(exc):
                raise  # a bad statement in a migration: crid's bug, not the file's
            self._db = None
            db.close()
            raise StoreUnusable(
                f"the state database {path} is damaged or unwritable ({exc}); crid will not "
                "start on it, so that pods and containers it records are not taken for "
                f"gone. Restore it from a backup (or try: sqlite3 {path} .recover), or to "
                "start over, stop every container of this crid and move the file, its "
                "-wal and -shm and the state dir (--runroot) aside") from None
        return self

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"{self.path}: the store is not open")
        return self._db

    def migrate(self, migrations: Migrations) -> None:
        """Apply every migration a component has that this database lacks."""
        for component, steps in migrations.items():
            with self.transaction() as db:
                row = db.execute(
                    "SELECT version FROM schema_versions WHERE component = ?",
                    (component,),
                ).fetchone()
            current = row["version"] if row else 0
            if current > len(steps):
                raise RuntimeError(
                    f"{self.path}: schema of {component!r} is at version {current}, "
                    f"newer than this crid knows ({len(steps)}); refusing to downgrade"
                )
            for version in range(current + 1, len(steps) + 1):
                with self.transaction() as db:
                    for statement in _statements(steps[version - 1]):
                        db.execute(statement)
                    db.execute(
                        "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                        " ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                        (component, version),
                    )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back on error.

        A full disk (SQLITE_FULL, in a statement or at COMMIT) is ``DiskFull``
        naming the database's dir; any other failure of the file or its disk
        (read-only, I/O error) is ``StoreWriteFailed``. SQLite may have rolled
        back already then, so the rollback is only asked for while a
        transaction is open.
        """
        with self._lock:
            db = self._connection
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:  # a failed COMMIT may have rolled back already
                        with contextlib.suppress(sqlite3.Error):  # the first error tells
                            db.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                if is_disk_full(exc):
                    raise disk_full(exc, self.path.parent, f"writing {self.path.name}") from exc
                if not storage_error(exc):
                    raise
                raise StoreWriteFailed(
                    f"cannot write the state database {self.path}: {exc}; nothing of this "
                    "change was kept (check the disk under --root is writable)") from exc

    def submit(self, work: Callable[[], R]) -> concurrent.futures.Future[R]:
        """Queue ``work`` (which writes through ``transaction``) on the writer thread."""
        return self._writer.submit(work)

    async def write(self, work: Callable[[], R]) -> R:
        """Run ``work`` on the writer thread and wait for it. A cancelled caller
        stops waiting, not the write: what was submitted is committed."""
        return await asyncio.shield(asyncio.wrap_future(self.submit(work)))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read and return every row."""
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def schema_version(self, component: str) -> int:
        rows = self.query(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        )
        return int(rows[0]["version"]) if rows else 0

    async def get_meta(self, key: str) -> str | None:
        rows = await asyncio.to_thread(self.query, "SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        def work() -> None:
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
        await self.write(work)

    def close(self) -> None:
        """Finish the queued writes, then close the database."""
        self._writer.shutdown(wait=True)
        with self._lock:
            if self._db is not None:
                self._db.close()


#: SQLite's primary result codes that blame the file or the disk, not a statement.
_STORAGE_CODES = frozenset({
    3,   # SQLITE_PERM
    5,   # SQLITE_BUSY (another process holds the file)
    8,   # SQLITE_READONLY
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    26,  # SQLITE_NOTADB
})


def storage_error(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file or its disk failed (a statement's own error
    says nothing about them)."""
    code = _primary_code(exc)
    # Raised by crid itself (quick_check's findings): no code, about the file.
    return code is None or code in _STORAGE_CODES


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (sqlite3 runs one per call)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()!r}")
