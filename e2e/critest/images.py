"""Look-alikes of the images critest pulls, built locally and pushed to a registry.

critest (kubernetes-sigs/cri-tools) pulls fixed names from ``registry.k8s.io``,
``k8s.gcr.io`` and ``gcr.io/k8s-staging-cri-tools``; the network is closed
here, so this module builds images that meet what its specs rely on
(/work/shared/CRITEST.md) and pushes them to a local ``docker-registry`` under
the same repository paths. ``registries_conf()`` then sends those registries
(and ``docker.io``) to the local one, so the runtime under test pulls the
look-alikes by their real names.

The base of every image is Debian's *dynamic* busybox with the glibc files it
needs: its ``sh`` execs applets (separate hard links), where the static
busybox runs them in-process and so ignores a masked ``/bin/ls``. Two small
C programs (``tinyweb.c``, ``nonewprivs.c``, built static with gcc) stand in
for nginx/httpd and for the setuid test binary.

``python -m e2e.critest.images --registries-conf FILE`` starts a registry,
pushes everything, writes the conf and keeps serving until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from e2e.fixtures.images import DEFAULT_ENV, Image, Index, PushedImage, RunConfig, push
from e2e.fixtures.layers import Dir, Entry, File, Hardlink, Layer, Symlink, make_layer
from e2e.fixtures.registry import Registry

HERE = Path(__file__).resolve().parent
CACHE_DIR = Path(os.environ.get("CRID_CRITEST_CACHE", "/var/tmp/crid-critest"))
CATATONIT = "/usr/bin/catatonit"
# The glibc files Debian's dynamic busybox loads (ldd), at their in-image paths.
GLIBC_FILES = (
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libresolv.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
)
LOADER_LINK = "/lib64/ld-linux-x86-64.so.2"

# What critest reaches through each registry; every one maps to the local registry.
MIRRORED_REGISTRIES = ("registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io")
E2E = "e2e-test-images"
CRI_TOOLS = "k8s-staging-cri-tools"
HOSTNET_PORT = 12003
NGINX_TITLE = "nginx: master process nginx -g daemon off;"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n"

# pgrep and ipcs are not in Debian's busybox; the specs only need these forms.
PGREP = """#!/bin/sh
# pgrep PATTERN: pids of processes whose name matches PATTERN (look-alike).
[ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
found=1
for dir in /proc/[0-9]*; do
    name=$(cat "$dir/comm" 2>/dev/null) || continue
    if echo "$name" | grep -q -- "$1"; then
        echo "${dir#/proc/}"
        found=0
    fi
done
exit $found
"""
IPCS = """#!/bin/sh
# ipcs -m: the System V shared memory segments of this IPC namespace (look-alike).
[ "$1" = "-m" ] || { echo "usage: ipcs -m" >&2; exit 2; }
echo
echo "------ Shared Memory Segments --------"
echo "shmid      owner      bytes"
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size rest; do
    echo "$shmid root $size"
done
echo
"""


def _run(*command: str, cwd: Path | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")


def _cached(name: str, make: Callable[[Path], None]) -> bytes:
    """The bytes of CACHE_DIR/name, made by ``make(tmp_path)`` the first time.

    Written to a temp file and renamed, so concurrent runs never see half a file.
    """
    path = CACHE_DIR / name
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
            out = Path(tmp) / name
            make(out)
            os.replace(out, path)
    return path.read_bytes()


def _debian_busybox(out: Path) -> None:
    # Package `busybox` conflicts with the installed busybox-static, so it is
    # only downloaded and unpacked, never installed.
    work = out.parent
    _run("apt-get", "download", "busybox", cwd=work)
    deb = next(work.glob("busybox_*.deb"))
    _run("dpkg-deb", "-x", str(deb), str(work / "root"))
    shutil.copy2(work / "root" / "bin" / "busybox", out)


@functools.cache
def dynamic_busybox() -> bytes:
    """Debian's dynamically linked busybox binary (downloaded once, then cached)."""
    return _cached("busybox-dynamic", _debian_busybox)


def _compile(source: str) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        _run("gcc", "-static", "-O2", "-Wall", "-o", str(out), str(HERE / source))
    return make


@functools.cache
def c_program(source: str) -> bytes:
    """A static binary built from a C file next to this module (cached per content)."""
    tag = hashlib.sha256((HERE / source).read_bytes()).hexdigest()[:12]
    return _cached(f"{Path(source).stem}-{tag}", _compile(source))


@functools.cache
def applets() -> tuple[str, ...]:
    """The applet names of the dynamic busybox, asked from the binary itself."""
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "busybox"
        binary.write_bytes(dynamic_busybox())
        binary.chmod(0o755)
        listed = subprocess.run([str(binary), "--list"], capture_output=True, text=True,
                                check=True).stdout.split()
    return tuple(sorted(set(listed) - {"busybox"}))


def base_entries(passwd: str = PASSWD, group: str = GROUP) -> list[Entry]:
    """A root filesystem: dynamic busybox + glibc, applets as hard links, users."""
    entries: list[Entry] = [
        File("/bin/busybox", dynamic_busybox(), mode=0o755),
        File("/bin/pgrep", PGREP.encode(), mode=0o755),
        File("/bin/ipcs", IPCS.encode(), mode=0o755),
        Symlink(LOADER_LINK, GLIBC_FILES[2]),
        File("/etc/passwd", passwd.encode()),
        File("/etc/group", group.encode()),
        Dir("/tmp", mode=0o1777),
        Dir("/var/tmp", mode=0o1777),
        Dir("/var/run"),
        Dir("/proc", mode=0o555),
        Dir("/sys", mode=0o555),
        Dir("/dev"),
        Dir("/etc"),
        Dir("/root", mode=0o700),
        Dir("/var/www", uid=33, gid=33),
        Dir("/usr/bin"),
        Dir("/usr/sbin"),
        Dir("/sbin"),
    ]
    for lib in GLIBC_FILES:
        entries.append(File(lib, Path(lib).read_bytes(), mode=0o755))
    entries += [Hardlink(f"/bin/{name}", "/bin/busybox") for name in applets()]
    return entries


@functools.cache
def base_layer() -> Layer:
    return make_layer(base_entries())


SHELL = RunConfig(cmd=("sh",))


def _image(*extra: Layer, config: RunConfig = SHELL) -> Image:
    return Image((base_layer(), *extra), config=config)


def busybox() -> Image:
    """The default test image (``e2e-test-images/busybox:1.29-2``)."""
    return _image()


def _web(binary_path: str, index: str, page: str) -> Layer:
    return make_layer([
        File(binary_path, c_program("tinyweb.c"), mode=0o755),
        File(index, page.encode()),
    ])


def nginx(port: int = 80) -> Image:
    """A web server whose pid file, name and cmdline look like nginx's."""
    index = "/usr/share/nginx/html/index.html"
    page = "<html><head><title>Welcome to nginx!</title></head>" \
           "<body><h1>Welcome to nginx!</h1></body></html>\n"
    cmd = ("/usr/sbin/nginx", str(port), index, "/var/run/nginx.pid",
           f"nginx look-alike listening on port {port}", NGINX_TITLE)
    config = RunConfig(cmd=cmd, exposed_ports=(f"{port}/tcp",), stop_signal="SIGQUIT")
    return _image(_web("/usr/sbin/nginx", index, page), config=config)


def httpd() -> Image:
    """A web server on port 80 that logs a line naming httpd to stdout."""
    index = "/usr/local/apache2/htdocs/index.html"
    cmd = ("/usr/local/apache2/bin/httpd", "80", index, "-",
           "httpd look-alike (Apache/2.4.39): listening on port 80", "-")
    config = RunConfig(cmd=cmd, exposed_ports=("80/tcp",), working_dir="/usr/local/apache2")
    return _image(_web(cmd[0], index, "<html><body><h1>It works!</h1></body></html>\n"),
                  config=config)


def nonewprivs() -> Image:
    """Runs a setuid-root binary that prints its effective uid."""
    binary = "/usr/local/bin/nonewprivs"
    layer = make_layer([File(binary, c_program("nonewprivs.c"), mode=0o4755)])
    return _image(layer, config=RunConfig(cmd=(binary,)))


def pause() -> Image:
    """catatonit in pause mode as ``/pause``: no shell, nothing else."""
    layer = make_layer([File("/pause", Path(CATATONIT).read_bytes(), mode=0o755)])
    config = RunConfig(entrypoint=("/pause", "-P"), cmd=None, user="65535:65535",
                       env=DEFAULT_ENV)
    return Image((layer,), config=config)


def marked(name: str) -> Image:
    """busybox plus a file named after the image, so each has its own ID."""
    return _image(make_layer([File(f"/{name}", f"{name}\n".encode())]))


def multi_platform() -> Index:
    """One index (amd64 and arm64 entries, both runnable here as amd64 bytes)."""
    marker = make_layer([File("/test-image-tags", b"test-image-tags\n")])
    amd64 = _image(marker)
    arm64 = dataclasses.replace(amd64, architecture="arm64", variant="v8")
    return Index((amd64, arm64))


def user(spec: str) -> Image:
    return _image(config=RunConfig(cmd=("sh",), user=spec))


def predefined_group() -> Image:
    """USER 1000 = default-user, member of group-defined-in-image (50000) in /etc/group."""
    passwd = PASSWD + "default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\n"
    group = GROUP + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"
    layer = make_layer([
        File("/etc/passwd", passwd.encode()),
        File("/etc/group", group.encode()),
        Dir("/home/default-user", uid=1000, gid=1000),
    ])
    return _image(layer, config=RunConfig(cmd=("sh",), user="1000"))


def catalog() -> dict[str, Callable[[], Image | Index]]:
    """``repository:tag`` (without registry) -> how to build it.

    ``registry.k8s.io/pause`` and ``k8s.gcr.io/pause`` both map to ``pause``
    here, so they are one image with one digest, as critest expects.
    """
    out: dict[str, Callable[[], Image | Index]] = {
        f"{E2E}/busybox:1.29-2": busybox,
        f"{E2E}/nginx:1.14-2": nginx,
        f"{E2E}/httpd:2.4.39-4": httpd,
        f"{E2E}/nonewprivs:1.3": nonewprivs,
        "pause:3.9": pause,
        f"{CRI_TOOLS}/hostnet-nginx-amd64:latest": lambda: nginx(HOSTNET_PORT),
        f"{CRI_TOOLS}/test-image-predefined-group:latest": predefined_group,
        f"{CRI_TOOLS}/test-image-user-uid:latest": lambda: user("1002"),
        f"{CRI_TOOLS}/test-image-user-username:latest": lambda: user("www-data"),
        f"{CRI_TOOLS}/test-image-user-uid-group:latest": lambda: user("1003:1004"),
        f"{CRI_TOOLS}/test-image-user-username-group:latest": lambda: user("www-data:1004"),
    }
    # test-image-digest is pulled by an upstream digest no look-alike can have;
    # it is pushed anyway so that spec fails on the digest, not on a missing repo.
    for name in ("test-image-1", "test-image-2", "test-image-3", "test-image-latest",
                 "test-image-digest"):
        out[f"{CRI_TOOLS}/{name}:latest"] = functools.partial(marked, name)
    for tag in ("test", "all"):
        out[f"{CRI_TOOLS}/test-image-tag:{tag}"] = functools.partial(marked, "test-image-tag")
    for tag in ("1", "2", "3"):
        out[f"{CRI_TOOLS}/test-image-tags:{tag}"] = multi_platform
    return out


def push_all(registry: Registry) -> dict[str, PushedImage]:
    """Build every look-alike and push it; returns what was pushed, by ``repo:tag``."""
    pushed: dict[str, PushedImage] = {}
    for name, build in catalog().items():
        repository, tag = name.rsplit(":", 1)
        pushed[name] = push(registry, repository, tag, build())
    return pushed


def registries_conf(registry: Registry) -> str:
    """containers-registries.conf(5) v2 sending critest's registries to ``registry``.

    The location itself is the local registry too, not only the mirror: if the
    mirror misses, the runtime must not try the real registry on a closed network.
    """
    blocks = [
        f'[[registry]]\nprefix = "{prefix}"\nlocation = "{registry.host}"\ninsecure = true\n\n'
        f'[[registry.mirror]]\nlocation = "{registry.host}"\ninsecure = true\n'
        for prefix in MIRRORED_REGISTRIES
    ]
    return "# critest look-alikes (e2e/critest/images.py)\n\n" + "\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registries-conf", type=Path, required=True,
                        help="write the mirror config here")
    args = parser.parse_args(argv)
    with Registry() as registry:
        pushed = push_all(registry)
        args.registries_conf.write_text(registries_conf(registry))
        print(f"registry {registry.url}: {len(pushed)} references; "
              f"mirror config in {args.registries_conf}; Ctrl-C to stop", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
