"""Pulling real images from the registry fixture through a private crid."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon, DaemonFactory
from e2e.fixtures.images import multi_layer_image, push_recipe
from e2e.fixtures.layers import Compression, busybox_layer
from e2e.fixtures.registry import Registry
from e2e.image.fake_registry import FakeRegistry


def spec(ref: str) -> api_pb2.ImageSpec:
    return api_pb2.ImageSpec(image=ref)


def pull(daemon: CridDaemon, ref: str, **auth: str) -> str:
    request = api_pb2.PullImageRequest(image=spec(ref), auth=api_pb2.AuthConfig(**auth))
    return str(daemon.image.PullImage(request, timeout=60).image_ref)


def status(daemon: CridDaemon, ref: str, verbose: bool = False) -> api_pb2.ImageStatusResponse:
    request = api_pb2.ImageStatusRequest(image=spec(ref), verbose=verbose)
    response: api_pb2.ImageStatusResponse = daemon.image.ImageStatus(request)
    return response


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
        only = crid_daemon.image.ListImages(api_pb2.ListImagesRequest(
            filter=api_pb2.ImageFilter(image=spec(name))))
        assert [i.id for i in only.images] == [pushed.image_id]
        none = crid_daemon.image.ListImages(api_pb2.ListImagesRequest(
            filter=api_pb2.ImageFilter(image=spec("never/pulled:1"))))
        assert list(none.images) == []
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
def test_compressions(
    crid_daemon: CridDaemon, registry: Registry, compression: Compression
) -> None:
    name = {"gzip": "busybox", "zstd": "busybox-zstd", "none": "busybox-uncompressed"}
    pushed = push_recipe(registry, name[compression.value], tag="c")
    assert pull(crid_daemon, pushed.reference) == pushed.image_id
    [chain] = chain_ids(crid_daemon, pushed.reference)
    assert (layer_dir(crid_daemon, chain) / "etc" / "passwd").read_text().startswith("root:")


def test_shared_layers_are_unpacked_once(crid_daemon: CridDaemon, registry: Registry) -> None:
    base = push_recipe(registry, "busybox", tag="shared")
    more = push_recipe(registry, "multi-layer", tag="shared")
    pull(crid_daemon, base.reference)
    [base_chain] = chain_ids(crid_daemon, base.reference)
    before = os.stat(layer_dir(crid_daemon, base_chain) / "bin" / "busybox")
    pull(crid_daemon, more.reference)
    chains = chain_ids(crid_daemon, more.reference)
    assert chains[0] == base_chain
    after = os.stat(layer_dir(crid_daemon, base_chain) / "bin" / "busybox")
    assert (after.st_ino, after.st_ctime_ns) == (before.st_ino, before.st_ctime_ns)
    snapshots = crid_daemon.root / "image" / "snapshots"
    assert len(list(snapshots.iterdir())) == 3
    assert "layer present" in crid_daemon.stderr_text()
    # Removing one image keeps the layer the other still uses.
    crid_daemon.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(more.reference)))
    assert [p.name for p in snapshots.iterdir()] == [base_chain.removeprefix("sha256:")]


def test_multi_platform_index_picks_this_node(crid_daemon: CridDaemon, registry: Registry) -> None:
    for recipe in ("multi-platform", "multi-platform-docker"):
        pushed = push_recipe(registry, recipe, tag="idx")
        amd64 = pushed.platforms["linux/amd64"]
        assert pull(crid_daemon, pushed.reference) == amd64.config_digest
        top = layer_dir(crid_daemon, chain_ids(crid_daemon, pushed.reference)[-1])
        assert (top / "etc" / "platform").read_text() == "linux/amd64"
        image = status(crid_daemon, pushed.reference).image
        assert pushed.digest_reference in image.repo_digests


def test_whiteouts_hide_files_in_the_merged_overlay(
    crid_daemon: CridDaemon, registry: Registry, tmp_path: Path
) -> None:
    pushed = push_recipe(registry, "whiteout", tag="wh")
    pull(crid_daemon, pushed.reference)
    lower = ":".join(str(layer_dir(crid_daemon, c))
                     for c in reversed(chain_ids(crid_daemon, pushed.reference)))
    merged = tmp_path / "merged"
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}", str(merged)],
                   check=True)
    try:
        assert (merged / "data" / "keep").read_text() == "keep\n"
        assert not (merged / "data" / "gone").exists()
        assert sorted(os.listdir(merged / "opt" / "app")) == ["new"]
        assert (merged / "bin" / "busybox").exists()
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_hardlinks_symlinks_and_fifos(crid_daemon: CridDaemon, registry: Registry) -> None:
    pushed = push_recipe(registry, "links", tag="links")
    pull(crid_daemon, pushed.reference)
    data = layer_dir(crid_daemon, chain_ids(crid_daemon, pushed.reference)[-1]) / "data"
    original = os.stat(data / "file")
    assert original.st_nlink == 3
    assert os.stat(data / "hard1").st_ino == original.st_ino
    assert os.stat(data / "sub" / "hard2").st_ino == original.st_ino
    assert (original.st_uid, original.st_gid, stat.S_IMODE(original.st_mode)) == (33, 33, 0o640)
    assert os.readlink(data / "abs") == "/data/file"
    assert os.readlink(data / "dangling") == "/nonexistent"
    assert stat.S_ISFIFO(os.lstat(data / "fifo").st_mode)


def test_user_from_the_config(crid_daemon: CridDaemon, registry: Registry) -> None:
    expected = {"user-uid": (1002, ""), "user-name": (None, "www-data"),
                "user-uid-gid": (1003, "")}
    for recipe, (uid, username) in expected.items():
        pushed = push_recipe(registry, recipe, tag="u")
        pull(crid_daemon, pushed.reference)
        image = status(crid_daemon, pushed.reference).image
        assert (image.uid.value if image.HasField("uid") else None, image.username) == (
            uid, username)


def test_image_fs_info(crid_daemon: CridDaemon, registry: Registry) -> None:
    empty = crid_daemon.image.ImageFsInfo(api_pb2.ImageFsInfoRequest())
    pushed = push_recipe(registry, "busybox", tag="fs")
    pull(crid_daemon, pushed.reference)
    info = crid_daemon.image.ImageFsInfo(api_pb2.ImageFsInfoRequest())
    [images] = info.image_filesystems
    [containers] = info.container_filesystems
    assert images.fs_id.mountpoint == str(crid_daemon.root / "image")
    assert images.used_bytes.value > empty.image_filesystems[0].used_bytes.value + 500_000
    [chain] = chain_ids(crid_daemon, pushed.reference)
    on_disk = sum(len(d) + len(f) for _, d, f in os.walk(layer_dir(crid_daemon, chain)))
    blobs = len(list((crid_daemon.root / "image" / "content" / "blobs" / "sha256").iterdir()))
    assert images.inodes_used.value == on_disk + blobs
    assert images.timestamp > 0 and containers.timestamp > 0
    assert containers.fs_id.mountpoint == str(crid_daemon.root / "containers")


def test_bad_references_are_invalid(crid_daemon: CridDaemon) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        pull(crid_daemon, "Busybox:latest")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Busybox" in str(caught.value.details())
    with pytest.raises(grpc.RpcError) as caught:
        pull(crid_daemon, "")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image.image is required" in str(caught.value.details())
    assert not status(crid_daemon, "never/pulled:1").HasField("image")


def test_concurrent_pulls_share_one_download(crid_factory: DaemonFactory) -> None:
    daemon = crid_factory()
    with FakeRegistry() as fake:
        image = multi_layer_image()
        routes = fake.add_image("slow", "v1", image)
        routes[image.layer_blobs()[-1].digest].stall = 1.0
        ref = f"{fake.host}/slow:v1"
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            ids = list(pool.map(lambda _: pull(daemon, ref), range(3)))
        assert ids == [image.config_blob.digest] * 3
        assert all(route.hits == 1 for route in routes.values())


def test_pull_metrics(crid_daemon: CridDaemon, registry: Registry) -> None:
    pushed = push_recipe(registry, "busybox", tag="metrics")
    pull(crid_daemon, pushed.reference)
    with pytest.raises(grpc.RpcError):
        pull(crid_daemon, registry.ref("does-not-exist"))
    text = httpx.get(crid_daemon.metrics_url).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("crid_image_pulls")}
    assert values["crid_image_pulls_bytes_total"] >= busybox_layer().size
    assert values["crid_image_pulls_failures_total"] == 1
    assert values["crid_image_pulls_in_progress"] == 0


def test_pull_without_sync_fs(crid_factory: DaemonFactory, registry: Registry) -> None:
    # Every layer is flushed before it is committed by default (every other test
    # pulls that way); the operator may turn that off for faster pulls.
    daemon = crid_factory(config_toml="[crid.image]\npull_with_sync_fs = false\n")
    pushed = push_recipe(registry, "busybox", tag="synced")
    assert pull(daemon, pushed.reference) == pushed.image_id
    [chain] = chain_ids(daemon, pushed.reference)
    assert os.access(layer_dir(daemon, chain) / "bin" / "busybox", os.X_OK)


def _unpackers_of(pid: int) -> list[int]:
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            with contextlib.suppress(FileNotFoundError):
                if b"crid.image.unpack_worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _spares(daemon: CridDaemon, count: int) -> list[int]:
    assert daemon.process is not None
    deadline = time.monotonic() + 30
    while len(spares := [p for p in _unpackers_of(daemon.process.pid) if _running(p)]) < count:
        assert time.monotonic() < deadline, f"the daemon has not {count} spare unpackers"
        time.sleep(0.05)
    return spares


def test_spare_unpackers_outlive_a_pull_and_die_with_a_killed_daemon(
        crid_factory: DaemonFactory, registry: Registry) -> None:
    """An idle daemon keeps no spare unpacker; a pull starts two, takes one
    for its layer and a replacement starts. They are not killed when the
    pull's threads end (a child's parent-death signal follows the thread that
    forked it), they serve the next pull, and a crash (SIGKILL, no cleanup)
    does not leave them behind."""
    daemon = crid_factory()
    assert daemon.process is not None
    assert _unpackers_of(daemon.process.pid) == []
    first = push_recipe(registry, "busybox", tag="spares")
    pull(daemon, first.reference)
    time.sleep(0.5)  # the pull's layer threads have ended
    before = _spares(daemon, 2)
    second = push_recipe(registry, "links", tag="spares")  # layers not unpacked yet
    pull(daemon, second.reference)
    after = _spares(daemon, 2)
    assert set(after) != set(before)  # one was used, one started for it
    daemon.kill()
    deadline = time.monotonic() + 10
    while alive := [pid for pid in after if _running(pid)]:
        assert time.monotonic() < deadline, f"spare unpackers outlived the daemon: {alive}"
        time.sleep(0.05)
