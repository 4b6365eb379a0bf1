"""The test bed checks itself: registry fixture and test images, judged by skopeo and umoci.

skopeo reads what we pushed through the distribution API, the way any
client would; umoci unpacks it into a rootfs, applying whiteouts and
checking diff_ids against the config. Neither shares code with us.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.fixtures import images
from e2e.fixtures.images import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    PushedImage,
    push_recipe,
)
from e2e.fixtures.layers import (
    BUSYBOX,
    Compression,
    Entry,
    File,
    Hardlink,
    Symlink,
    build_tar,
    busybox_applets,
    make_layer,
)
from e2e.fixtures.registry import Registry


def _skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # --insecure-policy: don't depend on the host's /etc/containers/policy.json.
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def _inspect(pushed: PushedImage, *extra: str) -> Any:
    out = _skopeo("inspect", "--tls-verify=false", *extra, f"docker://{pushed.reference}")
    return json.loads(out.stdout)


def _unpack(pushed: PushedImage, tmp_path: Path, *copy_args: str) -> Path:
    """skopeo copy to an OCI layout, then umoci unpack; returns the bundle."""
    layout, bundle = tmp_path / "oci", tmp_path / "bundle"
    _skopeo(
        "copy",
        "--src-tls-verify=false",
        *copy_args,
        f"docker://{pushed.reference}",
        f"oci:{layout}:t",
    )
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:t", str(bundle)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return bundle


def _runtime_config(bundle: Path) -> Any:
    return json.loads((bundle / "config.json").read_text())


@pytest.mark.parametrize("name", sorted(images.RECIPES))
def test_every_recipe_is_readable_by_skopeo(registry: Registry, name: str) -> None:
    pushed = push_recipe(registry, name)
    info = _inspect(pushed)
    assert info["Digest"] == pushed.digest
    assert info["Layers"] == list(pushed.layer_digests)
    raw_config = _skopeo(
        "inspect", "--tls-verify=false", "--config", "--raw", f"docker://{pushed.reference}"
    ).stdout.encode()
    assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == pushed.config_digest
    assert json.loads(raw_config)["rootfs"]["diff_ids"] == list(pushed.diff_ids)


def test_pushing_again_gives_the_same_digests(registry: Registry) -> None:
    first = push_recipe(registry, "multi-layer", tag="again")
    second = push_recipe(registry, "multi-layer", tag="again")
    assert first == second


def test_busybox_image_unpacks_and_runs(registry: Registry, tmp_path: Path) -> None:
    bundle = _unpack(push_recipe(registry, "busybox"), tmp_path)
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin/busybox").read_bytes() == Path(BUSYBOX).read_bytes()
    applets = busybox_applets()
    assert "sh" in applets
    for applet in applets:
        assert os.readlink(rootfs / "bin" / applet) == "busybox"
    assert "www-data:x:33:33:" in (rootfs / "etc/passwd").read_text()
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    for empty in ("proc", "sys", "dev"):
        assert (rootfs / empty).is_dir()
        assert not any((rootfs / empty).iterdir())
    out = subprocess.run(
        ["chroot", str(rootfs), "/bin/sh", "-c", "id -u -n; ls /etc"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stdout.split() == ["root", "group", "passwd"]


def test_multi_layer_image_stacks_layers(registry: Registry, tmp_path: Path) -> None:
    pushed = push_recipe(registry, "multi-layer")
    assert len(pushed.layer_digests) == 3
    info = _inspect(pushed)
    assert info["Labels"] == {"org.crid.test": "multi-layer"}
    rootfs = _unpack(pushed, tmp_path) / "rootfs"
    assert (rootfs / "data/one").read_text() == "one v2\n"
    assert (rootfs / "data/two").read_text() == "two\n"
    assert _runtime_config(tmp_path / "bundle")["process"]["cwd"] == "/data"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("busybox", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("busybox-zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("busybox-uncompressed", "application/vnd.oci.image.layer.v1.tar"),
    ],
)
def test_each_compression_unpacks(
    registry: Registry, tmp_path: Path, name: str, media_type: str
) -> None:
    pushed = push_recipe(registry, name)
    manifest = json.loads(
        _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{pushed.reference}").stdout
    )
    assert manifest["mediaType"] == OCI_MANIFEST
    assert [layer["mediaType"] for layer in manifest["layers"]] == [media_type]
    # umoci 0.4.7 cannot read zstd: let skopeo decompress and re-gzip it; umoci
    # then still checks the uncompressed tar against our diff_id.
    recompress = ["--dest-compress", "--dest-compress-format", "gzip"]
    rootfs = _unpack(pushed, tmp_path, *(recompress if "zstd" in name else [])) / "rootfs"
    assert (rootfs / "bin/busybox").read_bytes() == Path(BUSYBOX).read_bytes()


def test_docker_schema2_variant(registry: Registry, tmp_path: Path) -> None:
    pushed = push_recipe(registry, "busybox-docker")
    assert pushed.media_type == DOCKER_MANIFEST
    manifest = json.loads(
        _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{pushed.reference}").stdout
    )
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert manifest["layers"][0]["mediaType"] == Compression.GZIP.docker_media_type
    rootfs = _unpack(pushed, tmp_path) / "rootfs"
    assert (rootfs / "bin/busybox").is_file()


def test_run_config_fields(registry: Registry, tmp_path: Path) -> None:
    pushed = push_recipe(registry, "run-config")
    config = json.loads(
        _skopeo(
            "inspect", "--tls-verify=false", "--config", "--raw", f"docker://{pushed.reference}"
        ).stdout
    )["config"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert config["Cmd"] == ["echo $GREETING"]
    assert config["StopSignal"] == "SIGUSR1"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    process = _runtime_config(_unpack(pushed, tmp_path))["process"]
    assert process["args"] == ["/bin/sh", "-c", "echo $GREETING"]
    assert "GREETING=hello world" in process["env"]
    assert process["cwd"] == "/tmp"


@pytest.mark.parametrize(
    ("name", "user", "uid", "gid"),
    [
        ("user-uid", "1002", 1002, 0),
        ("user-name", "www-data", 33, 33),
        ("user-uid-gid", "1003:1004", 1003, 1004),
    ],
)
def test_user_in_config(
    registry: Registry, tmp_path: Path, name: str, user: str, uid: int, gid: int
) -> None:
    pushed = push_recipe(registry, name)
    config = json.loads(
        _skopeo(
            "inspect", "--tls-verify=false", "--config", "--raw", f"docker://{pushed.reference}"
        ).stdout
    )
    assert config["config"]["User"] == user
    # umoci resolves the name against the image's own /etc/passwd.
    process = _runtime_config(_unpack(pushed, tmp_path))["process"]
    assert (process["user"]["uid"], process["user"]["gid"]) == (uid, gid)


def test_whiteout_and_opaque_dir_are_applied(registry: Registry, tmp_path: Path) -> None:
    rootfs = _unpack(push_recipe(registry, "whiteout"), tmp_path) / "rootfs"
    assert (rootfs / "data/keep").read_text() == "keep\n"
    assert not (rootfs / "data/gone").exists()
    assert sorted(p.name for p in (rootfs / "opt/app").iterdir()) == ["new"]
    assert not [p for p in rootfs.rglob(".wh.*")]


def test_links_and_fifo(registry: Registry, tmp_path: Path) -> None:
    data = _unpack(push_recipe(registry, "links"), tmp_path) / "rootfs/data"
    names = [data / "file", data / "hard1", data / "sub/hard2"]
    stats = [p.lstat() for p in names]
    assert {s.st_ino for s in stats} == {stats[0].st_ino}
    assert stats[0].st_nlink == 3
    assert (stats[0].st_uid, stats[0].st_gid, stat.S_IMODE(stats[0].st_mode)) == (33, 33, 0o640)
    assert os.readlink(data / "abs") == "/data/file"
    assert os.readlink(data / "rel") == "file"
    assert (data / "rel").read_text() == "linked\n"
    assert os.readlink(data / "dirlink") == "sub"
    assert os.readlink(data / "dangling") == "/nonexistent"
    assert stat.S_ISFIFO((data / "fifo").lstat().st_mode)


@pytest.mark.parametrize("name", ["multi-platform", "multi-platform-docker"])
@pytest.mark.parametrize(
    ("arch", "marker"), [("amd64", "linux/amd64"), ("arm64", "linux/arm64/v8")]
)
def test_index_platform_is_chosen(
    registry: Registry, tmp_path: Path, name: str, arch: str, marker: str
) -> None:
    pushed = push_recipe(registry, name)
    index = json.loads(
        _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{pushed.reference}").stdout
    )
    assert index["mediaType"] == (DOCKER_MANIFEST_LIST if "docker" in name else OCI_INDEX)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert sorted(pushed.platforms) == ["linux/amd64", "linux/arm64/v8"]
    info = _inspect(pushed, "--override-arch", arch)
    assert info["Architecture"] == arch
    chosen = pushed.platforms[marker]
    assert info["Layers"] == list(chosen.layer_digests)
    rootfs = _unpack(pushed, tmp_path, "--override-arch", arch) / "rootfs"
    assert (rootfs / "etc/platform").read_text() == marker


def test_auth_registry_requires_credentials(auth_registry: Registry, tmp_path: Path) -> None:
    assert auth_registry.username and auth_registry.password
    pushed = push_recipe(auth_registry, "busybox")
    # An empty auth file, so no credentials of the host's can leak in.
    authfile = tmp_path / "auth.json"
    authfile.write_text("{}")
    base = ["inspect", "--tls-verify=false", "--authfile", str(authfile)]
    ref = f"docker://{pushed.reference}"
    creds = f"{auth_registry.username}:{auth_registry.password}"
    ok = json.loads(_skopeo(*base, "--creds", creds, ref).stdout)
    assert ok["Digest"] == pushed.digest
    anonymous = _skopeo(*base, ref, check=False)
    assert anonymous.returncode != 0
    assert "unauthorized" in anonymous.stderr.lower()
    wrong = _skopeo(*base, "--creds", f"{auth_registry.username}:wrong", ref, check=False)
    assert wrong.returncode != 0


def test_registry_stops_cleanly() -> None:
    reg = Registry()
    with reg:
        root, port = reg.root, reg.port
        assert httpx.get(f"{reg.url}/v2/").status_code == 200
        assert (root / "config.yml").is_file()
    assert not root.exists()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))


def test_layers_are_deterministic() -> None:
    entries: list[Entry] = [
        File("/b/file", b"x", mtime=5),
        Hardlink("/a/link", "/b/file"),
        Symlink("/a/sym", "../b/file"),
    ]
    assert build_tar(entries) == build_tar(reversed(entries))
    for compression in Compression:
        one, two = make_layer(entries, compression), make_layer(entries, compression)
        assert (one.digest, one.diff_id) == (two.digest, two.diff_id)
    with pytest.raises(ValueError, match="hardlink"):
        build_tar([Hardlink("/a", "/missing")])
