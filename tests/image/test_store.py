"""The image store's bookkeeping against a real store in a temp root."""

import asyncio
import dataclasses
import hashlib
from pathlib import Path

import pytest
from crid.image import schema
from crid.image.records import ImageRecord, user_of
from crid.image.store import ImageStore

from crid.clock import Clock
from crid.config import Config
from crid.errors import FailedPrecondition
from crid.metrics import Metrics
from crid.store import Store

CHAIN = "sha256:" + "a" * 64
CONFIG = b'{"config": {"User": "www-data"}, "rootfs": {"diff_ids": []}}'
IMAGE_ID = "sha256:" + hashlib.sha256(CONFIG).hexdigest()


def service(root: Path) -> ImageStore:
    config = dataclasses.replace(Config(), root=str(root),
                                 registries_conf=str(root / "registries.conf"))
    store = Store(root / "crid.db", migrations={"image": schema.MIGRATIONS}).open()
    images = ImageStore(config, store, Metrics(), Clock())
    images.open()
    return images


def add_image(images: ImageStore) -> None:
    images.content.write(IMAGE_ID, CONFIG)
    with images.snapshots.prepare(CHAIN) as fs:
        (fs / "file").write_text("x")
    images.records.add_layer(CHAIN, CHAIN, 1, 1, 0)
    record = ImageRecord(id=IMAGE_ID, manifest_digest=IMAGE_ID, config=CONFIG.decode(),
                         chain_ids=(CHAIN,), blobs=(IMAGE_ID,), size=1, uid=None,
                         username="www-data", pinned=False, created_ns=1)
    images.records.add(record, ["docker.io/library/app:1"], [f"docker.io/library/app@{CHAIN}"])


def test_lookup_by_id_prefix_tag_short_name_and_digest(tmp_path: Path) -> None:
    images = service(tmp_path)
    add_image(images)
    for name in (IMAGE_ID, IMAGE_ID[7:], IMAGE_ID[7:19], "app:1", "docker.io/library/app:1",
                 f"app@{CHAIN}"):
        found = images.status(name)
        assert found is not None and found.id == IMAGE_ID, name
    assert images.status("app:2") is None
    assert images.status(IMAGE_ID[7:15]) is None  # too short to be an ID prefix
    assert images.lower_dirs(IMAGE_ID) == [images.snapshots.dir(CHAIN)]


def test_remove_refused_while_in_use_then_collects(tmp_path: Path) -> None:
    images = service(tmp_path)
    add_image(images)
    images.in_use = lambda image_id: image_id == IMAGE_ID
    with pytest.raises(FailedPrecondition, match="in use"):
        asyncio.run(images.remove("app:1"))
    assert images.snapshots.exists(CHAIN)
    images.in_use = lambda image_id: False
    asyncio.run(images.remove("app:1"))
    assert images.status(IMAGE_ID) is None
    assert not images.snapshots.exists(CHAIN)
    assert images.content.digests() == set()
    assert images.records.layers() == {}
    asyncio.run(images.remove("app:1"))  # gone already: fine


def test_start_up_drops_what_a_crash_left(tmp_path: Path) -> None:
    images = service(tmp_path)
    add_image(images)
    orphan = "sha256:" + "b" * 64
    with images.snapshots.prepare(orphan) as fs:
        (fs / "half").write_text("x")  # committed dir, but no row: killed before the insert
    (images.snapshots.root / "tmp-leftover" / "fs").mkdir(parents=True)
    (images.content.ingest / "partial").write_bytes(b"x")
    again = service(tmp_path)
    assert again.snapshots.committed() == {CHAIN}
    assert list(again.content.ingest.iterdir()) == []
    assert not (again.snapshots.root / "tmp-leftover").exists()
    assert again.status("app:1") is not None


def test_fs_usage_counts_layers_and_blobs(tmp_path: Path) -> None:
    images = service(tmp_path)
    add_image(images)
    usage = images.image_fs_usage()
    assert (usage.used_bytes, usage.inodes_used) == (1 + len(CONFIG), 1 + 1)
    assert usage.mountpoint == str(tmp_path / "image")


@pytest.mark.parametrize(("user", "expected"), [
    ("", (None, "")), ("1000", (1000, "")), ("1000:50", (1000, "")),
    ("www-data", (None, "www-data")), ("www-data:1004", (None, "www-data")),
])
def test_user_of(user: str, expected: tuple[int | None, str]) -> None:
    assert user_of({"config": {"User": user}}) == expected
