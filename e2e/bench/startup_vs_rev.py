"""crid-runtime's start-up, this checkout against an earlier revision, same run.

    python -P -m e2e.bench.startup_vs_rev [--against REV] [--rounds N]

What a change to packaging or imports may cost every container: the runtime
starts for each create, start, state, kill and delete. Both trees are laid
out as a wheel installs them (``crid/`` with ``api/``, ``oci/``, ``image/``,
``network/`` inside), byte-compiled, and started through the ``-IS``
launcher (``crid.oci.launcher``) running ``state`` of a container that does
not exist: interpreter start-up, crid's imports and the state lookup.
Rounds alternate between the two, so both see the same load; the ratio of
the medians is the figure. ``--against`` defaults to ``HEAD``: the
uncommitted change.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from crid.oci import launcher

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"crid": "crid", "api": "crid/api", "oci": "crid/oci", "image": "crid/image",
           "network": "crid/network"}


def installed_layout(source: Path, target: Path) -> Path:
    """``target`` holding crid as a wheel lays it out, from a tree shaped like the repo."""
    for folder, where in FOLDERS.items():
        shutil.copytree(source / folder, target / where, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-P", "-m", "compileall", "-q", str(target)], check=True)
    return target


def export(revision: str, target: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, *FOLDERS],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def runtime_script(tree: Path, path: Path) -> Path:
    path.write_text(launcher.script(sys.executable, str(tree)))
    path.chmod(0o755)
    return path


def measure(commands: dict[str, list[str]], rounds: int) -> dict[str, float]:
    taken: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            taken[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(times) for name, times in taken.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m e2e.bench.startup_vs_rev",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD", help="git revision (default HEAD)")
    parser.add_argument("--rounds", type=int, default=300, help="runs of each (default 300)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crid-startup-") as tmp:
        work = Path(tmp)
        trees = {"checkout": installed_layout(REPO, work / "checkout"),
                 args.against: installed_layout(export(args.against, work / "exported"),
                                                work / "against")}
        state_root = work / "state"
        state_root.mkdir()
        commands = {name: [str(runtime_script(tree, work / f"runtime-{index}")),
                           "--root", str(state_root), "state", "no-such-container"]
                    for index, (name, tree) in enumerate(trees.items())}
        medians = measure(commands, args.rounds)
    print(f"crid-runtime start-up (state of a missing container), median of {args.rounds} (ms):")
    for name, median in medians.items():
        print(f"  {median:7.2f}  {name}")
    print(f"ratio checkout/{args.against}: {medians['checkout'] / medians[args.against]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
