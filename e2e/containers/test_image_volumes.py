"""Image volumes (CRI ``Mount.image``): an image's files in a container, read-only,
whole or a sub path; what is refused; the image kept while in use; nothing left
after removal; and what a crash in the middle of a create leaves, removed at start."""

from __future__ import annotations

import grpc
import pytest
from cri_api.v1 import api_pb2
from crid.api.image_ref import image_ref

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import assert_unchanged, exec_sync, leftovers, pull, run, sh
from e2e.fixtures.daemon import mounts_under
from e2e.fixtures.images import Image, RunConfig, multi_layer_image
from e2e.fixtures.layers import File, Symlink, make_layer
from e2e.fixtures.registry import Registry

# One layer (mounted as a read-only bind), with a symlink that must not lead out.
DATA_IMAGE = Image((make_layer([
    File("/share/greeting", b"hello\n"), File("/share/tool", b"#!/bin/sh\necho ran\n", 0o755),
    Symlink("/escape", "/../../../../etc")]),), config=RunConfig())


def volume(reference: str, path: str = "/vol", sub_path: str = "",
           readonly: bool = True) -> api_pb2.Mount:
    return api_pb2.Mount(container_path=path, readonly=readonly, image_sub_path=sub_path,
                         image=api_pb2.ImageSpec(image=reference))


def image_id(env: Env, reference: str) -> str:
    return str(env.daemon.image.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image=reference))).image.id)


def remove(env: Env, container_id: str) -> None:
    env.daemon.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=container_id))


def test_a_multi_layer_image_is_mounted_read_only(env: Env, pod: Pod, registry: Registry) -> None:
    reference = pull(env.daemon, registry, multi_layer_image())
    before = leftovers(env, pod)
    cid = run(env.daemon, pod.id, pod.config, env.image, mounts=[volume(reference)])
    # The layers stacked: the top layer's /data/one wins, both layers' files are there.
    assert sh(env.daemon, cid, "cat /vol/data/one /vol/data/two") == "one v2\ntwo\n"
    denied = exec_sync(env.daemon, cid, "touch", "/vol/data/new")
    assert denied.exit_code != 0 and b"Read-only file system" in denied.stderr
    # Not noexec: the volume's own busybox runs.
    assert exec_sync(env.daemon, cid, "/vol/bin/busybox", "true").exit_code == 0
    [mounted] = env.daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid)).status.mounts
    assert mounted.image.image == reference and mounted.readonly
    assert image_ref(mounted.image) == image_id(env, reference)
    remove(env, cid)
    assert_unchanged(env, pod, before)


def test_a_single_layer_image_and_a_sub_path(env: Env, pod: Pod, registry: Registry) -> None:
    reference = pull(env.daemon, registry, DATA_IMAGE)
    cid = run(env.daemon, pod.id, pod.config, env.image, mounts=[
        volume(reference, "/whole"), volume(reference, "/part", sub_path="share")])
    assert sh(env.daemon, cid, "cat /whole/share/greeting /part/greeting") == "hello\nhello\n"
    assert sh(env.daemon, cid, "/part/tool") == "ran\n"
    assert exec_sync(env.daemon, cid, "touch", "/whole/new").exit_code != 0
    remove(env, cid)


def test_the_image_of_a_volume_is_in_use(env: Env, pod: Pod, registry: Registry) -> None:
    reference = pull(env.daemon, registry, DATA_IMAGE)
    cid = run(env.daemon, pod.id, pod.config, env.image, mounts=[volume(reference)])
    request = api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=reference))
    with pytest.raises(grpc.RpcError) as refused:
        env.daemon.image.RemoveImage(request)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    remove(env, cid)
    env.daemon.image.RemoveImage(request)


@pytest.mark.parametrize(("mount", "code", "words"), [
    (volume("IMAGE", readonly=False), grpc.StatusCode.INVALID_ARGUMENT, "must be read-only"),
    (volume("IMAGE", sub_path="nope"), grpc.StatusCode.INVALID_ARGUMENT, "'nope' does not exist"),
    (volume("IMAGE", sub_path="../x"), grpc.StatusCode.INVALID_ARGUMENT, "without '..'"),
    # /escape points at /../../../../etc: inside the image that is the image's /etc.
    (volume("IMAGE", sub_path="escape/passwd"), grpc.StatusCode.INVALID_ARGUMENT,
     "does not exist"),
    (volume("127.0.0.1:1/never:pulled"), grpc.StatusCode.NOT_FOUND, "pull it first"),
])
def test_refused_volumes_leave_nothing(env: Env, pod: Pod, registry: Registry,
                                       mount: api_pb2.Mount, code: grpc.StatusCode,
                                       words: str) -> None:
    if mount.image.image == "IMAGE":
        mount.image.image = pull(env.daemon, registry, DATA_IMAGE)
    before = leftovers(env, pod)
    with pytest.raises(grpc.RpcError) as raised:
        run(env.daemon, pod.id, pod.config, env.image, mounts=[mount])
    assert raised.value.code() == code, raised.value.details()
    assert words in (raised.value.details() or "")
    assert_unchanged(env, pod, before)
    assert mounts_under(env.daemon.runroot) == before["mounts"]
