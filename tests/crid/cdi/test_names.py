"""Qualified CDI device names, and the ones a CreateContainer request asks for."""

from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2

from crid.cdi import names
from crid.errors import InvalidArgument


@pytest.mark.parametrize(("name", "parts"), [
    ("vendor.com/class=dev", ("vendor.com", "class", "dev")),
    ("nvidia.com/gpu=0", ("nvidia.com", "gpu", "0")),
    ("a/b=c", ("a", "b", "c")),
    ("foo.bar.baz/foo-bar123.B_az=MIG-1:2", ("foo.bar.baz", "foo-bar123.B_az", "MIG-1:2")),
])
def test_qualified_names_split_in_three(name: str, parts: tuple[str, str, str]) -> None:
    assert names.parse(name) == parts


@pytest.mark.parametrize(("name", "words"), [
    ("", "not a fully qualified name"),
    ("dev", "not a fully qualified name"),
    ("/dev/null", "not a fully qualified name"),
    ("vendor.com=dev", "not a fully qualified name"),
    ("vendor.com/class", "not a fully qualified name"),
    ("vendor.com/class=", "not a fully qualified name"),
    ("vendor.com/a/b=dev", "not a fully qualified name"),
    ("1vendor.com/class=dev", "vendor"),
    ("vendor.com/class-=dev", "class"),
    ("vendor.com/class=-dev", "device name"),
    ("vendor.com/class=dev/../x", "device name"),
    ("vendor.com/class=a b", "device name"),
    ("v/" + "c" * 254 + "=d", "longer than"),
])
def test_unqualified_or_malformed_names_are_refused(name: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        names.parse(name)


def config(devices: tuple[str, ...] = (), annotations: dict[str, str] | None = None,
           ) -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        CDI_devices=[api_pb2.CDIDevice(name=n) for n in devices], annotations=annotations)


def test_requested_reads_the_field_then_the_annotations_by_key_each_once() -> None:
    found = names.requested(config(
        ("v.com/c=b", "v.com/c=a"),
        {"cdi.k8s.io/z": "v.com/c=z", "cdi.k8s.io/m": "v.com/c=a, v.com/c=m",
         "other/ann": "not=cdi"}))
    assert found == ["v.com/c=b", "v.com/c=a", "v.com/c=m", "v.com/c=z"]


def test_nothing_requested_is_an_empty_list() -> None:
    assert names.requested(config(annotations={"io.kubernetes.x": "y"})) == []


@pytest.mark.parametrize("value", ["", "v.com/c=a,", "gpu0", "v.com/c=a,,v.com/c=b"])
def test_a_bad_annotation_value_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgument, match="fully qualified"):
        names.requested(config(annotations={"cdi.k8s.io/dev": value}))


def test_a_bad_name_in_the_field_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="fully qualified"):
        names.requested(config(("gpu0",)))
