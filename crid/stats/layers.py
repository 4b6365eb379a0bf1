"""Writable-layer usage: bytes and inodes of each container's upper dir.

Walking a tree costs time proportional to its size, so no stats call does
it: a background task walks every container's layer in a thread every
``interval`` seconds and the calls read the cached numbers. Bytes are
allocated blocks (what ``du`` reports), inodes count every entry once (hard
links included once). The filesystem's size and free inodes are one statfs,
read in the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from crid import logs

log = logs.get("crid.stats")


@dataclasses.dataclass(frozen=True)
class LayerUsage:
    used_bytes: int
    inodes: int
    at_ns: int


@dataclasses.dataclass(frozen=True)
class FsSpace:
    limit_bytes: int  # the filesystem's size: what the layer could grow to
    inodes_free: int


def space(path: Path) -> FsSpace | None:
    """The filesystem holding ``path``; None once it is gone."""
    try:
        found = os.statvfs(path)
    except OSError:
        return None
    return FsSpace(found.f_blocks * found.f_frsize, found.f_favail)


def measure(top: Path) -> tuple[int, int]:
    """(bytes allocated, inodes) under ``top``, not following symlinks or mounts."""
    seen: set[tuple[int, int]] = set()
    used = inodes = 0
    try:
        device = os.lstat(top).st_dev
    except FileNotFoundError:
        return 0, 0
    pending = [str(top)]
    while pending:
        directory = pending.pop()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError), \
                os.scandir(directory) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                used += info.st_blocks * 512
                inodes += 1
                if entry.is_dir(follow_symlinks=False) and info.st_dev == device:
                    pending.append(entry.path)
    return used, inodes


class LayerCache:
    """Cached usage per container id, refreshed by ``run`` in the background."""

    def __init__(self, layers: Callable[[], Iterable[tuple[str, Path]]],
                 now_ns: Callable[[], int], interval: float) -> None:
        self._layers = layers  # (container id, upper dir) of every container
        self._now_ns = now_ns
        self.interval = interval
        self._usage: dict[str, LayerUsage] = {}

    def get(self, container_id: str) -> LayerUsage | None:
        return self._usage.get(container_id)

    def measure_one(self, container_id: str, upper: Path) -> None:
        """Measure one layer now (blocking): a new container need not wait a pass."""
        used, inodes = measure(upper)
        self._usage = {**self._usage, container_id: LayerUsage(used, inodes, self._now_ns())}

    def refresh(self) -> None:
        """One pass over every layer (blocking: call in a thread)."""
        fresh: dict[str, LayerUsage] = {}
        for container_id, upper in list(self._layers()):
            used, inodes = measure(upper)
            fresh[container_id] = LayerUsage(used, inodes, self._now_ns())
        self._usage = fresh

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a layer removed mid-walk must not end the task
                log.exception("writable layer usage refresh failed")
            await asyncio.sleep(self.interval)
