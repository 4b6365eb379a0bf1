"""Devices from the request and for privileged containers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2
from crid.oci.spec import devices
from crid.oci.spec.host import Host

from crid.errors import InvalidArgument, NotFound
from tests.oci.spec.fakes import FakeHost


def _device(host_path: str, container_path: str, permissions: str = "rwm") -> api_pb2.Device:
    return api_pb2.Device(host_path=host_path, container_path=container_path,
                          permissions=permissions)


def test_no_devices_gives_default_rules() -> None:
    nodes, rules = devices.devices([], False, FakeHost())
    assert nodes == []
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules


def test_single_device_renamed() -> None:
    nodes, rules = devices.devices([_device("/dev/fuse", "/dev/myfuse", "rw")], False,
                                   FakeHost())
    assert nodes == [{"path": "/dev/myfuse", "type": "c", "major": 10, "minor": 229,
                      "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert rules[-1] == {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}


def test_block_device_and_directory() -> None:
    nodes, rules = devices.devices(
        [_device("/dev/sda", "/dev/xvda", "r"), _device("/dev/dri", "/dev/gpu", "mrw")],
        False, FakeHost())
    assert [(n["path"], n["type"]) for n in nodes] == [
        ("/dev/xvda", "b"), ("/dev/gpu/card0", "c"), ("/dev/gpu/renderD128", "c")]
    assert [r["access"] for r in rules[-3:]] == ["r", "mrw", "mrw"]


@pytest.mark.parametrize("permissions", ["x", "rr", "rwmx"])
def test_bad_permissions(permissions: str) -> None:
    with pytest.raises(InvalidArgument, match="permissions"):
        devices.devices([_device("/dev/fuse", "/dev/fuse", permissions)], False, FakeHost())


def test_missing_and_non_device() -> None:
    with pytest.raises(NotFound, match="does not exist"):
        devices.devices([_device("/dev/nope", "/dev/nope")], False, FakeHost())
    with pytest.raises(InvalidArgument, match="not a device"):
        devices.devices([_device("/etc/passwd", "/dev/x")], False, FakeHost())
    with pytest.raises(InvalidArgument, match="not absolute"):
        devices.devices([_device("/dev/fuse", "fuse")], False, FakeHost())


def test_privileged_gets_host_devices_and_allow_all() -> None:
    nodes, rules = devices.devices([_device("/dev/fuse", "/dev/fuse")], True, FakeHost())
    assert rules == [{"allow": True, "access": "rwm"}]
    paths = [str(n["path"]) for n in nodes]
    assert sorted(paths) == sorted(
        ["/dev/null", "/dev/fuse", "/dev/sda", "/dev/dri/card0", "/dev/dri/renderD128"])


def test_real_host_reads_device_numbers(tmp_path: Path) -> None:
    os.symlink("/dev/null", tmp_path / "link")
    (tmp_path / "file").write_text("")
    host = Host()
    [null] = host.device_nodes("/dev/null")
    assert (null.kind, null.major, null.minor) == ("c", 1, 3)
    assert host.device_nodes(str(tmp_path / "file")) == []
    assert host.device_nodes(str(tmp_path)) == []  # walk skips symlinks
    with pytest.raises(FileNotFoundError):
        host.device_nodes(str(tmp_path / "missing"))
    found = {n.path for n in host.device_nodes("/dev")}
    assert "/dev/null" in found
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in found)
    assert "/dev/console" not in found
