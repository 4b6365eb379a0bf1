"""Loading gRPC's C core with the settings it reads only once, at import.

Every unary CRI call crosses several threads inside grpcio before crid's
handler runs, and each wake-up of another thread costs tens of microseconds
on a VM. With gRPC's EventEngine listener (on by default since grpcio 1.6x)
accepted connections are served by EventEngine threads that then hand each
event to the completion-queue poller and on to the asyncio loop; with the
older iomgr listener the poller thread reads the socket itself, one hop
less per event. Measured on a bare ``grpc.aio`` server answering Version to
a Python client on a 2-core VM: 0.60 -> 0.52 ms median (containerd 0.40).

``GRPC_EXPERIMENTS`` is read when ``grpc`` is first imported, so this must
run before anything imports it; the variable is removed again afterwards so
crid's children (conmon, runc, CNI plugins, hooks) do not inherit it. An
operator's own ``GRPC_EXPERIMENTS`` is left as it is.
"""

from __future__ import annotations

import importlib
import os
import sys

EXPERIMENTS = "-event_engine_listener"


def load() -> None:
    """Import grpc (and grpc.aio) with crid's experiment settings."""
    if "grpc" in sys.modules:  # too late to choose; the in-process tests land here
        return
    ours = "GRPC_EXPERIMENTS" not in os.environ
    if ours:
        os.environ["GRPC_EXPERIMENTS"] = EXPERIMENTS
    try:
        importlib.import_module("grpc.aio")
    finally:
        if ours:
            del os.environ["GRPC_EXPERIMENTS"]
