"""Files read from images are confined and bounded (issue 15, item 3).

To resolve a container's user the daemon reads the image's ``/etc/passwd``
and ``/etc/group``, and crid-runtime reads ``/etc/passwd`` again for
``HOME``. The image decides what those are:

- a symlink out of the rootfs (absolute, ``../`` many times, or through
  ``/proc/self/root``) to a passwd file of the host, whose user would then
  be taken: it resolves inside the rootfs instead, so the user is unknown;
- a FIFO, which blocks whoever opens it: CreateContainer returns, and the
  container runs with ``HOME=/``;
- a sparse file of 8 GiB, a few KiB on the wire: a clear error naming the
  file and the setting, with the daemon's memory flat and a second client
  answered within a second meanwhile.

Unpacking keeps a sparse file's holes, counts its data against the image
size limit (``crid.image.max_image_bytes``) and stops a decompression bomb
at that limit.

Each image goes through the real registry, puller and unpacker.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from crid.oci.spec.rootfs import DEFAULT_LIMIT

from e2e.containers.helpers import pull, run_to_exit
from e2e.fixtures.daemon import CridDaemon, DaemonFactory
from e2e.fixtures.images import Image, RunConfig, push
from e2e.fixtures.layers import (
    Compression,
    Fifo,
    File,
    Layer,
    Symlink,
    busybox_layer,
    make_layer,
    sparse_layer,
)
from e2e.fixtures.pressure import MAX_RSS_GROWTH, Pressure
from e2e.fixtures.registry import Registry
from e2e.image.test_pull import pull as pull_ref
from e2e.sandbox.pods import pod_config, pod_daemon, stop_remove

HOST_USER = "crid-host-user"  # exists only in the host file the links aim at
HOST_GROUP = "crid-host-group"
HOST_UID = 4242
LINK_FORMS = ("absolute", "dotdot", "proc-self-root")


@contextlib.contextmanager
def still_serving(daemon: CridDaemon) -> Iterator[None]:
    """While the block runs (the attack), a second client's ListPodSandbox
    answers within a second and the daemon's peak RSS grows by less than
    MAX_RSS_GROWTH (``e2e.fixtures.pressure``)."""
    assert daemon.process is not None
    with Pressure(daemon.process.pid, daemon.socket) as pressure:
        yield
        time.sleep(0.3)  # a few more answers after the attack
    pressure.assert_served(MAX_RSS_GROWTH)


@dataclass
class Cri:
    daemon: CridDaemon
    escaping: dict[str, str]  # link form -> image whose passwd and group point at the host
    inside: str  # the same links, aimed at files inside the rootfs
    fifo: str
    sparse: str
    sparse_layer_files: list[Path]


def _links(target_passwd: str, target_group: str) -> list[Symlink]:
    return [Symlink("/etc/passwd", target_passwd), Symlink("/etc/group", target_group)]


@pytest.fixture(scope="module")
def cri(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cri]:
    host = tmp_path_factory.mktemp("host-etc")
    (host / "passwd").write_text(f"{HOST_USER}:x:{HOST_UID}:{HOST_UID}::/:/bin/sh\n")
    (host / "group").write_text(f"{HOST_GROUP}:x:{HOST_UID}:{HOST_USER}\n")
    targets = {
        "absolute": str(host),
        "dotdot": "../" * 40 + str(host).lstrip("/"),
        "proc-self-root": f"/proc/self/root{host}",
    }
    run = RunConfig(cmd=("/bin/sh", "-c", "echo home=$HOME"), user=HOST_USER)
    escaping = {
        form: Image((busybox_layer(), make_layer(_links(f"{t}/passwd", f"{t}/group"))),
                    config=run)
        for form, t in targets.items()
    }
    inside = Image((busybox_layer(), make_layer([
        File("/host-etc/passwd", (host / "passwd").read_bytes()),
        File("/host-etc/group", (host / "group").read_bytes()),
        *_links("/host-etc/passwd", "../host-etc/group")])), config=run)
    fifo = Image((busybox_layer(), make_layer([Fifo("/etc/passwd"), Fifo("/etc/group")])),
                 config=RunConfig(cmd=run.cmd))
    sparse = Image((busybox_layer(), sparse_layer(
        "/etc/passwd", b"www-data:x:33:33::/var/www:/bin/sh\n", 8 << 30,
        tmp_path_factory.mktemp("sparse"))), config=RunConfig(cmd=run.cmd, user="www-data"))
    with pod_daemon() as (daemon, _net):
        sparse_ref = pull(daemon, registry, sparse)
        layers = sorted((daemon.root / "image" / "snapshots").glob("*/fs/etc/passwd"))
        yield Cri(daemon, {form: pull(daemon, registry, image) for form, image in escaping.items()},
                  pull(daemon, registry, inside), pull(daemon, registry, fifo), sparse_ref,
                  layers)


@pytest.fixture
def pod(cri: Cri, tmp_path: Path) -> Iterator[tuple[str, api_pb2.PodSandboxConfig]]:
    config = pod_config(log_directory=str(tmp_path))
    pod_id = str(cri.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id)
    yield pod_id, config
    stop_remove(cri.daemon, pod_id)


def create(cri: Cri, pod: tuple[str, api_pb2.PodSandboxConfig], image: str,
           **security: Any) -> str:
    pod_id, sandbox = pod
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:6]}"),
        image=api_pb2.ImageSpec(image=image),
        linux=api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(**security)))
    return str(cri.daemon.runtime.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox), timeout=30).container_id)


def refused(cri: Cri, pod: tuple[str, api_pb2.PodSandboxConfig], image: str,
            **security: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        create(cri, pod, image, **security)
    return caught.value


@pytest.mark.parametrize("form", LINK_FORMS)
def test_passwd_and_group_links_stay_in_the_rootfs(
    cri: Cri, pod: tuple[str, api_pb2.PodSandboxConfig], form: str
) -> None:
    image = cri.escaping[form]
    by_image = refused(cri, pod, image)
    assert by_image.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"user {HOST_USER!r} not found in the image's /etc/passwd" in str(by_image.details())
    by_request = refused(cri, pod, image, run_as_username=HOST_USER)
    assert "not found in the image's /etc/passwd" in str(by_request.details())
    # A uid with no entry runs (as containerd does) with gid 0: the host's gid is not taken.
    cid = create(cri, pod, image, run_as_user=api_pb2.Int64Value(value=HOST_UID),
                 supplemental_groups_policy=api_pb2.SupplementalGroupsPolicy.Merge)
    user = cri.daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid)).status.user.linux
    assert (user.uid, user.gid, list(user.supplemental_groups)) == (HOST_UID, 0, [0])


def test_the_same_links_inside_the_rootfs_are_followed(
    cri: Cri, pod: tuple[str, api_pb2.PodSandboxConfig]
) -> None:
    """The control: what the escaping images lack is only the way out."""
    cid = create(cri, pod, cri.inside, supplemental_groups_policy=(
        api_pb2.SupplementalGroupsPolicy.Merge))
    user = cri.daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=cid)).status.user.linux
    assert (user.uid, user.gid, sorted(user.supplemental_groups)) == (
        HOST_UID, HOST_UID, [HOST_UID])


def test_fifo_passwd_and_group_neither_block_nor_are_read(
    cri: Cri, pod: tuple[str, api_pb2.PodSandboxConfig]
) -> None:
    started = time.monotonic()
    with still_serving(cri.daemon):
        done, logs = run_to_exit(cri.daemon, pod[0], pod[1], cri.fifo)
    assert done.exit_code == 0
    assert logs == ["home=/"]
    assert time.monotonic() - started < 20
    # By name, the FIFO is "no such user", at once.
    assert "not found" in str(refused(cri, pod, cri.fifo, run_as_username="www-data").details())


def test_an_8_gib_sparse_passwd_is_refused_and_the_daemon_stays_small(
    cri: Cri, pod: tuple[str, api_pb2.PodSandboxConfig]
) -> None:
    for layer_file in cri.sparse_layer_files:  # pulled sparsely: holes are still holes
        st = layer_file.stat()
        if st.st_size == 8 << 30:
            assert st.st_blocks * 512 < 1 << 20
    assert any(f.stat().st_size == 8 << 30 for f in cri.sparse_layer_files)
    with still_serving(cri.daemon):
        for security in ({}, {"run_as_username": "www-data"},
                         {"run_as_user": api_pb2.Int64Value(value=33)}):
            error = refused(cri, pod, cri.sparse, **security)
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert ("the image's /etc/passwd is larger than "
                    f"the {DEFAULT_LIMIT} bytes") in str(error.details())
            assert "crid.image.max_passwd_group_bytes" in str(error.details())


# --- unpacking: sparse entries and the image size limit -------------------------

SIZE_LIMIT = 8 << 20  # crid.image.max_image_bytes for these daemons


@pytest.fixture
def small_daemon(crid_factory: DaemonFactory) -> CridDaemon:
    return crid_factory(config_toml=f"[crid.image]\nmax_image_bytes = {SIZE_LIMIT}\n")


def snapshots(daemon: CridDaemon) -> list[Path]:
    return sorted((daemon.root / "image" / "snapshots").iterdir())


def test_a_sparse_layer_counts_its_data_not_its_holes(
    small_daemon: CridDaemon, registry: Registry, tmp_path: Path
) -> None:
    """8 GiB of holes pull through a limit of 8 MiB, in a few KiB of disk."""
    image = Image((sparse_layer("/big", b"data", 8 << 30, tmp_path),))
    pushed = push(registry, "e2e/sparse-limit", "1", image)
    assert pull_ref(small_daemon, pushed.reference) == pushed.image_id
    [layer] = snapshots(small_daemon)
    big = (layer / "fs" / "big").stat()
    assert big.st_size == 8 << 30 and big.st_blocks * 512 < 1 << 20


def test_a_decompression_bomb_stops_at_the_limit(
    small_daemon: CridDaemon, registry: Registry
) -> None:
    """256 MiB of zeros in a 10 KiB zstd blob: the unpacker stops at 8 MiB, the
    pull fails with RESOURCE_EXHAUSTED naming the setting, nothing is kept, and
    the daemon answers another client within a second meanwhile."""
    bomb = make_layer([File("/zeros", bytes(256 << 20))], Compression.ZSTD)
    assert len(bomb.blob) < 64 << 10
    pushed = push(registry, "e2e/bomb", "1", Image((bomb,)))
    with still_serving(small_daemon), pytest.raises(grpc.RpcError) as caught:
        pull_ref(small_daemon, pushed.reference)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"more than {SIZE_LIMIT} bytes uncompressed" in str(caught.value.details())
    assert "crid.image.max_image_bytes" in str(caught.value.details())
    assert snapshots(small_daemon) == []


def test_layers_within_the_limit_alone_but_not_together(
    small_daemon: CridDaemon, registry: Registry
) -> None:
    halves = tuple(make_layer([File(f"/part{i}", os.urandom(5 << 20))], Compression.NONE)
                   for i in range(2))
    pushed = push(registry, "e2e/two-halves", "1", Image(halves))
    with pytest.raises(grpc.RpcError) as caught:
        pull_ref(small_daemon, pushed.reference)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"unpack to {10 << 20} bytes, more than the {SIZE_LIMIT}" in str(
        caught.value.details())
    assert snapshots(small_daemon) == []


def test_a_huge_sparse_map_fails_the_pull_not_the_node(
    crid_daemon: CridDaemon, registry: Registry
) -> None:
    """A PAX 1.0 sparse map of 12 million segments, a few MiB of zstd: tarfile would
    hold it all (~1.5 GiB) in the unpacker; its address-space cap fails the
    pull instead, and the daemon answers another client within a second."""
    segments = 12_000_000
    layer = sparse_map_layer(segments)
    assert len(layer.blob) < 8 << 20
    pushed = push(registry, "e2e/sparse-map", "1", Image((layer,)))
    with still_serving(crid_daemon), pytest.raises(grpc.RpcError) as caught:
        pull_ref(crid_daemon, pushed.reference)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 1073741824 bytes of memory" in str(caught.value.details())
    assert snapshots(crid_daemon) == []


def sparse_map_layer(segments: int) -> Layer:
    """One PAX 1.0 sparse member (GNU tar's layout) whose map lists ``segments``
    one-byte segments, every other byte of the file."""
    numbers = "\n".join(f"{2 * i}\n1" for i in range(segments))
    sparse_map = f"{segments}\n{numbers}\n".encode()
    sparse_map += bytes(-len(sparse_map) % 512)
    payload = sparse_map + b"x" * segments
    info = tarfile.TarInfo("GNUSparseFile.0/big")
    info.size = len(payload)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                        "GNU.sparse.name": "big", "GNU.sparse.realsize": str(2 * segments)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        out.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    return Layer(tar=raw, blob=Compression.ZSTD.compress(raw), compression=Compression.ZSTD)
