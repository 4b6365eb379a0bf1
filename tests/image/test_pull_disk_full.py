"""A pull that runs out of disk while storing its manifests and config keeps none of them."""

import hashlib
from pathlib import Path

import pytest
from crid.image.pull import CONFIG_TYPES
from crid.image.reference import parse
from crid.image.registry_client import OCI_MANIFEST, Descriptor, Manifest

from crid.errors import DiskFull
from tests.image.test_store import CONFIG, IMAGE_ID, service


def test_a_full_disk_between_two_blobs_leaves_neither(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    images = service(tmp_path)
    body = b'{"schemaVersion": 2}'
    manifest = Manifest("sha256:" + hashlib.sha256(body).hexdigest(), OCI_MANIFEST, body, {})
    config = Descriptor(CONFIG_TYPES[0], IMAGE_ID, len(CONFIG))
    write = images.content.write

    def full_at_the_config(digest: str, data: bytes, size: int | None = None) -> None:
        if digest == IMAGE_ID:
            raise DiskFull("storing blob: no space left on device")
        write(digest, data, size)

    monkeypatch.setattr(images.content, "write", full_at_the_config)
    with pytest.raises(DiskFull):
        images.puller._commit(parse("app:1"), manifest, manifest, config, CONFIG,
                              {}, [], [])
    assert images.content.digests() == set()  # the manifest went in, and out again
    assert images.status("app:1") is None
    monkeypatch.undo()
    record = images.puller._commit(parse("app:1"), manifest, manifest, config, CONFIG, {}, [], [])
    assert images.content.digests() == {manifest.digest, IMAGE_ID}
    assert images.status("app:1") == record
