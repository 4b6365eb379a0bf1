"""Refusing a state database that was lost while the node still holds state.

SQLite opens a missing or zero-length file as a new, empty database. If
crid's file was deleted or truncated to nothing while pods ran, starting on
it would report no pods and no containers, and the start-up cleanup would
then remove the bundles of running containers as leftovers of unfinished
creates. So when the store was new (``Store.was_empty``), the dirs that
only exist while crid has something (pod dirs, container bundles, exit
files, unpacked layers) are looked at first: anything in them means state
was lost, and crid refuses to start, naming the file and what to do.
(A file damaged but not empty is refused by ``crid.store`` itself.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from crid.store import Store, StoreUnusable


def refuse_if_lost(store: Store, evidence: Sequence[Path], runroot: Path) -> None:
    """Raise ``StoreUnusable`` when ``store`` was new but ``evidence`` dirs hold entries."""
    if not store.was_empty:
        return
    found = [f"{path} ({count})" for path in evidence if (count := entries(path))]
    if not found:
        return
    raise StoreUnusable(
        f"the state database {store.path} is missing or empty, but the node holds state "
        f"it should record: {', '.join(found)}. It was deleted or truncated; crid will not "
        "start on an empty state while pods and containers exist. Restore the file (with "
        "its -wal) from a backup, or to start over, stop those containers and move "
        f"{runroot} and the root dir aside")


def entries(path: Path) -> int:
    """How many entries ``path`` holds, not counting ones being made (``tmp-``)."""
    try:
        with os.scandir(path) as found:
            return sum(1 for entry in found if not entry.name.startswith("tmp-"))
    except (FileNotFoundError, NotADirectoryError):
        return 0
