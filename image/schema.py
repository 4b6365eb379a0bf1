"""The image component's tables (append-only migrations for ``crid.store``).

``images``: one row per image (ID = config digest), with the config JSON
for ImageStatus and container creation, and the chain IDs of its layers.
``image_names``: repo tags (``name:tag``) and repo digests
(``name@sha256:...``), each pointing at one image. ``image_layers``: the
committed overlay lower dirs, with the space they use.
"""

from __future__ import annotations

from collections.abc import Sequence

MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE images (
        id              TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        config          TEXT NOT NULL,
        chain_ids       TEXT NOT NULL,
        blobs           TEXT NOT NULL,
        size            INTEGER NOT NULL,
        uid             INTEGER,
        username        TEXT NOT NULL,
        pinned          INTEGER NOT NULL DEFAULT 0,
        created_ns      INTEGER NOT NULL
    );
    CREATE TABLE image_names (
        name     TEXT PRIMARY KEY,
        kind     TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX image_names_by_image ON image_names(image_id);
    CREATE TABLE image_layers (
        chain_id   TEXT PRIMARY KEY,
        diff_id    TEXT NOT NULL,
        size       INTEGER NOT NULL,
        inodes     INTEGER NOT NULL,
        created_ns INTEGER NOT NULL
    );
    """,
)
