"""The result cache: what ADD returned, kept for DEL and CHECK.

DEL must run with the configuration ADD used (the conf dir may have changed
since) and, from CNI 0.4.0 on, with ADD's result as ``prevResult``. A pod
has one attachment, kept as ``<pod id>.json`` under the cache dir, written
atomically: through ``<pod id>.tmp``, which a crash mid-write leaves behind
and ``delete`` removes with the entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

from crid.jsontypes import Json


@dataclasses.dataclass(frozen=True)
class Entry:
    network: str
    config: str  # the network list as JSON
    ifname: str
    cni_args: str
    capability_args: Json
    result: Json


class ResultCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, pod_id: str) -> Path:
        return self.directory / f"{pod_id}.json"

    def temp_path(self, pod_id: str) -> Path:
        return self.directory / f"{pod_id}.tmp"

    def put(self, pod_id: str, entry: Entry) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(pod_id)
        temp = self.temp_path(pod_id)
        temp.write_text(json.dumps(dataclasses.asdict(entry)))
        os.replace(temp, path)

    def get(self, pod_id: str) -> Entry | None:
        try:
            tree = json.loads(self._path(pod_id).read_text())
            return Entry(**tree)
        except (OSError, ValueError, TypeError):
            return None

    def delete(self, pod_id: str) -> None:
        for path in (self._path(pod_id), self.temp_path(pod_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

