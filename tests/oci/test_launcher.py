"""The fast crid-runtime launcher runs the runtime without site or PYTHON* env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crid.oci import launcher

from crid import __version__


def test_launcher_runs_the_runtime(tmp_path: Path) -> None:
    target = tmp_path / "crid-runtime"
    launcher.install(str(target))
    assert target.read_text().startswith(f"#!{sys.executable} -IS\n")
    out = subprocess.run([str(target), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith(f"crid-runtime version {__version__}\n")


def test_launcher_ignores_pythonpath(tmp_path: Path) -> None:
    # A root program must not import whatever a caller's environment points at.
    evil = tmp_path / "evil" / "crid"
    evil.mkdir(parents=True)
    (evil / "__init__.py").write_text("print('hijacked'); raise SystemExit(3)\n")
    target = tmp_path / "crid-runtime"
    launcher.install(str(target))
    env = {**os.environ, "PYTHONPATH": str(evil.parent)}
    proc = subprocess.run([str(target), "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "hijacked" not in proc.stdout, proc


def test_the_venv_runtime_is_the_launcher() -> None:
    # make setup writes it; the e2e tests and benchmarks run this file.
    installed = Path(sys.executable).parent / "crid-runtime"
    assert launcher.MARK in installed.read_text()
