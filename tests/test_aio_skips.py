"""``make e2e-aio`` skips the e2e files that never start a daemon (NO_DAEMON in
the Makefile): a file there that starts one would lose its run on grpc.aio.
Its other skips (NODE_SIDE) must name files that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
STARTS_A_DAEMON = re.compile(r"CridDaemon|crid_daemon|crid_factory|pod_daemon")


def _listed(variable: str) -> list[Path]:
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval",
         f"print-it: ; @echo $({variable})", "print-it"],
        cwd=CHECKOUT, capture_output=True, text=True, check=True).stdout.split()
    assert printed, f"{variable} is empty or gone from the Makefile"
    return [CHECKOUT / p for p in printed]


def test_no_daemon_files_start_no_daemon() -> None:
    files = [f for p in _listed("NO_DAEMON")
             for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    assert all(f.is_file() for f in files)
    starting = [str(f.relative_to(CHECKOUT)) for f in files
                if STARTS_A_DAEMON.search(f.read_text())]
    assert starting == []


def test_node_side_files_exist() -> None:
    assert [p for p in _listed("NODE_SIDE") if not p.exists()] == []
