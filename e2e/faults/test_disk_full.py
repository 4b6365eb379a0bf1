"""The root dir on a small ext4 that fills up mid-pull and mid-create.

The CRI call fails with RESOURCE_EXHAUSTED naming the filesystem's dir, no
blob, layer, temp dir, mount, bundle or row of the failed call is left, and
the same call works once the space is freed.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.helpers import create, status
from e2e.fixtures.daemon import CridDaemon, mounts_under, remove_workdir
from e2e.fixtures.images import Image, RunConfig, busybox_image, push
from e2e.fixtures.layers import File, busybox_layer, make_layer
from e2e.fixtures.registry import Registry
from e2e.fixtures.small_fs import SmallFs, small_ext4
from e2e.image.test_hostile import assert_nothing_stored
from e2e.image.test_pull import chain_ids, layer_dir, pull
from e2e.image.test_pull import status as image_status
from e2e.sandbox.pods import PodNet, namespace_options, pod_config, remove_all_pods, run_pod

BIG = 8 << 20  # incompressible: it takes that much room when unpacked, and on the wire


@pytest.fixture
def small_root() -> Iterator[tuple[CridDaemon, SmallFs]]:
    """A daemon whose --root is a 96 MiB ext4 of its own."""
    net = PodNet()
    workdir = Path(tempfile.mkdtemp(prefix="crid-full-", dir="/tmp"))
    daemon = CridDaemon(workdir, config_toml=net.config_toml())
    try:
        with small_ext4(daemon.root) as fs:
            try:
                daemon.start()
                yield daemon, fs
            finally:
                fs.free()  # so that stopping and removing can write what they must
                if daemon.process is not None:
                    with contextlib.suppress(Exception):
                        remove_all_pods(daemon)
                    daemon.stop()
    finally:
        remove_workdir(workdir)
        net.cleanup()


def big_image() -> tuple[Image, bytes]:
    data = random.Random(20).randbytes(BIG)
    return Image((busybox_layer(), make_layer([File("/big", data)]))), data


def test_a_disk_that_fills_mid_pull(small_root: tuple[CridDaemon, SmallFs],
                                    registry: Registry) -> None:
    daemon, fs = small_root
    image, data = big_image()
    pushed = push(registry, "e2e/faults-big", "1", image)
    fs.fill(leave=4 << 20)  # room for busybox, not for /big

    with pytest.raises(grpc.RpcError) as caught:
        pull(daemon, pushed.reference)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = str(caught.value.details())
    assert f"on the filesystem under {daemon.root}" in details, details
    assert "free space there and retry" in details
    assert not image_status(daemon, pushed.reference).HasField("image")
    assert_nothing_stored(daemon)  # no blob, no layer (busybox's neither), no temp file

    fs.free()
    assert pull(daemon, pushed.reference) == pushed.image_id
    top = chain_ids(daemon, pushed.reference)[-1]
    assert (layer_dir(daemon, top) / "big").read_bytes() == data


def test_a_disk_that_fills_mid_create(small_root: tuple[CridDaemon, SmallFs],
                                      registry: Registry) -> None:
    daemon, fs = small_root
    pushed = push(registry, "e2e/faults-busybox", "1", busybox_image())
    pull(daemon, pushed.reference)
    sandbox = pod_config(linux=namespace_options(network=api_pb2.NODE))
    pod_id = run_pod(daemon, sandbox)
    fs.fill()

    def leftovers() -> dict[str, list[str]]:
        return {
            "bundles": sorted(p.name for p in (daemon.runroot / "containers").glob("*")),
            "layers": sorted(p.name for p in (daemon.root / "containers").glob("*")),
            "mounts": [m for m in mounts_under(daemon.runroot) + mounts_under(daemon.root)
                       if m != str(daemon.root.resolve())],
            "rows": [c.id for c in daemon.runtime.ListContainers(
                api_pb2.ListContainersRequest()).containers],
        }

    before = leftovers()
    with pytest.raises(grpc.RpcError) as caught:
        create(daemon, pod_id, sandbox, pushed.reference, command=["/bin/sleep", "60"])
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = str(caught.value.details())
    assert f"no space left on device on the filesystem under {daemon.root}" in details, details
    assert leftovers() == before

    fs.free()
    container_id = create(daemon, pod_id, sandbox, pushed.reference,
                          command=["/bin/sleep", "60"])
    assert status(daemon, container_id).state == api_pb2.CONTAINER_CREATED


def test_a_disk_full_when_the_manifest_and_config_are_stored(
        small_root: tuple[CridDaemon, SmallFs], registry: Registry) -> None:
    daemon, fs = small_root
    first = push(registry, "e2e/faults-first", "1", busybox_image())
    pull(daemon, first.reference)
    blobs = daemon.root / "image" / "content" / "blobs" / "sha256"
    before = sorted(p.name for p in blobs.iterdir())
    # The same layer: nothing to unpack, only a manifest and a config to store.
    second = push(registry, "e2e/faults-second", "1",
                  busybox_image(config=RunConfig(labels={"second": "yes"})))
    fs.fill()

    with pytest.raises(grpc.RpcError) as caught:
        pull(daemon, second.reference)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = str(caught.value.details())
    assert ("no space left on device on the filesystem under "
            f"{daemon.root / 'image' / 'content'}") in details, details
    assert sorted(p.name for p in blobs.iterdir()) == before
    assert list((daemon.root / "image" / "content" / "ingest").iterdir()) == []
    assert not image_status(daemon, second.reference).HasField("image")

    fs.free()
    assert pull(daemon, second.reference) == second.image_id
