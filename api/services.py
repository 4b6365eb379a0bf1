"""The CRI services as data: every RPC of RuntimeService and ImageService.

The handlers crid serves are built from the proto descriptors rather than
from the generated servicer classes, so an RPC nobody implements yet still
answers UNIMPLEMENTED with its own name, and RPCs from a supplementary proto
(newer than the PyPI stubs) plug in the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from cri_api.v1 import api_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor
from google.protobuf.message import Message

SERVICES = ("RuntimeService", "ImageService")


@dataclasses.dataclass(frozen=True)
class Rpc:
    service: str  # full name, e.g. runtime.v1.RuntimeService
    name: str  # e.g. Version
    server_streaming: bool
    request: type[Message]
    response: type[Message]

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


def rpcs(file: FileDescriptor = api_pb2.DESCRIPTOR) -> Iterator[Rpc]:
    """Every RPC the file's services declare."""
    for service in file.services_by_name.values():
        for method in service.methods:
            yield _rpc(method)


def _rpc(method: MethodDescriptor) -> Rpc:
    return Rpc(
        service=method.containing_service.full_name,
        name=method.name,
        server_streaming=method.server_streaming,
        request=message_factory.GetMessageClass(method.input_type),
        response=message_factory.GetMessageClass(method.output_type),
    )
