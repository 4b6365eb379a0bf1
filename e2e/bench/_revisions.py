"""What the ``*_vs_rev`` benchmarks share: this checkout and an earlier revision,
each laid out as a wheel installs crid and started through the ``-IS``
launcher, so a change is measured against what came before in one run.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from crid.oci import launcher

from e2e.bench import _command as command

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


def report_ratio(against: str, checkout: float, earlier: float) -> None:
    print(f"ratio checkout/{against}: {checkout / earlier:.3f}")


def report_medians(title: str, medians: dict[str, float], against: str) -> None:
    """``title``, each median (ms) with its tree's name, and the ratio."""
    print(f"{title}, median (ms):")
    for name, median in medians.items():
        print(f"  {median:7.2f}  {name}")
    report_ratio(against, medians["checkout"], medians[against])
