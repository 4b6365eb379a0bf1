"""The containers table. Append-only: a change is a new migration."""

MIGRATIONS = (
    """
    CREATE TABLE containers (
        id           TEXT PRIMARY KEY,
        pod_id       TEXT NOT NULL,
        name         TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        state        TEXT NOT NULL,
        created_ns   INTEGER NOT NULL,
        started_ns   INTEGER NOT NULL DEFAULT 0,
        finished_ns  INTEGER NOT NULL DEFAULT 0,
        exit_code    INTEGER NOT NULL DEFAULT 0,
        reason       TEXT NOT NULL DEFAULT '',
        message      TEXT NOT NULL DEFAULT '',
        pid          INTEGER NOT NULL DEFAULT 0,
        monitor_pid  INTEGER NOT NULL DEFAULT 0,
        handler      TEXT NOT NULL,
        image        TEXT NOT NULL,
        image_ref    TEXT NOT NULL,
        image_id     TEXT NOT NULL,
        config       BLOB NOT NULL,
        resources    BLOB NOT NULL,
        log_path     TEXT NOT NULL,
        bundle       TEXT NOT NULL,
        layer_dir    TEXT NOT NULL,
        user_json    TEXT NOT NULL,
        stop_signal  TEXT NOT NULL,
        UNIQUE (pod_id, name, attempt)
    );
    CREATE INDEX containers_pod ON containers (pod_id);
    CREATE INDEX containers_image ON containers (image_id);
    """,
)
