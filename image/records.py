"""Image records in the state store: what is pulled, under which names.

``ImageRecords`` is the only code that reads or writes the image tables.
Names are full references: tags ``docker.io/library/busybox:latest``,
digests ``docker.io/library/busybox@sha256:...``. A tag names one image at a
time; pulling it again when it moved re-points it and the old image keeps
its other names (or none).

The store's rule (``crid.store``): ImageStatus, ListImages and container
creation read the in-memory copy (every image with its names, and the
layers' sizes), never SQLite, so they cost no I/O on the event loop. The
writes are blocking and made from worker threads (a pull, a collection,
RemoveImage's thread): each runs on the store's writer thread, and the copy
is reloaded there after it commits. Images are few (tens to hundreds) and
change only on pulls and removals, so reloading the images copy whole keeps
it right for ``add``'s merging of names and blobs at little cost.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from crid.image.reference import Reference, image_id, parse

from crid.errors import InvalidArgument
from crid.jsontypes import Json
from crid.store import Store


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    id: str
    manifest_digest: str
    config: str  # the image config JSON, as pulled
    chain_ids: tuple[str, ...]
    blobs: tuple[str, ...]  # content store digests: index, manifest, config
    size: int
    uid: int | None
    username: str
    pinned: bool
    created_ns: int
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()

    @property
    def config_json(self) -> Json:
        value = json.loads(self.config)
        return value if isinstance(value, dict) else {}


def user_of(config: Json) -> tuple[int | None, str]:
    """(uid, username) from the config's ``User`` (``1000``, ``www``, ``1000:50``)."""
    run_config = config.get("config") or {}
    if not isinstance(run_config, dict):
        raise InvalidArgument("image config: config must be an object")
    user = str(run_config.get("User") or "")
    name = user.split(":", 1)[0]
    # ASCII digits only ("²".isdigit() is true) of a uid's size; anything
    # else is a name (a huge number then matches no passwd entry).
    if name.isascii() and name.isdigit() and len(name) <= 10 and int(name) < 2**32 - 1:
        return int(name), ""
    return None, name


class ImageRecords:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._images: dict[str, ImageRecord] | None = None  # id -> record, oldest first
        self._names: dict[str, str] = {}  # name -> image id
        self._layers: dict[str, tuple[int, int]] | None = None  # chain ID -> (bytes, inodes)
        self._generation = 0  # counts reloads of the images copy

    # --- reads (the copy) -----------------------------------------------------------

    def get(self, id_: str) -> ImageRecord | None:
        return self._copy()[0].get(id_)

    def generation(self) -> int:
        """Changes whenever the images copy does: read before the records, a
        write racing the reader only makes its next look miss."""
        return self._generation

    def all(self) -> list[ImageRecord]:
        return list(self._copy()[0].values())

    def resolve(
        self, text: str, candidates: Sequence[Reference] | None = None
    ) -> ImageRecord | None:
        """The image ``text`` names: an ID, a tag or a digest reference."""
        images, names = self._copy()
        by_id = image_id(text)
        if by_id and by_id in images:
            return images[by_id]
        try:
            refs = list(candidates) if candidates is not None else [parse(text)]
        except InvalidArgument:
            return None if by_id else self._by_id_prefix(text)
        for ref in refs:
            name = f"{ref.name}@{ref.digest}" if ref.digest else ref.tagged
            if name in names:
                return images.get(names[name])
        return self._by_id_prefix(text)

    def _by_id_prefix(self, text: str) -> ImageRecord | None:
        prefix = text.removeprefix("sha256:")
        if len(prefix) < 12 or any(c not in "0123456789abcdef" for c in prefix):
            return None
        found = [i for id_, i in self._copy()[0].items() if id_.startswith(f"sha256:{prefix}")]
        return found[0] if len(found) == 1 else None

    def layers(self) -> dict[str, tuple[int, int]]:
        """chain ID -> (bytes, inodes) of every recorded layer."""
        with self._lock:
            if self._layers is None:
                self._layers = self._load_layers()
            return dict(self._layers)

    # --- writes (blocking: from worker threads) --------------------------------------

    def add(self, record: ImageRecord, tags: Iterable[str], digests: Iterable[str]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO images (id, manifest_digest, config, chain_ids, blobs, size, uid,"
                " username, pinned, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest,"
                " blobs = (SELECT json_group_array(value) FROM (SELECT DISTINCT value FROM"
                "   json_each(images.blobs) UNION SELECT value FROM json_each(excluded.blobs))),"
                " pinned = excluded.pinned",
                (record.id, record.manifest_digest, record.config, json.dumps(record.chain_ids),
                 json.dumps(record.blobs), record.size, record.uid, record.username,
                 int(record.pinned), record.created_ns),
            )
            for kind, names in (("tag", tags), ("digest", digests)):
                for name in names:
                    db.execute(
                        "INSERT INTO image_names (name, kind, image_id) VALUES (?, ?, ?)"
                        " ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                        (name, kind, record.id),
                    )
        self._write(work, images=True)

    def remove(self, id_: str) -> None:
        self._write(lambda db: db.execute("DELETE FROM images WHERE id = ?", (id_,)),
                    images=True)

    def add_layer(self, chain_id: str, diff_id: str, size: int, inodes: int, now_ns: int) -> None:
        self._write(lambda db: db.execute(
            "INSERT INTO image_layers (chain_id, diff_id, size, inodes, created_ns)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(chain_id) DO NOTHING",
            (chain_id, diff_id, size, inodes, now_ns)), images=False)

    def remove_layers(self, chain_ids: Iterable[str]) -> None:
        doomed = [(c,) for c in chain_ids]
        if doomed:
            self._write(lambda db: db.executemany(
                "DELETE FROM image_layers WHERE chain_id = ?", doomed), images=False)

    def _write(self, statements: Callable[[sqlite3.Connection], Any], images: bool) -> None:
        """Commit on the store's writer, then reload the part of the copy it changed
        (there too, so copies are reloaded in the order of the writes)."""
        def work() -> None:
            try:
                with self._store.transaction() as db:
                    statements(db)
            finally:  # a failed write reloads too: the copy is what the table holds
                if images:
                    loaded = self._load_images()
                    with self._lock:
                        self._images, self._names = loaded
                        self._generation += 1
                else:
                    layers = self._load_layers()
                    with self._lock:
                        self._layers = layers
        self._store.submit(work).result()

    # --- loading ---------------------------------------------------------------------

    def _copy(self) -> tuple[dict[str, ImageRecord], dict[str, str]]:
        with self._lock:
            if self._images is None:
                self._images, self._names = self._load_images()
            return self._images, self._names

    def _load_images(self) -> tuple[dict[str, ImageRecord], dict[str, str]]:
        rows = self._store.query("SELECT * FROM images ORDER BY created_ns, id")
        names = self._store.query("SELECT name, kind, image_id FROM image_names ORDER BY name")
        images = {row["id"]: _record(row, names) for row in rows}
        return images, {n["name"]: n["image_id"] for n in names}

    def _load_layers(self) -> dict[str, tuple[int, int]]:
        rows = self._store.query("SELECT chain_id, size, inodes FROM image_layers")
        return {r["chain_id"]: (r["size"], r["inodes"]) for r in rows}


def _record(row: sqlite3.Row, names: list[sqlite3.Row]) -> ImageRecord:
    mine = [n for n in names if n["image_id"] == row["id"]]
    return ImageRecord(
        id=row["id"],
        manifest_digest=row["manifest_digest"],
        config=row["config"],
        chain_ids=tuple(json.loads(row["chain_ids"])),
        blobs=tuple(json.loads(row["blobs"])),
        size=row["size"],
        uid=row["uid"],
        username=row["username"],
        pinned=bool(row["pinned"]),
        created_ns=row["created_ns"],
        repo_tags=tuple(n["name"] for n in mine if n["kind"] == "tag"),
        repo_digests=tuple(n["name"] for n in mine if n["kind"] == "digest"),
    )
