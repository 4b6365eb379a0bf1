"""The node image: the repository's ``Dockerfile`` built here, without Docker Hub
or a Python index, and pushed to a test registry.

Owns three steps and their caches:

1. the base, a ``debian:bookworm-slim``-like root made by ``mmdebstrap`` from
   Debian's mirror, cached as ``build/node-image/base-<key>.tar`` and imported
   into podman's storage as ``localhost/crid-node-base:<key>`` (the key hashes
   mmdebstrap's arguments and version and the host's Debian sources: new
   inputs, new base);
2. the build context (``build/node-image/context``): the Dockerfile, the
   runtime lock, ``manifests/crid.toml``, crid's wheel built from the checkout
   and the locked runtime wheels taken from ``build/wheels``;
3. ``podman build --pull=never`` of it as ``localhost/crid-node-<checkout>:<key>``
   (the key hashes the context and the base), then ``skopeo copy`` to a registry.

Caches are bounded: one base tarball, one base image, and one node image per
checkout; older ones are removed when a new one is made. podman's layer cache keeps
the apt step of the Dockerfile between runs while the base is unchanged.

``python -P -m e2e.deploy.node_image [TAG]`` (``make node-image``) builds the
image into podman's storage by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
CACHE = CHECKOUT / "build" / "node-image"
WHEELS = CHECKOUT / "build" / "wheels"
PYTHON = Path(sys.executable)

BASE_REPOSITORY = "localhost/crid-node-base"
# One per checkout: checkouts side by side (worktrees) building at the same
# time must not remove each other's image while it is pushed.
NODE_REPOSITORY = f"localhost/crid-node-{hashlib.sha256(str(CHECKOUT).encode()).hexdigest()[:8]}"

# What debian:bookworm-slim is: minbase, without docs, man pages and
# translations (dpkg keeps excluding them for packages installed later).
MMDEBSTRAP_ARGS = (
    "--variant=minbase",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
    "bookworm",
)
# The Debian mirrors the host's apt uses (deb822), which are what a closed
# network lets through: mmdebstrap's own default adds security.debian.org.
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")

# Minutes, not seconds: apt and pip run inside, on 2 shared cores.
BUILD_TIMEOUT = 600


def _run(*command: str, timeout: float = BUILD_TIMEOUT, env: dict[str, str] | None = None
         ) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL,
                          env=None if env is None else {**os.environ, **env})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with {done.returncode}:\n"
                           f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def _digest(*parts: bytes) -> str:
    hashed = hashlib.sha256()
    for part in parts:
        # Length-prefixed, so no two different part lists hash alike.
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.hexdigest()[:16]


def _tags(repository: str) -> list[str]:
    listed = _run("podman", "images", "--format", "json", "--filter",
                  f"reference={repository}")
    found: list[str] = []
    for image in json.loads(listed or "[]"):
        found.extend(name for name in image.get("Names") or [] if name.startswith(repository + ":"))
    return found


def _image_exists(reference: str) -> bool:
    return subprocess.run(["podman", "image", "exists", reference],
                          capture_output=True, check=False).returncode == 0


def _remove_other_tags(repository: str, keep: str) -> None:
    """Bound the cache: other tags of ``repository`` go (and their untagged layers).
    A base that another checkout's node image still sits on stays until that
    one is rebuilt (podman refuses to remove it)."""
    for name in _tags(repository):
        if name != keep:
            subprocess.run(["podman", "rmi", name], capture_output=True, check=False)


def base_image() -> str:
    """The mmdebstrap base in podman's storage; made (about 20 s) only when missing."""
    version = _run("mmdebstrap", "--version").strip()
    sources = HOST_SOURCES.read_bytes() if HOST_SOURCES.is_file() else b""
    key = _digest(version.encode(), sources, *(arg.encode() for arg in MMDEBSTRAP_ARGS))
    reference = f"{BASE_REPOSITORY}:{key}"
    if _image_exists(reference):
        return reference
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"base-{key}.tar"
    if not tarball.exists():
        for old in [*CACHE.glob("base-*.tar"), *CACHE.glob("making-*.tar")]:
            old.unlink()
        # Renamed when complete: an interrupted run leaves no tarball that looks
        # finished. (mmdebstrap picks its output format from the ".tar" suffix.)
        making = CACHE / f"making-{key}.tar"
        mirrors = [str(HOST_SOURCES)] if sources else []
        _run("mmdebstrap", *MMDEBSTRAP_ARGS, str(making), *mirrors)
        making.rename(tarball)
    _run("podman", "import", str(tarball), reference)
    return reference


@dataclass(frozen=True)
class Context:
    path: Path
    key: str  # hashes every file of the context


def build_context() -> Context:
    """The Dockerfile's context, assembled from the checkout without an index."""
    context = CACHE / "context"
    shutil.rmtree(context, ignore_errors=True)
    wheels = context / "wheels"
    wheels.mkdir(parents=True)
    shutil.copy(CHECKOUT / "Dockerfile", context / "Dockerfile")
    shutil.copy(CHECKOUT / "requirements.txt", context / "requirements.txt")
    shutil.copy(CHECKOUT / "manifests" / "crid.toml", context / "crid.toml")
    # Exactly the wheels the runtime lock names, checked against its hashes.
    _run(str(PYTHON), "-P", "-m", "pip", "download", "-q", "--no-deps", "--no-index",
         "--find-links", str(WHEELS), "--require-hashes", "-r",
         str(CHECKOUT / "requirements.txt"), "-d", str(wheels))
    # The checkout's crid, as a wheel (the same sources the tests import), made
    # from its sdist as e2e/packaging does: built in place, a module deleted
    # from the checkout would live on in build/lib and ship. A fixed
    # SOURCE_DATE_EPOCH gives the zip fixed timestamps: the same sources make
    # the same bytes, so the context key (and podman's layer cache) only
    # changes when they do.
    dist = CACHE / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    _run(str(PYTHON), "-P", "-m", "build", "--no-isolation", "--outdir", str(dist),
         str(CHECKOUT), env={"SOURCE_DATE_EPOCH": "315532800"})
    for wheel in dist.glob("crid-*.whl"):
        shutil.copy(wheel, wheels / wheel.name)
    parts: list[bytes] = []
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(context)).encode(), path.read_bytes()]
    return Context(context, _digest(*parts))


def build(tag: str | None = None) -> str:
    """Build the Dockerfile on the local base; the image's reference in podman's storage."""
    base = base_image()
    context = build_context()
    reference = f"{NODE_REPOSITORY}:{_digest(base.encode(), context.key.encode())}"
    if not _image_exists(reference):
        # --network=host: apt in the Dockerfile reaches Debian's mirror the way
        # the host does. --pull=never: the base is local, nothing is pulled.
        _run("podman", "build", "--pull=never", "--network=host", "--layers",
             "--build-arg", f"BASE={base}", "--tag", reference, str(context.path))
    # Only now: the old image's layers (apt's above all) were the build's cache.
    # Node images sit on a base: old ones go first, then old bases can.
    _remove_other_tags(NODE_REPOSITORY, keep=reference)
    _remove_other_tags(BASE_REPOSITORY, keep=base)
    if tag is not None:
        _run("podman", "tag", reference, tag)
    return reference


def push(reference: str, destination: str) -> None:
    """Copy an image from podman's storage to ``destination`` (``host:port/name:tag``)
    over plain HTTP (the test registry is on loopback)."""
    _run("skopeo", "copy", "--quiet", "--dest-tls-verify=false",
         f"containers-storage:{reference}", f"docker://{destination}")


def main(argv: list[str]) -> int:
    started = time.monotonic()
    reference = build(argv[0] if argv else None)
    print(f"{reference} built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(reference)
    return 0


if __name__ == "__main__":
    os.chdir(CHECKOUT)
    sys.exit(main(sys.argv[1:]))
