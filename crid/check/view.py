"""What ``crid check`` compares against: the store's rows, read read-only.

The database is opened with SQLite's ``mode=ro`` URI, so a check never
writes a row, never takes the daemon's flock and works beside a running
daemon (WAL readers do not block the writer) as well as after it stopped;
SQLite may make the empty ``-wal``/``-shm`` companions a WAL reader needs,
with the file's own mode. Rows are
copied into plain values once; the kinds of findings only read them.
``exclusive`` holds the root's lock file for a repair, when no daemon has it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from crid.config import Config

DATABASE = "crid.db"  # as crid.wiring names it
LOCK_FILE = "crid.lock"
COMPONENTS = frozenset({"crid", "sandbox", "containers", "image"})  # as crid.wiring migrates


@dataclasses.dataclass(frozen=True)
class Pod:
    id: str
    state: str
    pod_dir: str
    namespaces: Mapping[str, str]
    cgroup_parent: str
    cgroup_owned: bool


@dataclasses.dataclass(frozen=True)
class Container:
    id: str
    pod_id: str
    state: str
    handler: str
    monitor_pid: int
    bundle: str
    layer_dir: str


@dataclasses.dataclass(frozen=True)
class View:
    config: Config
    pods: Mapping[str, Pod]
    containers: Mapping[str, Container]
    image_blobs: frozenset[str]   # every blob some image names
    image_chains: frozenset[str]  # every layer (chain ID) some image names
    layer_rows: frozenset[str]    # the image_layers rows
    # A database every table of which a daemon made: repairs act only then
    # (against a missing or truncated store everything would look leaked).
    store_ok: bool = True

    @property
    def root(self) -> Path:
        return Path(self.config.root)

    @property
    def runroot(self) -> Path:
        return Path(self.config.runroot)

    @property
    def database(self) -> Path:
        return self.root / DATABASE


def load(config: Config) -> View:
    """The store's rows; none, and ``store_ok`` false, when there is no whole store."""
    path = Path(config.root) / DATABASE
    nothing = View(config, {}, {}, frozenset(), frozenset(), frozenset(), store_ok=False)
    if not path.exists():
        return nothing
    with _read_only(path) as db:
        made = {row["component"] for row in _rows(db, "SELECT component FROM schema_versions")}
        if not made >= COMPONENTS:
            return nothing
        pods = {row["id"]: Pod(row["id"], row["state"], row["pod_dir"],
                               json.loads(row["namespaces"]), row["cgroup_parent"],
                               bool(row["cgroup_owned"]))
                for row in _rows(db, "SELECT * FROM sandboxes")}
        containers = {row["id"]: Container(row["id"], row["pod_id"], row["state"],
                                           row["handler"], int(row["monitor_pid"]),
                                           row["bundle"], row["layer_dir"])
                      for row in _rows(db, "SELECT * FROM containers")}
        images = _rows(db, "SELECT chain_ids, blobs FROM images")
        layers = {row["chain_id"] for row in _rows(db, "SELECT chain_id FROM image_layers")}
    chains = {c for row in images for c in json.loads(row["chain_ids"])}
    blobs = {b for row in images for b in json.loads(row["blobs"])}
    return View(config, pods, containers, frozenset(blobs), frozenset(chains), frozenset(layers))


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN")  # one snapshot for every table
        yield db
    finally:
        db.close()


def _rows(db: sqlite3.Connection, sql: str) -> list[Any]:
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a file no daemon has made a store of
            return []
        raise


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[bool]:
    """Hold the root's lock while repairing, so no daemon starts meanwhile;
    yields False (holding nothing) when a daemon has it."""
    path = root / LOCK_FILE
    if not path.exists():
        yield True
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def writable(view: View) -> sqlite3.Connection:
    """The store opened for writing, for repairs (only while holding ``exclusive``)."""
    db = sqlite3.connect(view.database, isolation_level=None, timeout=30)
    db.row_factory = sqlite3.Row
    return db
