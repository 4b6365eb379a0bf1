"""Registries that lie and layers that attack: the pull fails cleanly, nothing escapes."""

from __future__ import annotations

import concurrent.futures
import io
import os
import random
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from e2e.fixtures.daemon import CridDaemon, DaemonFactory
from e2e.fixtures.images import Image, multi_layer_image, push
from e2e.fixtures.layers import Compression, File, Layer, busybox_layer, make_layer
from e2e.fixtures.registry import Registry
from e2e.image.fake_registry import FakeRegistry
from e2e.image.test_pull import pull, status


def assert_nothing_stored(daemon: CridDaemon) -> None:
    image_root = daemon.root / "image"
    assert list((image_root / "snapshots").iterdir()) == []
    assert list((image_root / "content" / "blobs" / "sha256").iterdir()) == []
    assert list((image_root / "content" / "ingest").iterdir()) == []


def failure(daemon: CridDaemon, ref: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        pull(daemon, ref)
    assert not status(daemon, ref).HasField("image")
    return caught.value


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with FakeRegistry() as registry:
        yield registry


def test_blob_not_matching_its_digest(crid_daemon: CridDaemon, fake: FakeRegistry) -> None:
    image = multi_layer_image()
    routes = fake.add_image("tampered", "v1", image)
    last = routes[image.layer_blobs()[-1].digest]
    body = bytearray(last.body)
    body[-20] ^= 0xFF  # inside the gzip stream, same length
    last.body = bytes(body)
    error = failure(crid_daemon, f"{fake.host}/tampered:v1")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not match its digest" in str(error.details())
    assert_nothing_stored(crid_daemon)


def test_truncated_blob(crid_daemon: CridDaemon, fake: FakeRegistry) -> None:
    image = multi_layer_image()
    routes = fake.add_image("truncated", "v1", image)
    base = routes[image.layer_blobs()[0].digest]
    base.body = base.body[: len(base.body) // 2]
    error = failure(crid_daemon, f"{fake.host}/truncated:v1")
    assert "truncated" in str(error.details())
    assert_nothing_stored(crid_daemon)


def test_manifest_naming_a_missing_blob(crid_daemon: CridDaemon, fake: FakeRegistry) -> None:
    image = multi_layer_image()
    fake.add_image("missing", "v1", image)
    del fake.routes[f"/v2/missing/blobs/{image.layer_blobs()[1].digest}"]
    error = failure(crid_daemon, f"{fake.host}/missing:v1")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert image.layer_blobs()[1].digest in str(error.details())
    assert_nothing_stored(crid_daemon)


def test_dropped_connection_resumes_with_range(crid_daemon: CridDaemon, fake: FakeRegistry) -> None:
    image = multi_layer_image()
    routes = fake.add_image("flaky", "v1", image)
    base = routes[image.layer_blobs()[0].digest]
    base.cut_at, base.cut_times = len(base.body) // 3, 1
    assert pull(crid_daemon, f"{fake.host}/flaky:v1") == image.config_blob.digest
    ranges = [h.get("Range") for path, h in fake.requests if path.endswith(base_digest(image))]
    assert ranges == [None, f"bytes={len(base.body) // 3}-"]


def base_digest(image: Image) -> str:
    return image.layer_blobs()[0].digest


def test_server_errors_are_retried(crid_daemon: CridDaemon, fake: FakeRegistry) -> None:
    image = multi_layer_image()
    fake.add_image("busy", "v1", image)
    fake.fail_next["/v2/busy/manifests/v1"] = 2  # two 503s, then the manifest
    assert pull(crid_daemon, f"{fake.host}/busy:v1") == image.config_blob.digest


def test_stalled_registry_fails_after_the_progress_timeout(
    crid_factory: DaemonFactory, fake: FakeRegistry
) -> None:
    daemon = crid_factory(config_toml="[crid.image]\npull_progress_timeout = 1\n")
    image = multi_layer_image()
    routes = fake.add_image("stalled", "v1", image)
    routes[image.layer_blobs()[-1].digest].stall = 4
    started = time.monotonic()
    error = failure(daemon, f"{fake.host}/stalled:v1")
    assert time.monotonic() - started < 4
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no progress for 1s" in str(error.details())
    assert_nothing_stored(daemon)


def hostile_layer(*entries: tuple[tarfile.TarInfo, bytes]) -> Layer:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for info, data in entries:
            out.addfile(info, io.BytesIO(data) if info.isreg() else None)
    raw = buf.getvalue()
    return Layer(tar=raw, blob=Compression.GZIP.compress(raw), compression=Compression.GZIP)


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"pwned\n",
           link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def test_malicious_layers_write_nothing_outside(
    crid_daemon: CridDaemon, registry: Registry
) -> None:
    tag = uuid.uuid4().hex[:12]
    host_dir = Path(f"/tmp/crid-hostile-{tag}")
    passwd_links = os.stat("/etc/passwd").st_nlink
    cases = {
        "dotdot": [member(f"../../../../../../../../tmp/crid-hostile-{tag}/dotdot")],
        "absolute": [member(f"/tmp/crid-hostile-{tag}/absolute")],
        "symlink": [member("escape", tarfile.SYMTYPE, link="/"),
                    member(f"escape/tmp/crid-hostile-{tag}/symlink")],
        "symlink-dotdot": [member("up", tarfile.SYMTYPE, link="../../../../../../.."),
                           member(f"up/tmp/crid-hostile-{tag}/symlink-dotdot")],
        "hardlink": [member("passwd", tarfile.LNKTYPE, link="../../../../../../../etc/passwd")],
        "hardlink-abs": [member("passwd", tarfile.LNKTYPE, link="/etc/passwd")],
    }
    outcomes = {}
    for name, entries in cases.items():
        image = Image((busybox_layer(), hostile_layer(*entries)))
        pushed = push(registry, "hostile", name, image)
        try:
            pull(crid_daemon, pushed.reference)
            outcomes[name] = "contained"
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
            outcomes[name] = "refused"
        assert not host_dir.exists(), f"{name}: wrote {host_dir} on the host"
        assert os.stat("/etc/passwd").st_nlink == passwd_links, f"{name}: linked /etc/passwd"
    # An absolute name is read as relative to the layer, as docker does; the rest are
    # refused (an absolute hard link target means the layer's own etc/passwd: not there).
    assert outcomes == {"dotdot": "refused", "absolute": "contained", "symlink": "refused",
                        "symlink-dotdot": "refused", "hardlink": "refused",
                        "hardlink-abs": "refused"}
    snapshots = crid_daemon.root / "image" / "snapshots"
    found = list(snapshots.glob(f"*/fs/tmp/crid-hostile-{tag}/absolute"))
    assert len(found) == 1
    # Failed pulls left nothing half-done; only the one that pulled has layers.
    assert len(list(snapshots.iterdir())) == 2


def test_daemon_killed_mid_pull_leaves_a_consistent_store(
    crid_daemon: CridDaemon, fake: FakeRegistry
) -> None:
    image = multi_layer_image()
    routes = fake.add_image("crash", "v1", image)
    stalled = image.layer_blobs()[-1].digest
    routes[stalled].stall = 30
    snapshots = crid_daemon.root / "image" / "snapshots"

    def started() -> bool:
        return any(path.endswith(stalled) for path, _ in fake.requests)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pulling = pool.submit(pull, crid_daemon, f"{fake.host}/crash:v1")
        deadline = time.monotonic() + 20
        while not started() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started()
        assert any(p.name.startswith("tmp-") for p in snapshots.iterdir())
        crid_daemon.kill()
        with pytest.raises(grpc.RpcError):
            pulling.result()
    crid_daemon.start()
    assert not any(p.name.startswith("tmp-") for p in snapshots.iterdir())
    assert list((crid_daemon.root / "image" / "content" / "ingest").iterdir()) == []
    assert not status(crid_daemon, f"{fake.host}/crash:v1").HasField("image")
    routes[stalled].stall = 0
    assert pull(crid_daemon, f"{fake.host}/crash:v1") == image.config_blob.digest
    assert len(list(snapshots.iterdir())) == 3
    for chain_dir in snapshots.iterdir():
        assert (chain_dir / "fs").is_dir()


def test_unpacking_time_is_not_a_stall(crid_factory: DaemonFactory, registry: Registry) -> None:
    daemon = crid_factory(config_toml="[crid.image]\npull_progress_timeout = 1\n")
    # Incompressible: 10 MB of blob, more than the pipe and socket buffers hold, so the
    # download waits on the unpacker for longer than the limit, many times over.
    noise = random.Random(4).randbytes(512 * 20_000)
    many = make_layer([File(f"/many/d{i % 100:02d}/f{i:05d}", noise[i * 512:(i + 1) * 512])
                       for i in range(20_000)])
    pushed = push(registry, "slow-unpack", "v1", Image((many,)))
    started = time.monotonic()
    assert pull(daemon, pushed.reference) == pushed.image_id
    assert time.monotonic() - started > 1.0
