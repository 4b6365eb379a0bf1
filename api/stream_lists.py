"""The k8s 1.36 streaming list calls, newer than the PyPI CRI stubs.

Their messages are described here in code (a ``FileDescriptorProto`` in
package ``runtime.v1`` that imports the CRI's own ``api.proto``, so
``PodSandboxFilter``, ``Container`` and friends are the stubs' classes) and
added to the default descriptor pool; no generated code is checked in.

The RPCs themselves are listed as ``Rpc`` data rather than as ``service``
blocks: a second ``runtime.v1.RuntimeService`` in the same pool would clash
with the stubs' one, and the server only needs the method paths and message
classes. Each RPC is server-streaming: a response carries a batch of items.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2
from crid.api.services import Rpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

FILE_NAME = "crid/api/stream_lists.proto"
PACKAGE = "runtime.v1"
RUNTIME, IMAGE = f"{PACKAGE}.RuntimeService", f"{PACKAGE}.ImageService"

# (service, rpc, request field + type or None, response field, item type)
_CALLS = (
    (RUNTIME, "StreamPodSandboxes", ("filter", "PodSandboxFilter"), "pod_sandboxes", "PodSandbox"),
    (RUNTIME, "StreamContainers", ("filter", "ContainerFilter"), "containers", "Container"),
    (RUNTIME, "StreamContainerStats", ("filter", "ContainerStatsFilter"), "container_stats",
     "ContainerStats"),
    (RUNTIME, "StreamPodSandboxStats", ("filter", "PodSandboxStatsFilter"),
     "pod_sandbox_stats", "PodSandboxStats"),
    (RUNTIME, "StreamPodSandboxMetrics", None, "pod_sandbox_metrics", "PodSandboxMetrics"),
    (IMAGE, "StreamImages", ("filter", "ImageFilter"), "images", "Image"),
)

_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE


def _message(name: str, field: tuple[str, str] | None, label: int
             ) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    if field is not None:
        message.field.add(name=field[0], number=1, label=label, type=_MESSAGE,
                          type_name=f".{PACKAGE}.{field[1]}")
    return message


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME, package=PACKAGE, syntax="proto3",
        dependency=[api_pb2.DESCRIPTOR.name])
    for _service, rpc, request_field, response_field, item in _CALLS:
        file.message_type.append(_message(f"{rpc}Request", request_field, _OPTIONAL))
        file.message_type.append(_message(f"{rpc}Response", (response_field, item), _REPEATED))
    return file


def _register() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(FILE_NAME)
    except KeyError:
        pool.Add(_file())


_register()
DESCRIPTOR = descriptor_pool.Default().FindFileByName(FILE_NAME)


def message(name: str) -> type[Message]:
    """The class of one of this file's messages, e.g. ``StreamContainersRequest``."""
    return message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name[name])


def rpcs() -> tuple[Rpc, ...]:
    return tuple(
        Rpc(service=service, name=rpc, server_streaming=True,
            request=message(f"{rpc}Request"), response=message(f"{rpc}Response"))
        for service, rpc, *_ in _CALLS)


def item_field(rpc: str) -> str:
    """The repeated field a response of ``rpc`` carries its items in."""
    return next(response for _s, name, _r, response, _i in _CALLS if name == rpc)
