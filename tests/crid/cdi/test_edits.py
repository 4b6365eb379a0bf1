"""Applying CDI edits to a runtime-spec dict: what each edit becomes, and the
checks against the host's node that refuse without touching the spec."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from crid.oci.runtime_spec import Spec
from crid.oci.spec.host import DeviceNode as HostNode

from crid.cdi import edits
from crid.cdi.spec import DeviceNode, Edits, Hook, Mount
from crid.errors import InvalidArgument

NULL = HostNode("/dev/null", "c", 1, 3, 0o666, 0, 0)
LOOP = HostNode("/dev/loop0", "b", 7, 0, 0o660, 0, 6)
HOST = {"/dev/null": NULL, "/dev/loop0": LOOP}


def lookup(path: str) -> HostNode | None:
    if path == "/etc/passwd":
        return None
    if path not in HOST:
        raise FileNotFoundError(path)
    return HOST[path]


def base(uid: int = 0) -> Spec:
    return {
        "process": {"env": ["PATH=/bin", "DEV=image"], "user": {"uid": uid, "gid": uid,
                                                                "additionalGids": [5]}},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": []},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []},
                   {"destination": "/vendor/x", "type": "bind", "source": "/old",
                    "options": ["rbind"]}],
        "linux": {"devices": [{"path": "/dev/vendor0", "type": "c", "major": 9, "minor": 9}],
                  "resources": {"devices": [{"allow": False, "access": "rwm"}]}},
    }


def apply(spec: Spec, *edit_list: Edits) -> None:
    edits.apply(spec, [(f"v.test/c=d{i}", e) for i, e in enumerate(edit_list)], lookup)


def test_env_is_set_replacing_a_name_already_there() -> None:
    spec = base()
    apply(spec, Edits(env=("DEV=cdi", "NEW=1")), Edits(env=("NEW=2",)))
    assert spec["process"]["env"] == ["PATH=/bin", "DEV=cdi", "NEW=2"]


def test_a_node_takes_the_hosts_numbers_and_mode_and_a_rule_admits_it() -> None:
    spec = base()
    apply(spec, Edits(device_nodes=(DeviceNode("/dev/vendor0", "/dev/null"),
                                    DeviceNode("/dev/disk9", "/dev/loop0", "b", 7, 0, 0o600,
                                               "r", 10, 20))))
    assert spec["linux"]["devices"] == [
        {"path": "/dev/vendor0", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/disk9", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600,
         "uid": 10, "gid": 20},
    ]
    assert spec["linux"]["resources"]["devices"][1:] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"},
    ]


def test_a_node_belongs_to_a_non_root_user_unless_the_file_says_otherwise() -> None:
    spec = base(uid=1000)
    apply(spec, Edits(device_nodes=(DeviceNode("/dev/a", "/dev/null"),
                                    DeviceNode("/dev/b", "/dev/null", gid=0))))
    assert [(d["uid"], d["gid"]) for d in spec["linux"]["devices"][1:]] == [(1000, 1000),
                                                                             (1000, 0)]


def test_permissions_none_adds_the_node_without_a_rule() -> None:
    spec = base()
    apply(spec, Edits(device_nodes=(DeviceNode("/dev/a", "/dev/null", permissions="none"),)))
    assert spec["linux"]["devices"][-1]["path"] == "/dev/a"
    # Not even an empty access: the runtime reads "" as rwm.
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_u_is_a_char_device() -> None:
    spec = base()
    apply(spec, Edits(device_nodes=(DeviceNode("/dev/a", "/dev/null", "u"),)))
    assert spec["linux"]["devices"][-1]["type"] == "u"
    assert spec["linux"]["resources"]["devices"][-1]["type"] == "c"


def test_mounts_replace_one_at_the_same_place_become_binds_and_go_parents_first() -> None:
    spec = base()
    apply(spec, Edits(mounts=(Mount("/lib/a.so", "/vendor/x", "", ("ro",)),
                              Mount("/opt/v", "/vendor", "none", ("rbind", "ro")),
                              Mount("tmpfs", "/scratch", "tmpfs", ("size=1m",)))))
    assert [(m["destination"], m["type"], m["source"], m["options"]) for m in spec["mounts"]] == [
        ("/proc", "proc", "proc", []),
        ("/dev", "tmpfs", "tmpfs", []),
        ("/vendor", "bind", "/opt/v", ["rbind", "ro"]),
        ("/scratch", "tmpfs", "tmpfs", ["size=1m"]),
        ("/vendor/x", "bind", "/lib/a.so", ["ro", "bind"]),
    ]


def test_hooks_are_appended_by_name() -> None:
    spec = base()
    spec["hooks"] = {"poststop": [{"path": "/bin/old"}]}
    apply(spec, Edits(hooks=(Hook("poststop", "/bin/new", ("new", "x"), ("A=1",), 3),
                             Hook("createRuntime", "/bin/true"))))
    assert spec["hooks"] == {
        "poststop": [{"path": "/bin/old"},
                     {"path": "/bin/new", "args": ["new", "x"], "env": ["A=1"], "timeout": 3}],
        "createRuntime": [{"path": "/bin/true"}],
    }


def test_additional_gids_are_added_once_and_zero_is_ignored() -> None:
    spec = base()
    apply(spec, Edits(additional_gids=(0, 44, 5, 44)), Edits(additional_gids=(45,)))
    assert spec["process"]["user"]["additionalGids"] == [5, 44, 45]


@pytest.mark.parametrize(("node", "words"), [
    (DeviceNode("/dev/a", "/dev/nope"), "/dev/nope does not exist"),
    (DeviceNode("/dev/a", "/etc/passwd"), "/etc/passwd is not a char or block device"),
    (DeviceNode("/dev/a", "/dev/null", "b"), "type 'b' does not match /dev/null"),
    (DeviceNode("/dev/a", "/dev/loop0", "c"), "type 'c' does not match"),
    (DeviceNode("/dev/a", "/dev/null", "c", 8, 0), r"major 8 does not match /dev/null \(1:3\)"),
    (DeviceNode("/dev/a", "/dev/null", "c", 1, 5), "minor 5 does not match"),
])
def test_a_node_must_be_the_hosts_device_and_a_refusal_leaves_the_spec_alone(
        node: DeviceNode, words: str) -> None:
    spec = base()
    before = copy.deepcopy(spec)
    with pytest.raises(InvalidArgument, match=words) as raised:
        apply(spec, Edits(env=("X=1",), mounts=(Mount("/a", "/b"),)),
              Edits(device_nodes=(node,)))
    assert "v.test/c=d1" in raised.value.message
    assert spec == before


def test_unsupported_edits_are_refused_before_anything_is_applied() -> None:
    spec = base()
    before = copy.deepcopy(spec)
    with pytest.raises(InvalidArgument, match="cannot apply netDevices edits"):
        apply(spec, Edits(env=("X=1",)), Edits(env=("Y=1",), unsupported=("netDevices",)))
    assert spec == before


def test_the_real_lookup_follows_symlinks_to_devices_and_refuses_files(tmp_path: Any) -> None:
    link = tmp_path / "null-link"
    link.symlink_to("/dev/null")
    found = edits.host_node(str(link))
    assert found is not None and (found.kind, found.major, found.minor) == ("c", 1, 3)
    assert edits.host_node("/etc/hostname") is None
    with pytest.raises(FileNotFoundError):
        edits.host_node(os.path.join(tmp_path, "nope"))
