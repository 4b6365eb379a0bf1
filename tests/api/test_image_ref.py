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


def test_bytes_are_those_the_hand_encoding_wrote() -> None:
    # Recorded from the hand-written varint encoder this replaced: an explicit
    # "" is written too, a 300-byte ref has a two-byte length, the last value wins.
    spec = api_pb2.ImageSpec(image="x", annotations={"a": "b"})
    set_image_ref(spec, "")
    assert spec.SerializeToString().hex() == "0a017812060a0161120162a20100"
    spec = api_pb2.ImageSpec()
    set_image_ref(spec, "r" * 300)
    assert spec.SerializeToString() == b"\xa2\x01\xac\x02" + b"r" * 300
    spec = api_pb2.ImageSpec()
    set_image_ref(spec, "one")
    set_image_ref(spec, "two")
    assert spec.SerializeToString().hex() == "a201036f6e65a2010374776f"
    assert image_ref(spec) == "two"
    spec = api_pb2.ImageSpec()
    set_image_ref(spec, "é")
    assert spec.SerializeToString().hex() == "a20102c3a9"
    assert image_ref(api_pb2.ImageSpec.FromString(spec.SerializeToString())) == "é"
