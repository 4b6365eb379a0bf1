"""Benchmark: CRI PullImage of a many-file image of real trees, crid against containerd.

``python -m e2e.bench.pull_many`` tars real directory trees of this host
(headers, Python's library, man pages, icons, time zones, and a few large
compiler binaries: 6 layers, ~400 MB, ~47,000 entries; cached in
``/var/tmp/crid-bench-pull-many``), in a gzip variant (``gzip -6 -n``) and a
zstd one (the ``zstd`` CLI, ``-3 -T0`` from stdin, so its frame carries no
content size, as images built by common tools do), pushes both to a private
registry on loopback, then per round and variant pulls the image from empty
into a fresh crid and a fresh containerd (Debian's 1.6, its CRI plugin, the
overlayfs snapshotter), both through CRI ``PullImage``, in an order that
turns each round, and prints the best of each and the ratio crid/containerd
per variant (target <= 0.8).

Unlike ``e2e.bench.images`` (synthetic content, containerd through ``ctr``),
the content here is what images are made of: tens of thousands of small
files of real sizes and compressibility, some large ones.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.bench import _command as command
from e2e.bench._containerd import containerd_daemon
from e2e.bench.images import time_crid
from e2e.fixtures.daemon import remove_workdir
from e2e.fixtures.images import Image, push
from e2e.fixtures.layers import DEFAULT_MTIME, Compression, Layer
from e2e.fixtures.registry import Registry

CACHE = Path("/var/tmp/crid-bench-pull-many")
# One tuple of host trees per layer (globs; missing ones are skipped).
LAYER_TREES: tuple[tuple[str, ...], ...] = (
    ("/usr/share/man",),
    ("/usr/include",),
    ("/usr/lib/python3.*",),
    ("/usr/lib/python3", "/usr/share/icons"),
    ("/usr/share/zoneinfo", "/usr/share/i18n", "/usr/share/perl"),
    ("/usr/lib/gcc/*/*/cc1", "/usr/lib/gcc/*/*/lto1"),
)
# Deterministic tars: sorted names, root-owned, one mtime, no atime/ctime records.
TAR_FLAGS = ("--sort=name", "--owner=0", "--group=0", "--numeric-owner",
             f"--mtime=@{DEFAULT_MTIME}", "--format=pax",
             "--pax-option=delete=atime,delete=ctime", "--no-recursion")
COMPRESSORS = {
    Compression.GZIP: ("gzip", "-6", "-n", "-c"),
    Compression.ZSTD: ("zstd", "-3", "-T0", "-q", "-c"),  # stdin: no content size
}
# Pulls only: CNI is never asked for a pod.
LOOPBACK_CONFLIST: dict[str, object] = {
    "cniVersion": "1.0.0", "name": "pull-bench", "plugins": [{"type": "loopback"}]}


def _trees(patterns: Sequence[str]) -> list[str]:
    """Paths relative to / of every entry under the trees the globs name, sorted."""
    found: list[str] = []
    for pattern in patterns:
        for top in sorted(Path("/").glob(pattern.lstrip("/"))):
            if top.is_symlink() or not top.is_dir():
                found.append(str(top.relative_to("/")))
                continue
            # Dirs, files and symlinks; a host socket or fifo is no image content.
            listed = subprocess.run(
                ["find", str(top.relative_to("/")), "(", "-type", "d", "-o", "-type", "f",
                 "-o", "-type", "l", ")", "-print0"],
                cwd="/", check=True, capture_output=True).stdout
            found.extend(p.decode() for p in listed.split(b"\0") if p)
    return sorted(set(found))


def _layer_tar(index: int) -> bytes:
    """The layer's tar, cached: rebuilt only when the list of paths changes."""
    paths = _trees(LAYER_TREES[index])
    key = hashlib.sha256("\0".join(paths).encode()).hexdigest()[:12]
    cached = CACHE / f"layer{index}-{key}.tar"
    if not cached.exists():
        for stale in CACHE.glob(f"layer{index}-*"):
            stale.unlink()
        tmp = cached.with_suffix(".tmp")
        subprocess.run(["tar", "-C", "/", *TAR_FLAGS, "--null", "-T", "-", "-cf", str(tmp)],
                       input=b"\0".join(p.encode() for p in paths), check=True)
        tmp.rename(cached)
    return cached.read_bytes()


def _blob(tar: bytes, index: int, compression: Compression) -> bytes:
    digest = hashlib.sha256(tar).hexdigest()[:12]
    cached = CACHE / f"layer{index}-{digest}.{compression.value}"
    if not cached.exists():
        tmp = cached.with_suffix(".tmp")
        with tmp.open("wb") as out:
            subprocess.run(COMPRESSORS[compression], input=tar, stdout=out, check=True)
        tmp.rename(cached)
    return cached.read_bytes()


def layers(compression: Compression) -> list[Layer]:
    CACHE.mkdir(parents=True, exist_ok=True)
    found = []
    for index in range(len(LAYER_TREES)):
        tar = _layer_tar(index)
        found.append(Layer(tar=tar, blob=_blob(tar, index, compression),
                           compression=compression))
    return found


def time_containerd(registry: Registry, reference: str, kept: list[Path]) -> float:
    """One CRI PullImage into a fresh containerd (its own root; the pause
    image pulled first, outside the timing); its dir goes on ``kept``."""
    with containerd_daemon(registry, LOOPBACK_CONFLIST, keep_workdir=True) as containerd:
        kept.append(containerd.workdir)
        started = time.monotonic()
        containerd.images.PullImage(
            api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=reference)), timeout=600)
        return time.monotonic() - started


def time_crid_kept(reference: str, kept: list[Path]) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="crid-bench-", dir="/var/tmp"))
    kept.append(workdir)
    return time_crid(reference, workdir=workdir)


def _entries(tar: bytes) -> int:
    listed = subprocess.run(["tar", "-t"], input=tar, capture_output=True, check=True).stdout
    return listed.count(b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = command.parser("e2e.bench.pull_many", __doc__,
                            rounds=(3, "pulls per variant and runtime; the best is kept"))
    args = parser.parse_args(argv)
    missing = [tool for tool in ("containerd", "zstd", "gzip", "tar")
               if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (make bench installs them)", file=sys.stderr)
        return 1
    # Every store is removed at the end, none between pulls: ext4 (without a
    # journal, as here) passes over inodes freed in the last minutes when it
    # allocates new ones, so a pull soon after a 45,000-file store was removed
    # spends seconds more in the kernel (perf: recently_deleted() under
    # ext4_create), whoever pulls. What earlier work freed still weighs on the
    # first pulls: the order turns each round, and the best run counts.
    kept: list[Path] = []
    try:
        with Registry() as registry:
            variants = {}
            for compression in (Compression.GZIP, Compression.ZSTD):
                found = layers(compression)
                pushed = push(registry, "pull-many", compression.value, Image(tuple(found)))
                variants[compression] = (found, pushed.reference)
            times = _rounds(registry, {c: ref for c, (_, ref) in variants.items()},
                            args.rounds, kept)
    finally:
        for workdir in kept:
            remove_workdir(workdir)
    for compression, (found, _) in variants.items():
        crid, ctrd = times[compression, "crid"], times[compression, "containerd"]
        ratio = min(crid) / min(ctrd)
        print(f"pull many files {compression.value}: {len(found)} layers, "
              f"{sum(len(layer.tar) for layer in found) / 1e6:.0f} MB uncompressed, "
              f"{sum(layer.size for layer in found) / 1e6:.0f} MB compressed, "
              f"{sum(_entries(layer.tar) for layer in found)} entries | best of "
              f"{args.rounds}: crid {min(crid):.2f}s | containerd {min(ctrd):.2f}s | "
              f"ratio {ratio:.2f} (target <= 0.8) | every run crid {_seconds(crid)} "
              f"containerd {_seconds(ctrd)}", flush=True)
    return 0


def _rounds(registry: Registry, references: dict[Compression, str], rounds: int,
            kept: list[Path]) -> dict[tuple[Compression, str], list[float]]:
    """Each round pulls every variant into both, in an order that turns."""
    runs: list[tuple[Compression, str]] = [
        (compression, runtime) for compression in references
        for runtime in ("crid", "containerd")]
    times: dict[tuple[Compression, str], list[float]] = {run: [] for run in runs}
    for round_ in range(rounds):
        for compression, runtime in runs[round_ % len(runs):] + runs[:round_ % len(runs)]:
            reference = references[compression]
            times[compression, runtime].append(
                time_crid_kept(reference, kept) if runtime == "crid"
                else time_containerd(registry, reference, kept))
    return times


def _seconds(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    sys.exit(main())
