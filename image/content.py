"""The content store: verified blobs by digest (manifests, indexes, configs).

Layout under its root::

    blobs/sha256/<hex>   committed blobs, never modified
    ingest/<random>      blobs being written; removed at start-up

A blob is written to ``ingest/``, then committed: size and digest checked,
fsync'd, renamed into ``blobs/`` and the directory fsync'd, so a reader never
sees a partial blob and a crash leaves only ingest files; a full disk is
``DiskFull`` (RESOURCE_EXHAUSTED) and leaves no ingest file. Layer blobs are not
kept: they are verified and unpacked as they stream (see ``crid.image.unpack``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from crid.image.reference import is_digest

from crid.disk_full import disk_full_under
from crid.errors import InvalidArgument, NotFound


class DigestMismatch(InvalidArgument):
    """Bytes received do not match the size or digest that named them."""


def verify(digest: str, data: bytes, expected_size: int | None = None) -> None:
    if expected_size is not None and len(data) != expected_size:
        raise DigestMismatch(
            f"{digest}: got {len(data)} bytes, the descriptor says {expected_size}"
        )
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise DigestMismatch(f"content does not match its digest: expected {digest}, got {actual}")


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.ingest = root / "ingest"

    def open(self) -> ContentStore:
        """Make the dirs; anything in ingest/ belongs to a write that died with its process."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.ingest, ignore_errors=True)
        self.ingest.mkdir(parents=True, exist_ok=True)
        return self

    def path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise InvalidArgument(f"{digest!r} is not a sha256 digest")
        return self.blobs / digest.removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the content store") from None

    def write(self, digest: str, data: bytes, expected_size: int | None = None) -> None:
        """Verify and commit ``data`` as ``digest`` (a no-op when already present)."""
        verify(digest, data, expected_size)
        target = self.path(digest)
        if target.exists():
            return
        with disk_full_under(self.root, f"storing blob {digest}"):
            fd, temp = tempfile.mkstemp(dir=self.ingest)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.rename(temp, target)
            except BaseException:  # a full disk too: no ingest file is left behind
                Path(temp).unlink(missing_ok=True)
                raise
            fsync_dir(self.blobs)

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> set[str]:
        return {f"sha256:{p.name}" for p in self.blobs.iterdir()}

    def usage(self) -> tuple[int, int]:
        """(bytes, inodes) used by committed blobs."""
        sizes = [p.stat().st_size for p in self.blobs.iterdir()]
        return sum(sizes), len(sizes)


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
