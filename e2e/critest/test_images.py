"""The critest look-alikes have the properties critest's specs rely on."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.critest import images
from e2e.fixtures.daemon import DaemonFactory, free_port
from e2e.fixtures.images import Image, PushedImage
from e2e.fixtures.registry import Registry


@pytest.fixture(scope="module")
def pushed(registry: Registry) -> dict[str, PushedImage]:
    return images.push_all(registry)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox look-alike's root, unpacked by GNU tar (which keeps hard links)."""
    root = tmp_path_factory.mktemp("busybox-root")
    layer = images.busybox().layers[0]
    subprocess.run(["tar", "-x", "-C", str(root)], input=layer.tar, check=True)
    return root


def test_every_critest_reference_is_pushed(pushed: dict[str, PushedImage]) -> None:
    names = set(pushed)
    for name in ("e2e-test-images/busybox:1.29-2", "e2e-test-images/nginx:1.14-2",
                 "e2e-test-images/httpd:2.4.39-4", "e2e-test-images/nonewprivs:1.3",
                 "pause:3.9", "k8s-staging-cri-tools/hostnet-nginx-amd64:latest",
                 "k8s-staging-cri-tools/test-image-predefined-group:latest"):
        assert name in names
    ids = {pushed[f"k8s-staging-cri-tools/test-image-{n}:latest"].image_id
           for n in ("1", "2", "3", "latest")}
    assert len(ids) == 4, "each test-image-N needs its own image ID"
    tag = "k8s-staging-cri-tools/test-image-tag"
    assert pushed[f"{tag}:test"].digest == pushed[f"{tag}:all"].digest
    tags = [pushed[f"k8s-staging-cri-tools/test-image-tags:{n}"] for n in "123"]
    assert len({p.digest for p in tags}) == 1
    assert all(p.media_type.endswith("index.v1+json") for p in tags)
    assert pushed["k8s-staging-cri-tools/test-image-user-username-group:latest"].image_id != \
        pushed["k8s-staging-cri-tools/test-image-user-uid-group:latest"].image_id


def test_pause_is_one_image_under_both_registry_names(
        pushed: dict[str, PushedImage], registry: Registry, crid_factory: DaemonFactory) -> None:
    daemon = crid_factory(start=False)
    daemon.registries_conf.write_text(images.registries_conf(registry))
    daemon.start()
    refs = []
    for name in ("registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"):
        refs.append(daemon.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=name))).image_ref)
    assert refs[0] == refs[1] == pushed["pause:3.9"].image_id
    status = daemon.image.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image="k8s.gcr.io/pause:3.9"))).image
    assert set(status.repo_tags) == {"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"}


def test_applets_are_hard_links_and_sh_execs_them(rootfs: Path) -> None:
    busybox = (rootfs / "bin/busybox").stat()
    for applet in ("sh", "ls", "top", "sleep", "cat", "nc", "hostname", "id", "pidof"):
        assert (rootfs / "bin" / applet).stat().st_ino == busybox.st_ino, applet
    # A masked applet: only a shell that execs /bin/ls (rather than running the
    # applet in-process, as the static busybox does) gets EACCES.
    (rootfs / "bin/ls").unlink()
    (rootfs / "bin/ls").write_bytes(b"")
    os.chmod(rootfs / "bin/ls", 0)
    done = subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", "ls"],
                          capture_output=True, text=True, check=False)
    assert done.stderr == "/bin/sh: ls: Permission denied\n"
    assert done.returncode == 126


def test_pgrep_and_ipcs_are_scripts_over_proc(rootfs: Path) -> None:
    for tool in ("pgrep", "ipcs"):
        assert (rootfs / "bin" / tool).read_bytes().startswith(b"#!/bin/sh\n")
        assert os.access(rootfs / "bin" / tool, os.X_OK)
    # Run them against the host's /proc: the same files a container sees in its own.
    script = (rootfs / "bin/pgrep").read_text()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        out = subprocess.run(["/bin/sh", "-c", script, "pgrep", "sleep"],
                             capture_output=True, text=True, check=True).stdout
        assert str(sleeper.pid) in out.split()
    finally:
        sleeper.kill()
        sleeper.wait()


def _setuid_layer_mode(image: Image, path: str) -> int:
    with tarfile.open(fileobj=io.BytesIO(image.layers[-1].tar)) as tar:
        return tar.getmember(path.lstrip("/")).mode


def test_nonewprivs_binary_is_setuid_root_and_reports_euid(tmp_path: Path) -> None:
    image = images.nonewprivs()
    binary = "/usr/local/bin/nonewprivs"
    assert _setuid_layer_mode(image, binary) == 0o4755
    assert image.config.cmd == (binary,)
    path = tmp_path / "nonewprivs"
    path.write_bytes(images.c_program("nonewprivs.c"))
    os.chmod(path, 0o4755)
    tmp_path.chmod(0o755)
    as_user = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
    out = subprocess.run([*as_user, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout == "Effective uid: 0\n"
    out = subprocess.run([*as_user, "--no-new-privs", str(path)], capture_output=True,
                         text=True, check=True)
    assert out.stdout == "Effective uid: 1000\n"


def test_nginx_lookalike_serves_and_looks_like_nginx(tmp_path: Path) -> None:
    config = images.nginx().config
    assert config.cmd is not None and config.cmd[3] == "/var/run/nginx.pid"
    binary = tmp_path / "nginx"
    binary.write_bytes(images.c_program("tinyweb.c"))
    binary.chmod(0o755)
    (tmp_path / "index.html").write_text("hello\n")
    port = free_port()
    pidfile = tmp_path / "nginx.pid"
    proc = subprocess.Popen([str(binary), str(port), str(tmp_path / "index.html"), str(pidfile),
                             "banner", images.NGINX_TITLE], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"banner\n"
        assert pidfile.read_text() == f"{proc.pid}\n"
        assert b"master process" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert Path(f"/proc/{proc.pid}/comm").read_text() == "nginx\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"hello\n"
    finally:
        proc.kill()
        proc.wait()


def test_predefined_group_image_users() -> None:
    image = images.predefined_group()
    assert image.config.user == "1000"
    with tarfile.open(fileobj=io.BytesIO(image.layers[-1].tar)) as tar:
        group = tar.extractfile("etc/group")
        passwd = tar.extractfile("etc/passwd")
        assert group is not None and passwd is not None
        assert "group-defined-in-image:x:50000:default-user" in group.read().decode()
        assert "default-user:x:1000:1000:" in passwd.read().decode()


def test_registries_conf_maps_every_critest_registry(registry: Registry) -> None:
    conf = images.registries_conf(registry)
    for prefix in ("registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io"):
        assert f'prefix = "{prefix}"' in conf
    assert conf.count(f'location = "{registry.host}"') == 8
    assert conf.count("[[registry.mirror]]") == 4
