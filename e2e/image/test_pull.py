"""Pulling real images from the registry fixture through a private crid."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon, DaemonFactory
from e2e.fixtures.images import push, push_recipe
from e2e.fixtures.layers import Compression
from e2e.fixtures.registry import Registry


def spec(ref: str) -> api_pb2.ImageSpec:
    return api_pb2.ImageSpec(image=ref)


def pull(daemon: CridDaemon, ref: str, **auth: str) -> str:
    request = api_pb2.PullImageRequest(image=spec(ref), auth=api_pb2.AuthConfig(**auth))
    return str(daemon.image.PullImage(request, timeout=60).image_ref)


def status(daemon: CridDaemon, ref: str, verbose: bool = False) -> api_pb2.ImageStatusResponse:
    return daemon.image.ImageStatus(api_pb2.ImageStatusRequest(image=spec(ref), verbose=verbose))


def layer_dir(daemon: CridDaemon, chain_id: str) -> Path:
    return daemon.root / "image" / "snapshots" / chain_id.removeprefix("sha256:") / "fs"


def chain_ids(daemon: CridDaemon, ref: str) -> list[str]:
    info = json.loads(status(daemon, ref, verbose=True).info["info"])
    return list(info["chainIDs"])


def test_pull_single_layer_image(crid_daemon: CridDaemon, registry: Registry) -> None:
    pushed = push_recipe(registry, "busybox", tag="single")
    image_id = pull(crid_daemon, pushed.reference)
    assert image_id == pushed.image_id
    image = status(crid_daemon, pushed.reference).image
    assert image.id == pushed.image_id
    assert list(image.repo_tags) == [pushed.reference]
    assert list(image.repo_digests) == [pushed.digest_reference]
    [chain] = chain_ids(crid_daemon, pushed.reference)
    root = layer_dir(crid_daemon, chain)
    assert os.access(root / "bin" / "busybox", os.X_OK)
    assert os.readlink(root / "bin" / "sh") == "busybox"
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_status_list_and_remove_by_every_name(crid_daemon: CridDaemon, registry: Registry) -> None:
    pushed = push_recipe(registry, "multi-layer", tag="names")
    for name in (pushed.reference, pushed.digest_reference, pushed.image_id):
        pull(crid_daemon, pushed.reference)
        assert status(crid_daemon, name).image.id == pushed.image_id
        listed = crid_daemon.image.ListImages(api_pb2.ListImagesRequest())
        assert pushed.image_id in [i.id for i in listed.images]
        dirs = [layer_dir(crid_daemon, c) for c in chain_ids(crid_daemon, name)]
        assert len(dirs) == 3 and all(d.is_dir() for d in dirs)
        crid_daemon.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(name)))
        assert not status(crid_daemon, pushed.reference).HasField("image")
        assert not any(d.exists() for d in dirs)
        blobs = crid_daemon.root / "image" / "content" / "blobs" / "sha256"
        assert list(blobs.iterdir()) == []
    # Removing what is not there is fine.
    crid_daemon.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(pushed.reference)))


@pytest.mark.parametrize("compression", list(Compression), ids=lambda c: c.value)
def test_compressions(crid_daemon: CridDaemon, registry: Registry, compression: Compression) -> None:
    name = {"gzip": "busybox", "zstd": "busybox-zstd", "none": "busybox-uncompressed"}
    pushed = push_recipe(registry, name[compression.value], tag="c")
    assert pull(crid_daemon, pushed.reference) == pushed.image_id
    [chain] = chain_ids(crid_daemon, pushed.reference)
    assert (layer_dir(crid_daemon, chain) / "etc" / "passwd").read_text().startswith("root:")
