"""The CRI ImageService call family: PullImage, ImageStatus, ListImages, RemoveImage,
ImageFsInfo.

Translation only: requests to ``crid.image.store`` calls, records to
``api_pb2.Image``. Container writable layers are reported from
``<root>/containers`` (``CONTAINERS_DIR``), where the container code keeps them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2
from crid.api.validation import require
from crid.image import auth
from crid.image.records import ImageRecord
from crid.image.store import FsUsage, ImageStore

from crid.listing_cache import ListingCache

CONTAINERS_DIR = "containers"


class ImageCalls:
    def __init__(self, images: ImageStore, root_dir: str) -> None:
        self._images = images
        self._containers_dir = Path(root_dir) / CONTAINERS_DIR
        self._listings: ListingCache[api_pb2.ListImagesResponse] = ListingCache()

    async def PullImage(self, request: api_pb2.PullImageRequest) -> api_pb2.PullImageResponse:
        require(request, "image.image")
        a = request.auth
        credentials = auth.from_cri(a.username, a.password, a.auth, a.identity_token,
                                    a.registry_token, a.server_address)
        record = await self._images.pull(request.image.image, credentials)
        return api_pb2.PullImageResponse(image_ref=record.id)

    async def ImageStatus(
        self, request: api_pb2.ImageStatusRequest
    ) -> api_pb2.ImageStatusResponse:
        require(request, "image.image")
        return self._status(request)

    def _status(self, request: api_pb2.ImageStatusRequest) -> api_pb2.ImageStatusResponse:
        record = self._images.status(request.image.image)
        if record is None:
            return api_pb2.ImageStatusResponse()
        info = {}
        if request.verbose:
            info["info"] = json.dumps({
                "imageSpec": record.config_json,
                "manifestDigest": record.manifest_digest,
                "chainIDs": list(record.chain_ids),
                "pinned": record.pinned,
            })
        return api_pb2.ImageStatusResponse(image=_image(record), info=info)

    def inline_calls(self) -> dict[str, Callable[[Any], Any]]:
        """Calls the gRPC layer may answer outside the loop (``crid.grpc_server``):
        the unfiltered listing and an image's status, which read only the
        records' locked copy (and registries.conf's stat, for a name); under
        parallel load the trip to the busy loop cost more than the call. A
        request that is refused (no image named) goes to the loop, which says why."""
        return {"ListImages": lambda request: (
            None if request.filter.image.image else self._all_images()),
                "ImageStatus": lambda request: (
            self._status(request) if request.image.image else None)}

    async def ListImages(self, request: api_pb2.ListImagesRequest) -> api_pb2.ListImagesResponse:
        wanted = request.filter.image.image if request.HasField("filter") else ""
        if not wanted:
            return self._all_images()
        record = self._images.status(wanted)
        return api_pb2.ListImagesResponse(images=[_image(record)] if record else [])

    def _all_images(self) -> api_pb2.ListImagesResponse:
        """Every image; the same response object while no image changed (the gRPC
        layer serializes it once)."""
        stamp = self._images.records.generation()
        cached = self._listings.get(b"", stamp)
        if cached is None:
            cached = api_pb2.ListImagesResponse(images=[_image(r) for r in self._images.all()])
            self._listings.put(b"", stamp, cached)
        return cached

    async def RemoveImage(self, request: api_pb2.RemoveImageRequest) -> api_pb2.RemoveImageResponse:
        require(request, "image.image")
        await self._images.remove(request.image.image)
        return api_pb2.RemoveImageResponse()

    async def ImageFsInfo(self, request: api_pb2.ImageFsInfoRequest) -> api_pb2.ImageFsInfoResponse:
        images = await asyncio.to_thread(self._images.image_fs_usage)
        containers = await asyncio.to_thread(
            self._images.container_fs_usage, self._containers_dir)
        return api_pb2.ImageFsInfoResponse(
            image_filesystems=[_usage(images)], container_filesystems=[_usage(containers)])


def _image(record: ImageRecord) -> api_pb2.Image:
    image = api_pb2.Image(
        id=record.id,
        repo_tags=record.repo_tags,
        repo_digests=record.repo_digests,
        size=record.size,
        username=record.username,
        spec=api_pb2.ImageSpec(image=record.id),
        pinned=record.pinned,
    )
    if record.uid is not None:
        image.uid.value = record.uid
    return image


def _usage(usage: FsUsage) -> api_pb2.FilesystemUsage:
    return api_pb2.FilesystemUsage(
        timestamp=usage.timestamp_ns,
        fs_id=api_pb2.FilesystemIdentifier(mountpoint=usage.mountpoint),
        used_bytes=api_pb2.UInt64Value(value=usage.used_bytes),
        inodes_used=api_pb2.UInt64Value(value=usage.inodes_used),
    )
