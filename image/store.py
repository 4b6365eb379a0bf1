"""The image store: pulls, lookups, removal and disk usage, behind the CRI calls.

Owns the image side of the root dir (``<root>/image/{content,snapshots}``)
and the pull bookkeeping: concurrent pulls of the same reference (and
credentials) share one download; pulls run in worker threads (and layers
unpack in child processes, two of them kept started while pulls come), never
on the event loop; bytes, failures and
pulls in flight go to the metrics and progress to the log. Removal deletes the record, then every
blob and layer no image references any more.

``in_use(image_id)`` is the hook the container code sets so that removing
an image a container uses fails with FAILED_PRECONDITION; until containers
exist it answers "no".
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crid.image.auth import Credentials
from crid.image.content import ContentStore
from crid.image.pull import Platform, Puller, Settings
from crid.image.records import ImageRecord, ImageRecords
from crid.image.reference import Reference, parse
from crid.image.registries import Loaded
from crid.image.registry_client import Transport
from crid.image.snapshots import Snapshots
from crid.image.unpack_worker import Unpackers

from crid import logs
from crid.clock import Clock
from crid.config import Config
from crid.errors import CridError, FailedPrecondition
from crid.metrics import Metrics
from crid.store import Store

log = logs.get("crid.image")
PROGRESS_LOG_SECONDS = 5.0
SPARE_UNPACKERS = 2


@dataclasses.dataclass(frozen=True)
class FsUsage:
    mountpoint: str
    used_bytes: int
    inodes_used: int
    timestamp_ns: int


class _PullLog:
    """The Observer of one pull: metrics for bytes, log lines for events."""

    def __init__(self, metrics: Metrics, reference: str) -> None:
        self.metrics = metrics
        self.reference = reference
        self.received = 0
        self._last_log = time.monotonic()

    def bytes(self, count: int) -> None:
        self.received += count
        self.metrics.image_pull_bytes.inc(count)
        if time.monotonic() - self._last_log >= PROGRESS_LOG_SECONDS:
            self._last_log = time.monotonic()
            log.info("pull progress", image=self.reference, bytes=self.received)

    def event(self, message: str, **fields: Any) -> None:
        log.info(message, image=self.reference, **fields)


class ImageStore:
    def __init__(self, config: Config, store: Store, metrics: Metrics, clock: Clock,
                 in_use: Callable[[str], bool] | None = None) -> None:
        self.config = config
        self.root = Path(config.root) / "image"
        self.metrics = metrics
        self.clock = clock
        self.in_use: Callable[[str], bool] = in_use or (lambda _image_id: False)
        self.content = ContentStore(self.root / "content")
        self.snapshots = Snapshots(self.root / "snapshots", sync_fs=config.pull_with_sync_fs)
        self.records = ImageRecords(store)
        self.transport = Transport(float(config.pull_progress_timeout))
        # Two spares: critest pulls two at a time, and kubelet's pulls come in bursts.
        self.unpackers = Unpackers(spares=SPARE_UNPACKERS)
        self.puller = Puller(
            Settings(
                registries_conf=Path(config.registries_conf),
                auth_file=Path(config.auth_file) if config.auth_file else None,
                parallel=config.max_parallel_downloads,
                platform=Platform.host(),
                pinned=tuple(config.pinned_images),
                max_image_bytes=config.max_image_bytes,
            ),
            self.content, self.snapshots, self.records, self.transport, clock.now_ns,
            self.unpackers,
        )
        self._pulls: dict[tuple[str, bool, Credentials | None],
                          asyncio.Future[ImageRecord]] = {}
        self._registries = Loaded(Path(config.registries_conf))

    def open(self) -> None:
        """Make the content and snapshot dirs, then reconcile them with the records
        (the store must be open): after a crash, drop layer dirs without rows and
        rows without dirs."""
        self.transport.open()
        self.unpackers.open()
        self.content.open()
        self.snapshots.open()
        recorded = self.records.layers()
        on_disk = self.snapshots.committed()
        for chain in on_disk - recorded.keys():
            self.snapshots.remove(chain)
        self.records.remove_layers(recorded.keys() - on_disk)
        for image in self.records.all():
            if not set(image.chain_ids) <= on_disk or not all(map(self.content.has, image.blobs)):
                log.warning("dropping incomplete image", image_id=image.id)
                self.records.remove(image.id)
        self._collect()

    def close(self) -> None:
        self.transport.close()
        self.unpackers.close()

    def candidates(self, text: str) -> list[Reference]:
        return self._registries.get().candidates(parse(text))

    async def pull(self, text: str, credentials: Credentials | None) -> ImageRecord:
        ref = parse(text)
        # A short name may go elsewhere (search registries) than its docker.io spelling.
        key = (str(ref), ref.qualified, credentials)
        shared = self._pulls.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._pull(text, credentials))
            self._pulls[key] = shared
            shared.add_done_callback(lambda _f: self._pulls.pop(key, None))
        # shield: one caller giving up does not cancel the others' download.
        return await asyncio.shield(shared)

    async def _pull(self, reference: str, credentials: Credentials | None) -> ImageRecord:
        observer = _PullLog(self.metrics, reference)
        started = self.clock.monotonic()
        self.metrics.image_pulls_in_progress.inc()
        log.info("pull started", image=reference)
        self.unpackers.expect_pulls()  # a spare starts while the manifest is fetched
        try:
            record = await asyncio.to_thread(self.puller.pull, reference, credentials, observer)
        except BaseException as exc:
            self.metrics.image_pull_failures.inc()
            log.warning("pull failed", image=reference, error=getattr(exc, "message", str(exc)))
            raise
        finally:
            self.metrics.image_pulls_in_progress.dec()
        log.info("pull done", image=reference, image_id=record.id, bytes=observer.received,
                 layers=len(record.chain_ids),
                 seconds=round(self.clock.monotonic() - started, 3))
        return record

    def status(self, text: str) -> ImageRecord | None:
        try:
            candidates = self.candidates(text)
        except CridError:  # an unparsable name may still be an ID prefix
            candidates = []
        return self.records.resolve(text, candidates)

    def all(self) -> list[ImageRecord]:
        return self.records.all()

    async def remove(self, text: str) -> None:
        """Remove the image ``text`` names, with all its names; gone already is fine."""
        record = self.status(text)
        if record is None:
            return
        if self.in_use(record.id):
            raise FailedPrecondition(
                f"image {record.id} ({', '.join(record.repo_tags) or 'untagged'}) is in use "
                "by a container; remove the container first")
        await asyncio.to_thread(self._remove, record.id)
        log.info("image removed", image_id=record.id, names=[*record.repo_tags,
                                                            *record.repo_digests])

    def _remove(self, image_id: str) -> None:
        self.records.remove(image_id)
        self._collect()

    def _collect(self) -> None:
        """Delete blobs and layers that no image references (and no pull is using).
        The layers' files are unlinked once pulls (and other removals) may go on:
        taken out of the store under the guard, they are nobody's any more."""
        with self.puller.guard:
            images = self.records.all()
            blobs = {b for image in images for b in image.blobs}
            chains = {c for image in images for c in image.chain_ids}
            busy = self.puller.active()
            for digest in self.content.digests() - blobs:
                self.content.delete(digest)
            unused = self.snapshots.committed() - chains - busy
            doomed = [self.snapshots.retire(chain) for chain in unused]
            self.records.remove_layers(unused)
        for path in doomed:
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    def lower_dirs(self, image_id: str) -> list[Path]:
        """The overlay lower dirs of an image, top layer first (for ``lowerdir=``)."""
        record = self.records.get(image_id)
        if record is None:
            return []
        return [self.snapshots.dir(c) for c in reversed(record.chain_ids)]

    def image_fs_usage(self) -> FsUsage:
        layers = self.records.layers()
        blob_bytes, blob_inodes = self.content.usage()
        return FsUsage(
            mountpoint=str(self.root),
            used_bytes=blob_bytes + sum(size for size, _ in layers.values()),
            inodes_used=blob_inodes + sum(inodes for _, inodes in layers.values()),
            timestamp_ns=self.clock.now_ns(),
        )

    def container_fs_usage(self, directory: Path) -> FsUsage:
        """What ``directory`` (container writable layers) holds; walks it."""
        used, inodes = 0, 0
        for dirpath, dirnames, filenames in os.walk(directory):
            for name in (*dirnames, *filenames):
                try:
                    info = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                used += info.st_blocks * 512
                inodes += 1
        return FsUsage(str(directory), used, inodes, self.clock.now_ns())
