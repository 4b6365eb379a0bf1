"""Images: blobs and layers no image references, and images missing theirs.

The content store (``<root>/image/content/blobs/sha256``) and the layers
(``<root>/image/snapshots/<chain>``) should hold exactly what the image
rows name; anything else is left by a pull or removal that died midway
(a pull in flight while the daemon runs is not yet in a row: a check beside
a pulling daemon may name its blobs). The repair is the image store's own
garbage collection: ``ContentStore.delete`` and ``Snapshots.remove`` (which
renames a layer away before deleting it), then the layer rows go; a layer
row whose dir is gone goes too, as start-up's reconciling drops it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from crid.check.findings import Finding
from crid.check.view import View, writable
from crid.image.content import ContentStore
from crid.image.snapshots import TMP_PREFIX, Snapshots


def find(view: View) -> list[Finding]:
    content = ContentStore(view.root / "image" / "content")
    snapshots = Snapshots(view.root / "image" / "snapshots", sync_fs=False)
    found: list[Finding] = []
    if content.blobs.is_dir():
        for digest in sorted(content.digests() - view.image_blobs):
            found.append(Finding("blob-without-image", digest, str(content.path(digest)),
                                 functools.partial(content.delete, digest), "deleted the blob"))
        for digest in sorted(view.image_blobs - content.digests()):
            found.append(Finding("image-blob-missing", digest, "an image names it; not on disk "
                                 "(the daemon drops the image when it next starts)"))
    if snapshots.root.is_dir():
        on_disk = snapshots.committed()
        for chain in sorted(on_disk - view.image_chains):
            found.append(Finding("layer-without-image", chain, str(snapshots.dir(chain).parent),
                                 _layer_remover(view, snapshots, chain), "removed the layer"))
        for chain in sorted(view.image_chains - on_disk):
            found.append(Finding("image-layer-missing", chain, "an image names it; not on disk "
                                 "(the daemon drops the image when it next starts)"))
        for chain in sorted(view.layer_rows - on_disk):
            found.append(Finding("layer-row-without-layer", chain,
                                 "an image_layers row whose dir is gone",
                                 _layer_remover(view, snapshots, chain), "deleted the row"))
        for leftover in sorted(snapshots.root.glob(TMP_PREFIX + "*")):
            found.append(Finding("layer-unpack-leftover", str(leftover),
                                 "an unpack or removal that died midway",
                                 _sweeper(snapshots), "removed the unpack leftovers"))
    return found


def _layer_remover(view: View, snapshots: Snapshots, chain: str) -> Callable[[], None]:
    def repair() -> None:
        snapshots.remove(chain)
        db = writable(view)
        try:
            db.execute("DELETE FROM image_layers WHERE chain_id = ?", (chain,))
        finally:
            db.close()
    return repair


def _sweeper(snapshots: Snapshots) -> Callable[[], None]:
    def repair() -> None:
        snapshots.open()  # drops the temp dirs of unpacks and removals that died
    return repair
