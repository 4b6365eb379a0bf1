"""``ImageSpec.image_ref``: CRI field 20 (k8s 1.35), newer than the PyPI stubs.

It carries the digest of an image volume's image in ``ContainerStatus.mounts``.
The stubs do not know the field, so it is written and read as an unknown
field: protobuf keeps those through parsing and serializing, kubelet receives
the field itself, and stubs that know it would read the same bytes.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

FIELD = 20
_LENGTH_DELIMITED = 2


def set_image_ref(spec: api_pb2.ImageSpec, ref: str) -> None:
    raw = ref.encode()
    spec.MergeFromString(_varint(FIELD << 3 | _LENGTH_DELIMITED) + _varint(len(raw)) + raw)


def image_ref(spec: api_pb2.ImageSpec) -> str:
    """The field's value ("" when unset); the last one wins, as protobuf reads scalars."""
    found, fields = "", UnknownFieldSet(spec)
    for index in range(len(fields)):  # the stubs give it no __iter__
        field = fields[index]
        if field.field_number == FIELD and field.wire_type == _LENGTH_DELIMITED:
            found = bytes(field.data).decode()
    return found


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
