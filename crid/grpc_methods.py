"""What a gRPC transport serves, and how the daemon drives one.

``Method`` is one RPC as the call families and the interceptor made it: how
to read its request, how to write its responses, and its behaviour. Both
transports (``crid.grpc_aio_server`` on grpcio's public ``grpc.aio``, and
``crid.grpc_server`` on grpcio's core) serve a table of them, and
``crid.grpc_transport`` chooses which one runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True)
class Method:
    streaming: bool  # server streaming; every CRI request is a single message
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    # Unary: request -> response; streaming: request -> async iterator of them.
    # Either raises Aborted for a status other than OK.
    behavior: Callable[[Any], Any]
    # Unary calls that only read thread-safe state may answer outside the loop
    # (a transport may use this or not): the response, or None to be served
    # by ``behavior`` after all.
    inline: Callable[[Any], Any] | None = None


class Transport(Protocol):
    """A gRPC server for one table of methods: ports, then start, then stop."""

    def add_insecure_port(self, address: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self, grace: float) -> None:
        """Take no new calls; let those in flight finish for ``grace`` seconds,
        then cancel what is left."""
