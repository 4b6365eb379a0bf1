"""Benchmark: pull + unpack of a realistic image, crid against containerd.

``python -m e2e.bench.images`` builds (once, cached) a synthetic image of
about 450 MB uncompressed in 6 layers with tens of thousands of files, in a
gzip and a zstd variant, pushes both to a private registry on loopback, then
for each variant times, each from an empty store:

- crid: a private daemon, ``PullImage`` over the CRI socket;
- containerd (Debian's 1.6, private root/state/socket/config in a temp dir):
  ``ctr images pull --plain-http``, which fetches and unpacks into its
  overlayfs snapshotter.

It prints seconds for both and the ratio crid/containerd (target <= 1.0).

``--sync-fs-cost`` times crid alone instead, with ``pull_with_sync_fs`` on
(the default: each layer flushed to disk before it is committed) and off,
alternating in one run, and prints the ratio on/off.
"""

from __future__ import annotations

import gzip
import io
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.bench import _command as command
from e2e.fixtures.daemon import CridDaemon, remove_workdir
from e2e.fixtures.images import Image, push
from e2e.fixtures.layers import DEFAULT_MTIME, Compression, Layer
from e2e.fixtures.registry import Registry

CACHE = Path("/var/tmp/crid-bench-images")
FORMAT_VERSION = 2  # bump when the generated content changes
LAYERS = 6
# Per layer: (small files, their max size, large files, their size)
LAYER_SHAPE = [
    (12_000, 6_000, 4, 15_000_000),
    (8_000, 8_000, 6, 8_000_000),
    (6_000, 4_000, 8, 6_000_000),
    (4_000, 12_000, 5, 10_000_000),
    (3_000, 2_000, 3, 20_000_000),
    (2_000, 16_000, 3, 10_000_000),
]
WORDS = [f"w{i:x}" for i in range(4096)]
# A node's daemon has been up a while when a pull comes: its start-up work
# (the spare unpackers' interpreters) is done, as containerd's is after its
# own start and the pause image's pull.
SETTLE_SECONDS = 1.0


def _content(rng: random.Random, size: int) -> bytes:
    """Half incompressible, half text-like: compresses about 2-3x, like real binaries."""
    half = size // 2
    words = " ".join(rng.choices(WORDS, k=max(1, (size - half) // 4)))
    return (rng.randbytes(half) + words.encode())[:size]


def _layer_tar(index: int) -> bytes:
    rng = random.Random(f"crid-bench-{index}")
    small, small_max, large, large_size = LAYER_SHAPE[index]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = [f"layer{index}/d{a:02d}/e{b:02d}" for a in range(40) for b in range(10)]
        made: set[str] = set()
        for n in range(small + large):
            directory = dirs[n % len(dirs)]
            parts = directory.split("/")
            for depth in range(1, len(parts) + 1):
                sub = "/".join(parts[:depth])
                if sub not in made:
                    made.add(sub)
                    info = tarfile.TarInfo(sub)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, DEFAULT_MTIME
                    tar.addfile(info)
            size = large_size if n >= small else rng.randint(64, small_max)
            data = _content(rng, size)
            info = tarfile.TarInfo(f"{directory}/f{n:06d}")
            info.size, info.mode, info.mtime = len(data), 0o644, DEFAULT_MTIME
            tar.addfile(info, io.BytesIO(data))
            if n % 50 == 0:
                link = tarfile.TarInfo(f"{directory}/l{n:06d}")
                link.type, link.linkname, link.mtime = tarfile.SYMTYPE, f"f{n:06d}", DEFAULT_MTIME
                tar.addfile(link)
    return buf.getvalue()


def _layers(compression: Compression) -> list[Layer]:
    CACHE.mkdir(parents=True, exist_ok=True)
    layers = []
    for index in range(LAYERS):
        stem = CACHE / f"v{FORMAT_VERSION}-layer{index}"
        tar_path, blob_path = stem.with_suffix(".tar"), stem.with_suffix(f".{compression.value}")
        if not tar_path.exists():
            tmp = tar_path.with_suffix(".tmp")
            tmp.write_bytes(_layer_tar(index))
            tmp.rename(tar_path)
        raw = tar_path.read_bytes()
        if not blob_path.exists():
            tmp = blob_path.with_suffix(".tmp")
            if compression is Compression.GZIP:
                tmp.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
            else:
                tmp.write_bytes(compression.compress(raw))
            tmp.rename(blob_path)
        layers.append(Layer(tar=raw, blob=blob_path.read_bytes(), compression=compression))
    return layers


def time_crid(reference: str, sync_fs: bool = True, workdir: Path | None = None) -> float:
    """One PullImage into a fresh crid daemon (its own root), in seconds.

    ``workdir``: an empty dir for the daemon, which the caller removes (else a
    temp dir removed here)."""
    owned = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="crid-bench-", dir="/var/tmp"))
    daemon = CridDaemon(workdir, config_toml='[crid]\nlog_level = "info"\n[crid.image]\n'
                        f"pull_with_sync_fs = {str(sync_fs).lower()}\n")
    daemon.start()
    try:
        time.sleep(SETTLE_SECONDS)
        started = time.monotonic()
        daemon.image.PullImage(
            api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=reference)), timeout=600)
        return time.monotonic() - started
    finally:
        daemon.stop()
        if owned:
            remove_workdir(workdir)


CONTAINERD_CONFIG = """\
version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{root}/containerd.sock"
[ttrpc]
  address = "{root}/containerd.sock.ttrpc"
[debug]
  address = ""
"""


def _time_containerd(reference: str) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="containerd-bench-", dir="/var/tmp"))
    config = workdir / "config.toml"
    config.write_text(CONTAINERD_CONFIG.format(root=workdir))
    socket = workdir / "containerd.sock"
    log = (workdir / "containerd.log").open("wb")
    process = subprocess.Popen(["containerd", "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ctr", "--address", str(socket), "version"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("containerd did not start: "
                                   + (workdir / "containerd.log").read_text()[-2000:])
            time.sleep(0.1)
        started = time.monotonic()
        subprocess.run(["ctr", "--address", str(socket), "images", "pull", "--plain-http",
                        reference], check=True, capture_output=True)
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        remove_workdir(workdir)


def _sync_fs_cost(rounds: int) -> int:
    with Registry() as registry:
        for compression in (Compression.GZIP, Compression.ZSTD):
            pushed = push(registry, "bench", compression.value,
                          Image(tuple(_layers(compression))))
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(rounds):  # alternating, so load drifts hit both alike
                for sync_fs in (True, False):
                    times[sync_fs].append(time_crid(pushed.reference, sync_fs))
            on, off = min(times[True]), min(times[False])
            print(f"image pull {compression.value}: crid sync_fs on {on:.2f}s | off {off:.2f}s "
                  f"| ratio on/off {on / off:.2f} | all on {times[True]} off {times[False]}",
                  flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = command.parser("e2e.bench.images", __doc__,
                            rounds=(1, "runs per variant; best is kept"))
    parser.add_argument("--sync-fs-cost", action="store_true",
                        help="crid with pull_with_sync_fs on against off, no containerd")
    args = parser.parse_args(argv)
    if args.sync_fs_cost:
        return _sync_fs_cost(args.rounds)
    if shutil.which("containerd") is None:
        print("containerd is not installed (apt-get install containerd)", file=sys.stderr)
        return 1
    worst = 0.0
    with Registry() as registry:
        for compression in (Compression.GZIP, Compression.ZSTD):
            layers = _layers(compression)
            pushed = push(registry, "bench", compression.value, Image(tuple(layers)))
            size = sum(len(layer.tar) for layer in layers)
            blobs = sum(layer.size for layer in layers)
            files = sum(s + large for s, _, large, _ in LAYER_SHAPE)
            crid = min(time_crid(pushed.reference) for _ in range(args.rounds))
            containerd = min(_time_containerd(pushed.reference) for _ in range(args.rounds))
            ratio = crid / containerd
            worst = max(worst, ratio)
            print(f"image pull {compression.value}: {LAYERS} layers, {size / 1e6:.0f} MB "
                  f"uncompressed, {blobs / 1e6:.0f} MB compressed, ~{files} files | "
                  f"crid {crid:.2f}s | containerd {containerd:.2f}s | "
                  f"ratio {ratio:.2f} (target <= 1.0) | digest {pushed.digest[:19]}",
                  flush=True)
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
