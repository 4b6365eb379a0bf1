"""What the ``*_vs_rev`` benchmarks share: this checkout and an earlier revision,
each laid out as a wheel installs crid and started through the ``-IS``
launcher, so a change is measured against what came before in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

from cri_api.v1 import api_pb2
from crid.oci import launcher

from e2e.bench import _command as command
from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import PodNet, pod_daemon

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"crid": "crid", "api": "crid/api", "oci": "crid/oci", "image": "crid/image",
           "network": "crid/network"}


def parser(module: str, doc: str, rounds: int, what: str,
           **counts: tuple[int, str]) -> argparse.ArgumentParser:
    """``--against REV`` (default HEAD: the uncommitted change), ``--rounds N`` and
    the module's other ``counts`` (see ``_command.parser``)."""
    found = command.parser(module, doc, rounds=(rounds, f"{what} of each"), **counts)
    found.add_argument("--against", default="HEAD", help="git revision (default HEAD)")
    return found


def trees(against: str, work: Path) -> dict[str, Path]:
    """``checkout`` and ``against``, each laid out as a wheel installs crid, under ``work``."""
    return {"checkout": installed_layout(REPO, work / "checkout"),
            against: installed_layout(export(against, work / "exported"), work / "against")}


def runtimes(against: str, work: Path) -> dict[str, str]:
    """crid-runtime launchers for ``checkout`` and for ``against``, made under ``work``."""
    return {name: str(runtime_script(tree, work / f"runtime-{index}"))
            for index, (name, tree) in enumerate(trees(against, work).items())}


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


def daemon_script(tree: Path, path: Path) -> Path:
    """A ``crid`` command that runs the daemon from ``tree`` with this venv's libraries."""
    path.write_text(f"#!{sys.executable} -P\n"
                    "import sys\n"
                    f"sys.path.insert(0, {str(tree)!r})\n"
                    "from crid.cli import main\n"
                    "sys.exit(main())\n")
    path.chmod(0o755)
    return path


def daemons(against: str, work: Path) -> dict[str, tuple[Path, Path]]:
    """``crid`` commands (see ``daemon_script``) for ``checkout`` and ``against``,
    each with the tree it runs, made under ``work``."""
    return {name: (daemon_script(tree, work / f"crid-{index}"), tree)
            for index, (name, tree) in enumerate(trees(against, work).items())}


@contextlib.contextmanager
def revision_daemon(crid: Path, tree: Path, image: str, extra_toml: str = ""
                    ) -> Iterator[tuple[CridDaemon, PodNet]]:
    """``crid``, a ``daemon_script`` of ``tree``, started on its own private pod
    network with ``image`` pulled; its pods and network removed afterwards. A
    tree older than NRI gets no NRI socket of its own (it would not parse one)."""
    with pod_daemon(extra_toml=extra_toml, extra_args=("--log-level", "warning"), crid=crid,
                    own_nri_socket=(tree / "crid" / "nri").is_dir()) as (daemon, net):
        daemon.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)))
        yield daemon, net


def report_ratio(against: str, checkout: float, earlier: float) -> None:
    print(f"ratio checkout/{against}: {checkout / earlier:.3f}")


def report_medians(title: str, medians: dict[str, float], against: str) -> None:
    """``title``, each median (ms) with its tree's name, and the ratio."""
    print(f"{title}, median (ms):")
    for name, median in medians.items():
        print(f"  {median:7.2f}  {name}")
    report_ratio(against, medians["checkout"], medians[against])


def report_steps(title: str, rounds: dict[str, dict[str, list[float]]], against: str) -> None:
    """``title``, then a row per step: its median (ms) over the rounds in each tree,
    the ratio of the medians checkout/``against`` and the median of the rounds'
    own ratios (each round's two figures were taken moments apart, so a load on
    the machine that comes and goes moves both). ``rounds`` maps each tree's
    name to its steps' figures, one per round, in the same order in both."""
    width = max(len(step) for step in rounds["checkout"])
    column = max(10, len(against) + 2)
    print(f"{title}, median (ms):")
    print(f"{'':{width}}{'checkout':>{column}}{against:>{column}}{'ratio':>8}{'paired':>8}")
    for step, figures in rounds["checkout"].items():
        earlier = rounds[against][step]
        median, earlier_median = statistics.median(figures), statistics.median(earlier)
        paired = statistics.median(a / b for a, b in zip(figures, earlier, strict=True))
        print(f"{step:{width}}{median:{column}.2f}{earlier_median:{column}.2f}"
              f"{median / earlier_median:8.3f}{paired:8.3f}")
