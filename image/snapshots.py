"""Unpacked layers, one dir per chain ID: the overlay lower dirs.

Layout under its root::

    <chain hex>/fs     a committed layer (an overlay lower dir), never modified
    tmp-<random>/fs    a layer being unpacked; removed at start-up

A layer is unpacked into a ``tmp-`` dir and renamed to its chain ID only once
its digests are verified, so a committed dir is always complete: after a
crash, and after a power loss too with ``sync_fs`` (the default), which
flushes the layer's files to disk with one syncfs(2) of their filesystem
before the rename (cheaper than an fsync per file: one call per layer, and
the kernel writes back in its own order). A disk that fills up mid-unpack
leaves only the ``tmp-`` dir, removed at once. One lock per chain ID: two pulls
sharing a layer unpack it once, the second waits.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from crid.image.content import fsync_dir
from crid.image.reference import is_digest
from crid.oci.linux import Syscalls, syscalls

from crid.disk_full import disk_full_under

TMP_PREFIX = "tmp-"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI chain IDs: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


class Snapshots:
    def __init__(self, root: Path, *, sync_fs: bool = True,
                 kernel: Syscalls | None = None) -> None:
        self.root = root
        self.sync_fs = sync_fs
        self._kernel = kernel
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def open(self) -> Snapshots:
        """Make the root; drop the temp dirs of unpacks that died with their process."""
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(TMP_PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)
        return self

    def dir(self, chain_id: str) -> Path:
        """The layer's overlay lower dir."""
        if not is_digest(chain_id):
            raise ValueError(f"{chain_id!r} is not a chain ID")
        return self.root / chain_id.removeprefix("sha256:") / "fs"

    def exists(self, chain_id: str) -> bool:
        return self.dir(chain_id).is_dir()

    @contextlib.contextmanager
    def lock(self, chain_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(chain_id, threading.Lock())
        with lock:
            yield

    @contextlib.contextmanager
    def prepare(self, chain_id: str) -> Iterator[Path]:
        """An empty dir to unpack into; committed when the block ends without error.

        A full disk, here or in the block, is ``DiskFull`` naming this root.
        """
        with disk_full_under(self.root, f"unpacking layer {chain_id}"):
            staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.root))
            try:
                fs = staging / "fs"
                fs.mkdir(mode=0o755)
                yield fs
                if self.sync_fs:
                    (self._kernel or syscalls()).syncfs(str(fs))
                final = self.dir(chain_id).parent
                os.rename(staging, final)
                fsync_dir(self.root)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)

    def remove(self, chain_id: str) -> None:
        doomed = self.retire(chain_id)
        if doomed is not None:
            shutil.rmtree(doomed, ignore_errors=True)

    def retire(self, chain_id: str) -> Path | None:
        """Take the layer out of the store (a rename); the caller deletes the dir
        returned, maybe after letting others at the store again: its files take
        long to unlink (tens of ms for a few hundred under load). None when the
        layer is not there."""
        target = self.dir(chain_id).parent
        if not target.exists():
            return None
        # Rename first: a crash mid-delete leaves a tmp- dir, never half a layer.
        # A name of its own: the same layer may be pulled and retired again
        # while an earlier copy of it is still being deleted.
        doomed = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}rm-", dir=self.root)) / target.name
        os.rename(target, doomed)
        return doomed.parent

    def committed(self) -> set[str]:
        return {f"sha256:{p.name}" for p in self.root.iterdir()
                if not p.name.startswith(TMP_PREFIX)}

