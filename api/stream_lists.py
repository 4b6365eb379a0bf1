"""The k8s 1.36 streaming list calls, newer than the PyPI CRI stubs.

Their messages come from ``api/cri_supplement.proto`` (package
``runtime.v1``, importing the CRI's own ``api.proto``, so
``PodSandboxFilter``, ``Container`` and friends are the stubs' classes).

The RPCs themselves are listed here as ``Rpc`` data rather than as
``service`` blocks in the .proto: a second ``runtime.v1.RuntimeService`` in
the same pool would clash with the stubs' one, and the server only needs the
method paths and message classes. Each RPC is server-streaming: a response
carries a batch of items.
"""

from __future__ import annotations

from crid.api import cri_supplement_pb2
from crid.api.services import Rpc
from google.protobuf.message import Message

PACKAGE = "runtime.v1"
RUNTIME, IMAGE = f"{PACKAGE}.RuntimeService", f"{PACKAGE}.ImageService"

# (service, rpc, response field the items go in)
_CALLS = (
    (RUNTIME, "StreamPodSandboxes", "pod_sandboxes"),
    (RUNTIME, "StreamContainers", "containers"),
    (RUNTIME, "StreamContainerStats", "container_stats"),
    (RUNTIME, "StreamPodSandboxStats", "pod_sandbox_stats"),
    (RUNTIME, "StreamPodSandboxMetrics", "pod_sandbox_metrics"),
    (IMAGE, "StreamImages", "images"),
)


def message(name: str) -> type[Message]:
    """The class of one of the calls' messages, e.g. ``StreamContainersRequest``."""
    cls: type[Message] = getattr(cri_supplement_pb2, name)
    return cls


def rpcs() -> tuple[Rpc, ...]:
    return tuple(
        Rpc(service=service, name=rpc, server_streaming=True,
            request=message(f"{rpc}Request"), response=message(f"{rpc}Response"))
        for service, rpc, _field in _CALLS)


def item_field(rpc: str) -> str:
    """The repeated field a response of ``rpc`` carries its items in."""
    return next(field for _s, name, field in _CALLS if name == rpc)
