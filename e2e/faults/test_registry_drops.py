"""A real registry behind a proxy that drops the connection mid-blob.

crid resumes with ``Range`` where the registry allows it, reads the blob
again from the start where it does not, and gives up with UNAVAILABLE after
a bounded number of attempts that bring no byte; no partial blob or layer is
ever kept, and the same pull works once the registry behaves.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator

import grpc
import pytest

from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.dropping_proxy import BlobRequest, DroppingProxy
from e2e.fixtures.images import Image, PushedImage, push
from e2e.fixtures.layers import File, busybox_layer, make_layer
from e2e.fixtures.registry import Registry
from e2e.image.test_hostile import assert_nothing_stored
from e2e.image.test_pull import chain_ids, layer_dir, pull
from e2e.image.test_pull import status as image_status

BIG = 3 << 20
CUT = 1 << 20


@pytest.fixture
def proxy(registry: Registry) -> Iterator[DroppingProxy]:
    with DroppingProxy(registry.host) as found:
        yield found


@pytest.fixture(scope="module")
def data() -> bytes:
    return random.Random(7).randbytes(BIG)  # incompressible: the blob is as big


def pushed(registry: Registry, data: bytes, tag: str) -> tuple[PushedImage, str]:
    """An image whose top layer is ``data``, pushed afresh under ``tag``; its top blob."""
    image = Image((busybox_layer(), make_layer([File("/big", data), File("/tag", tag.encode())])))
    found = push(registry, "e2e/faults-drops", tag, image)
    return found, image.layer_blobs()[-1].digest


def via(proxy: DroppingProxy, image: PushedImage) -> str:
    return image.reference.replace(image.reference.split("/")[0], proxy.host, 1)


def assert_pulled(daemon: CridDaemon, ref: str, data: bytes) -> None:
    top = chain_ids(daemon, ref)[-1]
    assert (layer_dir(daemon, top) / "big").read_bytes() == data
    image_root = daemon.root / "image"
    assert list((image_root / "content" / "ingest").iterdir()) == []
    assert not [p for p in (image_root / "snapshots").iterdir() if p.name.startswith("tmp-")]


def pulled_through_two_cuts(daemon: CridDaemon, registry: Registry, proxy: DroppingProxy,
                            data: bytes, tag: str, **how: bool) -> list[BlobRequest]:
    """Pull an image whose big blob the proxy cuts twice after ``CUT`` bytes (``how``:
    its ``reset``, ``honour_range``); the requests for that blob."""
    image, blob = pushed(registry, data, tag)
    proxy.cut_after, proxy.cuts_left, proxy.target = CUT, 2, blob
    for name, value in how.items():
        setattr(proxy, name, value)
    ref = via(proxy, image)
    assert pull(daemon, ref) == image.image_id
    assert_pulled(daemon, ref, data)
    return proxy.blob_requests(blob)


def test_a_blob_cut_twice_is_resumed_with_range(crid_daemon: CridDaemon, registry: Registry,
                                                proxy: DroppingProxy, data: bytes) -> None:
    requests = pulled_through_two_cuts(crid_daemon, registry, proxy, data, "resume")
    assert [(r.range, r.status) for r in requests] == [
        (None, 200), (f"bytes={CUT}-", 206), (f"bytes={2 * CUT}-", 206)]


def test_a_blob_reset_twice_is_resumed_where_its_bytes_stopped(
        crid_daemon: CridDaemon, registry: Registry, proxy: DroppingProxy, data: bytes) -> None:
    requests = pulled_through_two_cuts(crid_daemon, registry, proxy, data, "reset", reset=True)
    # An RST loses what was in flight: each resume starts where crid's bytes stopped.
    assert [(r.range is None, r.status) for r in requests] == [
        (True, 200), (False, 206), (False, 206)]
    offsets = [0] + [int(r.range.removeprefix("bytes=").rstrip("-"))
                     for r in requests[1:] if r.range]
    assert all(a <= b <= a + CUT for a, b in itertools.pairwise(offsets)), offsets


def test_a_registry_without_range_is_read_again_from_the_start(
        crid_daemon: CridDaemon, registry: Registry, proxy: DroppingProxy, data: bytes) -> None:
    requests = pulled_through_two_cuts(crid_daemon, registry, proxy, data, "no-range",
                                       honour_range=False)
    # crid asked to resume; the registry answered the whole blob, of which crid skipped
    # what it had.
    assert [(r.range, r.status) for r in requests] == [
        (None, 200), (f"bytes={CUT}-", 200), (f"bytes={CUT}-", 200)]


def test_a_registry_that_keeps_dropping_fails_cleanly(
        crid_daemon: CridDaemon, registry: Registry, proxy: DroppingProxy, data: bytes) -> None:
    image, blob = pushed(registry, data, "keeps-dropping")
    proxy.never_past, proxy.cuts_left = BIG // 2, 1_000
    proxy.target, ref = blob, via(proxy, image)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        pull(crid_daemon, ref)
    assert time.monotonic() - started < 15
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = str(caught.value.details())
    assert f"blob {blob}: connection lost 4 times" in details, details
    # Once in full, then three resumes at the place where it always drops: bounded.
    path = proxy.blob_requests(blob)[0].path
    assert proxy.blob_requests(blob) == [BlobRequest(path, None, 200)] + [
        BlobRequest(path, f"bytes={BIG // 2}-", 206)] * 3
    assert not image_status(crid_daemon, ref).HasField("image")
    assert_nothing_stored(crid_daemon)

    proxy.cuts_left = 0  # the registry recovers: the same pull works
    assert pull(crid_daemon, ref) == image.image_id
    assert_pulled(crid_daemon, ref, data)
