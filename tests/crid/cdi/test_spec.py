"""Reading CDI spec files: what a valid one becomes, and each way one is refused."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from crid.cdi import spec
from crid.cdi.spec import DeviceNode, Edits, Hook, Mount, SpecError

FULL: dict[str, Any] = {
    "cdiVersion": "0.8.0",
    "kind": "vendor.test/dev",
    "annotations": {"owner": "tests"},
    "containerEdits": {"env": ["VENDOR=1"], "hooks": [
        {"hookName": "createRuntime", "path": "/bin/true", "args": ["true", "x"],
         "env": ["A=b"], "timeout": 5}]},
    "devices": [
        {"name": "null", "annotations": {"k": "v"}, "containerEdits": {
            "env": ["DEV=null"],
            "deviceNodes": [{"path": "/dev/vendor/null0", "hostPath": "/dev/null",
                             "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
                             "permissions": "rw", "uid": 1000, "gid": 1000}],
            "mounts": [{"hostPath": "/etc/hostname", "containerPath": "/vendor/hostname",
                        "type": "bind", "options": ["ro", "bind"]}],
            "additionalGids": [44]}},
        {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/zero"}]}},
    ],
}


def parse(tree: Any, path: str = "/etc/cdi/v.json", priority: int = 0) -> spec.Spec:
    return spec.parse(json.dumps(tree).encode(), path, priority)


def refused(tree: Any, words: str, path: str = "/etc/cdi/v.json") -> None:
    with pytest.raises(SpecError, match=words) as raised:
        parse(tree, path)
    assert str(raised.value).startswith(path + ": ")


def changed(**edits: Any) -> dict[str, Any]:
    """FULL with the first device's edits replaced by ``edits``."""
    tree = copy.deepcopy(FULL)
    tree["devices"][0]["containerEdits"] = edits
    return tree


def test_a_full_spec_becomes_its_kind_devices_and_edits() -> None:
    s = parse(FULL, "/etc/cdi/./v.json", 1)
    assert (s.path, s.priority, s.vendor, s.cls, s.kind) == (
        "/etc/cdi/v.json", 1, "vendor.test", "dev", "vendor.test/dev")
    assert s.edits == Edits(env=("VENDOR=1",), hooks=(
        Hook("createRuntime", "/bin/true", ("true", "x"), ("A=b",), 5),))
    assert s.devices["null"] == Edits(
        env=("DEV=null",),
        device_nodes=(DeviceNode("/dev/vendor/null0", "/dev/null", "c", 1, 3, 0o640, "rw",
                                 1000, 1000),),
        mounts=(Mount("/etc/hostname", "/vendor/hostname", "bind", ("ro", "bind")),),
        additional_gids=(44,))
    assert s.devices["0"] == Edits(device_nodes=(DeviceNode("/dev/zero", "/dev/zero"),))


def test_yaml_reads_the_same_as_json(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "v.yaml").write_text(yaml.safe_dump(FULL))
    (tmp_path / "v.json").write_text(json.dumps(FULL))
    from_yaml, from_json = spec.read(str(tmp_path / "v.yaml"), 0), spec.read(
        str(tmp_path / "v.json"), 0)
    assert (from_yaml.devices, from_yaml.edits) == (from_json.devices, from_json.edits)


def test_a_v_prefix_on_the_version_is_accepted() -> None:
    assert parse({**FULL, "cdiVersion": "v1.1.0"}).kind == "vendor.test/dev"


@pytest.mark.parametrize(("tree", "words"), [
    ([], "top level: expected an object"),
    ({**FULL, "extra": 1}, "unknown field 'extra'"),
    ({k: v for k, v in FULL.items() if k != "kind"}, "'kind' is required"),
    ({**FULL, "cdiVersion": "0.2.0"}, "not a CDI version crid knows"),
    ({**FULL, "cdiVersion": 0.8}, "cdiVersion: expected a string"),
    ({**FULL, "kind": "vendor.test"}, "not vendor.com/class"),
    ({**FULL, "kind": "vendor.test/a/b"}, "not vendor.com/class"),
    ({**FULL, "kind": "vendor.test/-x"}, "kind: '-x' must start"),
    ({**FULL, "devices": []}, "at least one device"),
    ({**FULL, "devices": [FULL["devices"][0], FULL["devices"][0]]}, "listed twice"),
    ({**FULL, "devices": [{"name": "x", "containerEdits": {}}]}, "at least one edit"),
    ({**FULL, "devices": [{"name": "x/y", "containerEdits": {"env": ["A=1"]}}]},
     r"devices\[0\].name"),
])
def test_broken_specs_are_refused_naming_file_and_field(tree: Any, words: str) -> None:
    refused(tree, words)


@pytest.mark.parametrize(("edits", "words"), [
    ({"env": ["NOEQUALS"]}, "not NAME=VALUE"),
    ({"env": ["=x"]}, "not NAME=VALUE"),
    ({"env": "A=1"}, "expected a list"),
    ({"deviceNodes": [{"path": "dev/x"}]}, "not an absolute path"),
    ({"deviceNodes": [{"path": "/dev/../etc/shadow"}]}, "contains '..'"),
    ({"deviceNodes": [{"path": "/dev/x", "hostPath": "null"}]}, "not an absolute path"),
    ({"deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/../etc/shadow"}]}, "contains '..'"),
    ({"deviceNodes": [{"path": "/dev/x", "type": "p"}]}, "only char"),
    ({"deviceNodes": [{"path": "/dev/x", "permissions": "rwx"}]}, "subset of 'rwm'"),
    ({"deviceNodes": [{"path": "/dev/x", "major": -1}]}, "out of range"),
    ({"deviceNodes": [{"path": "/dev/x", "major": "1"}]}, "expected an integer"),
    ({"deviceNodes": [{"path": "/dev/x", "fileMode": 0o4755}]}, "out of range"),
    ({"deviceNodes": [{"path": "/dev/x", "uid": True}]}, "expected an integer, got bool"),
    ({"deviceNodes": [{"path": "/dev/x\0y"}]}, "NUL"),
    ({"deviceNodes": [{"path": "//"}]}, "not '/'"),
    ({"mounts": [{"hostPath": "/x", "containerPath": "/."}]}, "not '/'"),
    ({"deviceNodes": [{"hostPath": "/dev/null"}]}, "'path' is required"),
    ({"mounts": [{"hostPath": "etc", "containerPath": "/x"}]}, "not an absolute path"),
    ({"mounts": [{"hostPath": "/etc/../root", "containerPath": "/x"}]}, "contains '..'"),
    ({"mounts": [{"hostPath": "x", "containerPath": "/x", "type": "tmpfs",
                  "options": ["rbind"]}]}, "not an absolute path"),
    ({"mounts": [{"hostPath": "/x", "containerPath": "../x"}]}, "not an absolute path"),
    ({"mounts": [{"hostPath": "/x", "containerPath": "/a/../../x"}]}, "contains '..'"),
    ({"hooks": [{"hookName": "whenever", "path": "/bin/true"}]}, "not one of"),
    ({"hooks": [{"hookName": "poststop", "path": "true"}]}, "not an absolute path"),
    ({"hooks": [{"hookName": "poststop", "path": "/bin/true", "timeout": 0}]}, "out of range"),
    ({"additionalGids": [-1]}, "out of range"),
    ({"whatever": []}, "unknown field 'whatever'"),
])
def test_edits_that_could_reach_outside_or_make_no_sense_are_refused(
        edits: dict[str, Any], words: str) -> None:
    refused(changed(**edits), words)


def minimal(version: str, name: str = "x", **edits: Any) -> dict[str, Any]:
    return {"cdiVersion": version, "kind": "vendor.test/dev",
            "devices": [{"name": name, "containerEdits": {"env": ["A=1"], **edits}}]}


@pytest.mark.parametrize(("tree", "words"), [
    ({**minimal("0.5.0"), "annotations": {"a": "b"}}, "0.5.0 is too old for annotations"),
    ({**minimal("0.5.0"), "kind": "vendor.test/dev.x"}, "too old for a '.' in the class"),
    (minimal("0.6.0", additionalGids=[44]), "too old for additionalGids"),
    (minimal("0.4.0", "0"), "too old for a device name starting with a digit"),
    (minimal("0.4.0", deviceNodes=[{"path": "/dev/x", "hostPath": "/dev/null"}]),
     "too old for hostPath"),
    (minimal("0.3.0", mounts=[{"hostPath": "/a", "containerPath": "/b", "type": "bind"}]),
     "too old for the type of a mount"),
    (minimal("1.0.0", netDevices=[{"hostInterfaceName": "eth1", "name": "e"}]),
     "too old for netDevices"),
    (minimal("0.6.0", intelRdt={"closID": "x"}), "too old for intelRdt"),
])
def test_a_version_older_than_the_fields_used_is_refused(tree: Any, words: str) -> None:
    refused(tree, words)


@pytest.mark.parametrize("tree", [
    minimal("0.3.0"),
    minimal("0.4.0", mounts=[{"hostPath": "/a", "containerPath": "/b", "type": "bind"}]),
    minimal("0.5.0", "0", deviceNodes=[{"path": "/dev/x", "hostPath": "/dev/null"}]),
    minimal("0.7.0", additionalGids=[44]),
])
def test_each_version_has_its_fields(tree: Any) -> None:
    assert parse(tree).kind == "vendor.test/dev"


def test_a_tmpfs_mount_keeps_its_source_name() -> None:
    s = parse(changed(mounts=[{"hostPath": "tmpfs", "containerPath": "/scratch",
                               "type": "tmpfs", "options": ["size=1m"]}]))
    assert s.devices["null"].mounts == (Mount("tmpfs", "/scratch", "tmpfs", ("size=1m",)),)


def test_intel_rdt_and_net_devices_are_parsed_and_marked_unsupported() -> None:
    s = parse({**changed(intelRdt={"closID": "x"},
                         netDevices=[{"hostInterfaceName": "eth1", "name": "e"}]),
               "cdiVersion": "1.1.0"})
    assert s.devices["null"].unsupported == ("intelRdt", "netDevices")


@pytest.mark.parametrize(("data", "words"), [
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
])
def test_unparsable_json_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        spec.parse(data, "/etc/cdi/v.json", 0)


def test_yaml_aliases_are_refused() -> None:
    bomb = b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(SpecError, match="aliases are not accepted"):
        spec.parse(bomb, "/etc/cdi/v.yaml", 0)


def test_yaml_that_is_not_yaml_is_refused() -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        spec.parse(b"a: [\n", "/etc/cdi/v.yaml", 0)


def test_a_file_over_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(spec.MAX_FILE_BYTES + 1)
    with pytest.raises(SpecError, match="larger than"):
        spec.read(str(big), 0)


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "v.json"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="not a regular file"):
        spec.read(str(fifo), 0)
