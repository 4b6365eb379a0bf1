"""The pod sandbox tables (component ``sandbox``); append-only migrations."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sandboxes (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        namespace       TEXT NOT NULL,
        uid             TEXT NOT NULL,
        attempt         INTEGER NOT NULL,
        state           TEXT NOT NULL,
        created_ns      INTEGER NOT NULL,
        runtime_handler TEXT NOT NULL,
        config          BLOB NOT NULL,
        pod_dir         TEXT NOT NULL,
        namespaces      TEXT NOT NULL,
        shm             TEXT NOT NULL,
        cgroup_parent   TEXT NOT NULL,
        infra           TEXT NOT NULL,
        ips             TEXT NOT NULL,
        network_pending INTEGER NOT NULL,
        cgroup_owned    INTEGER NOT NULL,
        UNIQUE (name, namespace, uid, attempt)
    );
    """,
)
