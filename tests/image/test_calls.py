"""ImageCalls' answers outside the loop: the same as the loop's, refreshed on a change."""

import asyncio
from pathlib import Path

from cri_api.v1 import api_pb2
from crid.image.calls import ImageCalls

from tests.image.test_store import IMAGE_ID, add_image, service


def test_inline_listing_is_kept_until_an_image_changes(tmp_path: Path) -> None:
    images = service(tmp_path)
    calls = ImageCalls(images, str(tmp_path))
    listing = calls.inline_calls()["ListImages"]
    empty = listing(api_pb2.ListImagesRequest())
    assert list(empty.images) == []
    assert listing(api_pb2.ListImagesRequest()) is empty
    add_image(images)
    found = listing(api_pb2.ListImagesRequest())
    assert [i.id for i in found.images] == [IMAGE_ID]
    assert found == asyncio.run(calls.ListImages(api_pb2.ListImagesRequest()))
    asyncio.run(images.remove(IMAGE_ID))
    assert list(listing(api_pb2.ListImagesRequest()).images) == []
    # A filter goes to the loop, which resolves the name.
    filtered = api_pb2.ListImagesRequest(filter=api_pb2.ImageFilter(
        image=api_pb2.ImageSpec(image="app:1")))
    assert listing(filtered) is None


def test_inline_status_answers_as_the_loop_does(tmp_path: Path) -> None:
    images = service(tmp_path)
    add_image(images)
    calls = ImageCalls(images, str(tmp_path))
    status = calls.inline_calls()["ImageStatus"]
    for name, verbose in (("app:1", False), ("app:1", True), ("app:2", False)):
        request = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=name),
                                             verbose=verbose)
        assert status(request) == asyncio.run(calls.ImageStatus(request)), name
    assert status(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image="app:1"))).image.id \
        == IMAGE_ID
    # No image named: the loop refuses it (INVALID_ARGUMENT), so it goes there.
    assert status(api_pb2.ImageStatusRequest()) is None
