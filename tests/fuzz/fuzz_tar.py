"""Fuzz target: image layers (tar, gzip or zstd) unpacked into a layer dir.

The input is a layer blob as a registry serves it; ``image.unpack.unpack``
decompresses it (told apart by magic bytes), parses the tar headers (ustar,
GNU long names and sparse files, pax records and xattrs) and writes every
entry below an empty dir of its own, whiteouts and opaque dirs as overlayfs
expects them. Nothing may land outside that dir: after each input the
target checks that a sentinel file beside the dir is untouched.

Allowed: crid's typed errors (``UnsafeLayer`` is an InvalidArgument) and
``OSError``: the kernel refusing an entry (a name too long, an xattr the
filesystem will not take) fails the pull, which reports it. Anything else
escaping is a bug, as is an escape from the dir, a hang or memory without
bound.
"""

from __future__ import annotations

import io
import shutil

from crid.image.unpack import unpack

from tests.fuzz.harness import allowing
from tests.fuzz.scratch import directory

SENTINEL = b"outside the layer\n"


def one_input(data: bytes) -> None:
    root = directory() / "tar"
    shutil.rmtree(root, ignore_errors=True)
    layer, sentinel = root / "layer", root / "sentinel"
    layer.mkdir(parents=True)
    sentinel.write_bytes(SENTINEL)
    with allowing(OSError):
        unpack(io.BytesIO(data), layer, umask_zero=False)
    if sorted(p.name for p in root.iterdir()) != ["layer", "sentinel"] \
            or sentinel.read_bytes() != SENTINEL:
        raise AssertionError("the layer wrote outside its dir")

