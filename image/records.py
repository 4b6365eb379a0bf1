"""Image records in the state store: what is pulled, under which names.

``ImageRecords`` is the only code that reads or writes the image tables.
Names are full references: tags ``docker.io/library/busybox:latest``,
digests ``docker.io/library/busybox@sha256:...``. A tag names one image at a
time; pulling it again when it moved re-points it and the old image keeps
its other names (or none).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Sequence
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

    def add(self, record: ImageRecord, tags: Iterable[str], digests: Iterable[str]) -> None:
        with self._store.transaction() as db:
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

    def get(self, id_: str) -> ImageRecord | None:
        found = self._load("WHERE id = ?", (id_,))
        return found[0] if found else None

    def all(self) -> list[ImageRecord]:
        return self._load("", ())

    def resolve(
        self, text: str, candidates: Sequence[Reference] | None = None
    ) -> ImageRecord | None:
        """The image ``text`` names: an ID, a tag or a digest reference."""
        by_id = image_id(text)
        if by_id:
            found = self.get(by_id)
            if found:
                return found
        try:
            refs = list(candidates) if candidates is not None else [parse(text)]
        except InvalidArgument:
            return None if by_id else self._by_id_prefix(text)
        for ref in refs:
            name = f"{ref.name}@{ref.digest}" if ref.digest else ref.tagged
            rows = self._store.query("SELECT image_id FROM image_names WHERE name = ?", (name,))
            if rows:
                return self.get(rows[0]["image_id"])
        return self._by_id_prefix(text)

    def _by_id_prefix(self, text: str) -> ImageRecord | None:
        prefix = text.removeprefix("sha256:")
        if len(prefix) < 12 or any(c not in "0123456789abcdef" for c in prefix):
            return None
        found = self._load("WHERE id LIKE ?", (f"sha256:{prefix}%",))
        return found[0] if len(found) == 1 else None

    def remove(self, id_: str) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM images WHERE id = ?", (id_,))

    def set_pinned(self, id_: str, pinned: bool) -> None:
        with self._store.transaction() as db:
            db.execute("UPDATE images SET pinned = ? WHERE id = ?", (int(pinned), id_))

    def add_layer(self, chain_id: str, diff_id: str, size: int, inodes: int, now_ns: int) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO image_layers (chain_id, diff_id, size, inodes, created_ns)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(chain_id) DO NOTHING",
                (chain_id, diff_id, size, inodes, now_ns),
            )

    def layers(self) -> dict[str, tuple[int, int]]:
        """chain ID -> (bytes, inodes) of every recorded layer."""
        rows = self._store.query("SELECT chain_id, size, inodes FROM image_layers")
        return {r["chain_id"]: (r["size"], r["inodes"]) for r in rows}

    def remove_layers(self, chain_ids: Iterable[str]) -> None:
        with self._store.transaction() as db:
            db.executemany("DELETE FROM image_layers WHERE chain_id = ?",
                           [(c,) for c in chain_ids])

    def _load(self, where: str, params: Sequence[Any]) -> list[ImageRecord]:
        rows = self._store.query(f"SELECT * FROM images {where} ORDER BY created_ns, id", params)
        if not rows:
            return []
        names = self._store.query(
            "SELECT name, kind, image_id FROM image_names ORDER BY name"
            if not where else
            f"SELECT name, kind, image_id FROM image_names WHERE image_id IN "
            f"({','.join('?' * len(rows))}) ORDER BY name",
            [] if not where else [r["id"] for r in rows],
        )
        return [_record(row, names) for row in rows]


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
