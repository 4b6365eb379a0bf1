"""``ImageSpec.image_ref``: CRI field 20 (k8s 1.35), newer than the PyPI stubs.

It carries the digest of an image volume's image in ``ContainerStatus.mounts``.
The stubs do not know the field, so they keep it as an unknown field:
protobuf keeps those through parsing and serializing, kubelet receives the
field itself, and stubs that know it read the same bytes. It is written and
read through ``ImageSpecAdditions`` (``api/cri_supplement.proto``), a message
holding just the fields newer than the stubs, with the same numbers.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2
from crid.api.cri_supplement_pb2 import ImageSpecAdditions


def set_image_ref(spec: api_pb2.ImageSpec, ref: str) -> None:
    spec.MergeFromString(ImageSpecAdditions(image_ref=ref).SerializeToString())


def image_ref(spec: api_pb2.ImageSpec) -> str:
    """The field's value ("" when unset); the last one wins, as protobuf reads scalars."""
    return ImageSpecAdditions.FromString(spec.SerializeToString()).image_ref
