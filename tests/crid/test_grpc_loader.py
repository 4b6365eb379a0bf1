"""grpc_loader: gRPC imported with crid's experiments, the variable not leaked."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import os, sys
from crid import grpc_loader
grpc_loader.load()
assert "grpc" in sys.modules
print(os.environ.get("GRPC_EXPERIMENTS", "<unset>"))
"""


def _probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: this one imported grpc long ago.
    return subprocess.run([sys.executable, "-P", "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)


def test_experiments_apply_and_do_not_reach_children() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    done = _probe(env)
    assert done.stdout.strip() == "<unset>"
    # grpc names experiments it does not know on stderr: catches a grpcio that
    # dropped the one crid relies on.
    assert "Unknown experiment" not in done.stderr


def test_operator_setting_is_kept() -> None:
    done = _probe({**os.environ, "GRPC_EXPERIMENTS": "tcp_rcv_lowat"})
    assert done.stdout.strip() == "tcp_rcv_lowat"
