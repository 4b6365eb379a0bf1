"""CDI devices (issue 17) through a real daemon, on each handler (crid, runc).

The daemon reads spec files of our own from two temp dirs (``crid.cdi.spec_dirs``)
whose devices point at harmless host nodes: /dev/null, /dev/zero and
/dev/fuse (not among the nodes every container may open: reaching it shows
the container's device cgroup admits the spec's node). A container given a
device, by ``CDI_devices`` or by a ``cdi.k8s.io/*`` annotation, sees its node
at the spec's path, the spec's mount and env, and the spec's hook ran; an
unknown device fails the create with INVALID_ARGUMENT and leaves nothing; a
spec file written, changed or removed while the daemon runs is seen by the
next create.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, started_env
from e2e.containers.helpers import assert_unchanged, create, leftovers, run, sh
from e2e.fixtures.registry import Registry


@dataclass
class Cdi:
    static: Path  # first spec dir (/etc/cdi's stand-in)
    dynamic: Path  # second one, which overrides it (/var/run/cdi's)
    library: Path  # a host dir the spec mounts read-only
    hook_log: Path  # where the spec's createRuntime hook appends the state it gets


@pytest.fixture(scope="module")
def cdi(tmp_path_factory: pytest.TempPathFactory) -> Cdi:
    top = tmp_path_factory.mktemp("cdi")
    found = Cdi(top / "etc-cdi", top / "run-cdi", top / "vendor-lib", top / "hook.log")
    found.static.mkdir()  # the dynamic dir appears later, while the daemon runs
    found.library.mkdir()
    (found.library / "libvendor.txt").write_text("vendor library\n")
    write(found.static / "vendor.json", vendor_spec(found))
    return found


def vendor_spec(cdi: Cdi) -> dict[str, Any]:
    return {
        "cdiVersion": "0.8.0",
        "kind": "vendor.test/dev",
        "containerEdits": {
            "env": ["VENDOR_TEST=1"],
            "hooks": [{"hookName": "createRuntime", "path": "/bin/sh",
                       "args": ["sh", "-c", f"cat >> {cdi.hook_log}; echo >> {cdi.hook_log}"],
                       "env": ["PATH=/usr/bin:/bin"]}],
        },
        "devices": [
            {"name": "null", "containerEdits": {
                "env": ["VENDOR_DEV=null"],
                "deviceNodes": [{"path": "/dev/vendor/null0", "hostPath": "/dev/null",
                                 "permissions": "rw"}],
                "mounts": [{"hostPath": str(cdi.library), "containerPath": "/opt/vendor",
                            "options": ["ro", "rbind", "nosuid", "nodev"]}]}},
            {"name": "zero", "containerEdits": {
                "env": ["VENDOR_DEV=zero"],
                "deviceNodes": [{"path": "/dev/vendor/zero0", "hostPath": "/dev/zero"}]}},
            {"name": "fuse", "containerEdits": {
                "deviceNodes": [{"path": "/dev/vendor/fuse", "hostPath": "/dev/fuse",
                                 "permissions": "rw"}]}},
        ],
    }


def write(path: Path, tree: dict[str, Any]) -> None:
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(tree))
    tmp.rename(path)


@pytest.fixture(scope="module")
def env(registry: Registry, cdi: Cdi) -> Iterator[Env]:
    with started_env(registry, f'[crid.cdi]\nspec_dirs = ["{cdi.static}", "{cdi.dynamic}"]\n'
                     ) as found:
        yield found


def devices(*names: str) -> list[api_pb2.CDIDevice]:
    return [api_pb2.CDIDevice(name=n) for n in names]


def test_a_device_by_field_gives_its_node_mount_env_and_hook(env: Env, pod: Pod,
                                                            cdi: Cdi) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image,
              CDI_devices=devices("vendor.test/dev=null"))
    seen = sh(env.daemon, cid, "ls -l /dev/vendor/null0; echo hi > /dev/vendor/null0 && "
              "echo written; echo $VENDOR_DEV $VENDOR_TEST; cat /opt/vendor/libvendor.txt; "
              "touch /opt/vendor/x 2>/dev/null || echo read-only").splitlines()
    kind_and_mode, numbers = seen[0].split()[0], seen[0].split(",")
    assert kind_and_mode.startswith("c"), seen
    assert (numbers[0].split()[-1], numbers[1].split()[0]) == ("1", "3"), seen
    assert seen[1:] == ["written", "null 1", "vendor library", "read-only"]
    assert cid in cdi.hook_log.read_text()


def test_a_device_by_annotation(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image,
              annotations={"cdi.k8s.io/vendor-test": "vendor.test/dev=zero"})
    seen = sh(env.daemon, cid, "dd if=/dev/vendor/zero0 bs=4 count=1 2>/dev/null | wc -c; "
              "echo $VENDOR_DEV $VENDOR_TEST; test -e /dev/vendor/null0 || echo no-null")
    assert seen.split() == ["4", "zero", "1", "no-null"]


def test_the_device_cgroup_admits_a_spec_node_it_would_otherwise_refuse(
        env: Env, pod: Pod) -> None:
    probe = "(exec 3<>{0}) 2>/dev/null && echo open || echo denied"
    given = run(env.daemon, pod.id, pod.config, env.image,
                CDI_devices=devices("vendor.test/dev=fuse"))
    assert sh(env.daemon, given, probe.format("/dev/vendor/fuse")).strip() == "open"
    # The same node made by hand in a container without the device is refused.
    plain = run(env.daemon, pod.id, pod.config, env.image)
    assert sh(env.daemon, plain, "mknod /tmp/fuse c 10 229 && " + probe.format("/tmp/fuse")
              ).strip() == "denied"


@pytest.mark.parametrize("how", ["field", "annotation"])
def test_an_unknown_device_fails_the_create_and_leaves_nothing(env: Env, pod: Pod,
                                                               how: str) -> None:
    asked: dict[str, Any] = (
        {"CDI_devices": devices("vendor.test/dev=null", "vendor.test/dev=nope")}
        if how == "field" else {"annotations": {"cdi.k8s.io/x": "vendor.test/dev=nope"}})
    before = leftovers(env, pod)
    with pytest.raises(grpc.RpcError) as raised:
        create(env.daemon, pod.id, pod.config, env.image, **asked)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown CDI device vendor.test/dev=nope" in (raised.value.details() or "")
    assert_unchanged(env, pod, before)


def test_spec_files_changed_while_the_daemon_runs_are_seen(env: Env, pod: Pod,
                                                           cdi: Cdi) -> None:
    late = cdi.dynamic / "late.json"

    def late_spec(value: str) -> dict[str, Any]:
        return {"cdiVersion": "0.8.0", "kind": "vendor.test/dev", "devices": [
            {"name": "late", "containerEdits": {"env": [f"LATE={value}"]}},
            {"name": "zero", "containerEdits": {"env": [f"VENDOR_DEV=zero-{value}"]}}]}

    def env_of(name: str) -> str:
        cid = run(env.daemon, pod.id, pod.config, env.image, CDI_devices=devices(name))
        return sh(env.daemon, cid, "echo $LATE $VENDOR_DEV").strip()

    # A new dir with a new file: its device, and an override of the first dir's.
    write(late, late_spec("1"))
    assert env_of("vendor.test/dev=late") == "1"
    assert env_of("vendor.test/dev=zero") == "zero-1"
    write(late, late_spec("2"))
    assert env_of("vendor.test/dev=late") == "2"
    late.unlink()
    assert env_of("vendor.test/dev=zero") == "zero"
    with pytest.raises(grpc.RpcError) as raised:
        create(env.daemon, pod.id, pod.config, env.image,
               CDI_devices=devices("vendor.test/dev=late"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
