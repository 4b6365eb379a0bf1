"""Which gRPC transport serves the CRI, chosen once at start.

The fast path (``crid.grpc_server``) drives grpcio's core through its private
``grpc._cython.cygrpc`` module and saves a thread hand-off per completion
(``BENCHMARKS.md``); ``grpc.aio`` (``crid.grpc_aio_server``) is grpcio's
public API. The fast path is taken only when all of these hold:

- ``crid.api.grpc_fast_path`` is ``auto`` (the default), not ``off``;
- the installed grpcio is a minor release the fast path was tested with
  (``TESTED_GRPCIO``): a grpcio security release of another minor then runs
  crid on ``grpc.aio`` instead of on untested internals;
- ``cygrpc`` imports and has every class and method the fast path calls.

So the choice is made by looking, never by catching a crash, and an operator
can take any grpcio that ``setup.cfg`` admits.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from crid.grpc_methods import Method, Transport

# Minor releases of grpcio whose cygrpc the fast path was run against (its unit
# tests and the whole e2e suite). Add one only after both pass on it.
TESTED_GRPCIO = frozenset({"1.85"})
FAST_PATH_MODES = ("auto", "off")

# What crid.grpc_server uses of cygrpc: classes, and the methods it calls on them.
_CYGRPC_NAMES: Mapping[str, tuple[str, ...]] = {
    "CompletionQueue": ("poll",),
    "Server": ("register_completion_queue", "add_http2_port", "start", "request_call",
               "shutdown", "cancel_all_calls", "destroy"),
    "ReceiveMessageOperation": (),
    "ReceiveCloseOnServerOperation": (),
    "SendInitialMetadataOperation": (),
    "SendMessageOperation": (),
    "SendStatusFromServerOperation": (),
}


@dataclasses.dataclass(frozen=True)
class Choice:
    fast: bool
    reason: str  # why this transport, for the start-up log line

    @property
    def name(self) -> str:
        return "grpc-core" if self.fast else "grpc.aio"


def choose(mode: str, grpcio_version: str = grpc.__version__) -> Choice:
    if mode == "off":
        return Choice(False, "crid.api.grpc_fast_path is off")
    minor = ".".join(grpcio_version.split(".")[:2])
    if minor not in TESTED_GRPCIO:
        tested = ", ".join(sorted(TESTED_GRPCIO))
        return Choice(False, f"grpcio {grpcio_version} is not a release the fast path "
                             f"was tested with ({tested})")
    missing = missing_core_names()
    if missing:
        return Choice(False, f"grpcio {grpcio_version} lacks what the fast path uses: "
                             + ", ".join(missing))
    return Choice(True, f"grpcio {grpcio_version} was tested with the fast path")


def missing_core_names() -> list[str]:
    try:
        cygrpc = importlib.import_module("grpc._cython.cygrpc")
    except ImportError as exc:
        return [f"grpc._cython.cygrpc ({exc})"]
    missing = []
    for cls, methods in _CYGRPC_NAMES.items():
        found = getattr(cygrpc, cls, None)
        if found is None:
            missing.append(f"cygrpc.{cls}")
            continue
        missing.extend(f"cygrpc.{cls}.{m}" for m in methods if not hasattr(found, m))
    return missing


def build(choice: Choice, methods: Mapping[str, Method],
          options: Sequence[tuple[str, Any]]) -> Transport:
    if choice.fast:
        from crid.grpc_server import GrpcServer  # imports cygrpc: only once it is known good

        return GrpcServer(dict(methods), options)
    from crid.grpc_aio_server import AioServer

    return AioServer(methods, options)
