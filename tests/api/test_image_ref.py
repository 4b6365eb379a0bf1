"""ImageSpec.image_ref as an unknown field: written, read back, kept on the wire."""

from __future__ import annotations

from cri_api.v1 import api_pb2
from crid.api.image_ref import image_ref, set_image_ref


def test_round_trip_through_serialization() -> None:
    spec = api_pb2.ImageSpec(image="registry/app:1")
    assert image_ref(spec) == ""
    set_image_ref(spec, "sha256:" + "a" * 64)
    mount = api_pb2.Mount(container_path="/v", image=spec)
    again = api_pb2.Mount.FromString(mount.SerializeToString())
    assert image_ref(again.image) == "sha256:" + "a" * 64
    assert again.image.image == "registry/app:1"


def test_the_bytes_are_field_20() -> None:
    # What stubs that know the field (cri-api >= 1.35) read: tag 0xA2 0x01, length, bytes.
    spec = api_pb2.ImageSpec()
    set_image_ref(spec, "sha256:b")
    assert spec.SerializeToString() == b"\xa2\x01\x08sha256:b"


def test_a_long_ref_has_a_multi_byte_length() -> None:
    spec = api_pb2.ImageSpec()
    set_image_ref(spec, "r" * 300)
    assert image_ref(spec) == "r" * 300
