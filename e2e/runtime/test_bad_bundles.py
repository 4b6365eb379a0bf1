"""Bad bundles: each exits non-zero with one line naming the problem and leaves
no state dir, cgroup or mount behind. runc is asked too, for the exit status."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.fixtures.bundle import Bundle, Runtime

Breaker = Callable[[Bundle], None]


def _write_raw(text: str) -> Breaker:
    def f(b: Bundle) -> None:
        (b.path / "config.json").write_text(text)
    return f


def _change(fn: Callable[[dict[str, Any]], object]) -> Breaker:
    def f(b: Bundle) -> None:
        fn(b.config)
        b.write()
    return f


def _no_config(b: Bundle) -> None:
    b.write()
    (b.path / "config.json").unlink()


def _no_rootfs(b: Bundle) -> None:
    b.config["root"] = {"path": "does-not-exist"}
    b.write()


def _bad_bind_source(b: Bundle) -> None:
    b.config["mounts"].append({"destination": "/data", "type": "bind",
                               "source": "/nonexistent/crid-test", "options": ["bind"]})
    b.write()


def _bad_sysctl(b: Bundle) -> None:
    b.config["linux"]["sysctl"] = {"kernel.no_such_key_crid": "1"}
    b.write()


def _bad_program(b: Bundle) -> None:
    b.write(["/no/such/binary"])


CASES: dict[str, tuple[Breaker, str]] = {
    "missing-config": (_no_config, "config.json not found"),
    "malformed-json": (_write_raw("{ not json"), "not valid JSON"),
    "not-an-object": (_write_raw("[1, 2]"), "top level must be an object"),
    "args-wrong-type": (_change(lambda c: c["process"].update(args="sh")),
                        "process.args must be an array"),
    "uid-wrong-type": (_change(lambda c: c["process"]["user"].update(uid="0")),
                       "process.user.uid must be a number"),
    "unknown-namespace": (_change(lambda c: c["linux"]["namespaces"].append(
        {"type": "bogus"})), "unknown namespace 'bogus'"),
    "relative-mount-dest": (_change(lambda c: c["mounts"].append(
        {"destination": "data", "type": "tmpfs", "source": "tmpfs"})),
        "mounts[7].destination must be an absolute path"),
    "relative-cwd": (_change(lambda c: c["process"].update(cwd="work")),
                     "process.cwd must be an absolute path"),
    "relative-ns-path": (_change(lambda c: c["linux"]["namespaces"].append(
        {"type": "cgroup", "path": "proc/1/ns/cgroup"})), "must be an absolute path"),
    "nonexistent-rootfs": (_no_rootfs, "does not exist"),
    "missing-process": (_change(lambda c: c.pop("process")), "process is missing"),
    "bad-bind-source": (_bad_bind_source, "/nonexistent/crid-test"),
    "bad-sysctl": (_bad_sysctl, "kernel/no_such_key_crid"),
    "missing-program": (_bad_program, "/no/such/binary"),
    "apparmor-profile": (_change(lambda c: c["process"].update(apparmorProfile="custom")),
                         "AppArmor is not enabled"),
}


def _leftovers(rt: Runtime, b: Bundle, cid: str) -> list[str]:
    found = []
    if (rt.root / cid).exists():
        found.append(f"state dir {rt.root / cid}")
    for ctl in os.listdir("/sys/fs/cgroup"):
        if (Path("/sys/fs/cgroup") / ctl / b.cgroup_name).exists():
            found.append(f"cgroup {ctl}/{b.cgroup_name}")
    mounts = Path("/proc/self/mountinfo").read_text()
    if str(b.path) in mounts:
        found.append("a mount under the bundle")
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_bundle_crid(crid_runtime: Runtime, bundle: Bundle, case: str) -> None:
    breaker, words = CASES[case]
    breaker(bundle)
    cid = crid_runtime.new_id()
    r = crid_runtime("create", "--bundle", str(bundle.path), cid)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert words in lines[0]
    assert _leftovers(crid_runtime, bundle, cid) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_bundle_runc_also_refuses(bundle: Bundle, tmp_path: Path, case: str) -> None:
    rt = Runtime("runc", tmp_path / "root-runc")
    CASES[case][0](bundle)
    cid = rt.new_id()
    try:
        # A created container keeps runc's stdio: no pipes here, or we would wait on it.
        r = rt("create", "--bundle", str(bundle.path), cid, capture_output=False,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if case in ("relative-cwd", "relative-ns-path", "relative-mount-dest"):
            # runc 1.1.5 takes these relative paths; we follow the spec's "absolute".
            return
        assert r.returncode != 0
    finally:
        rt.cleanup()


def test_duplicate_id_leaves_the_first_alone(crid_runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(["sleep", "100"])
    cid = crid_runtime.create(bundle)
    before = json.loads(crid_runtime("state", cid, check=True).stdout)
    r = crid_runtime("create", "--bundle", str(bundle.path), cid)
    assert r.returncode != 0
    assert r.stderr.strip() == f"crid-runtime: container with id exists: {cid}"
    assert json.loads(crid_runtime("state", cid, check=True).stdout) == before


def test_systemd_cgroup_refused(crid_runtime: Runtime, bundle: Bundle) -> None:
    bundle.write()
    r = crid_runtime("--systemd-cgroup", "create", "--bundle", str(bundle.path), "x1")
    assert r.returncode != 0 and "--systemd-cgroup is not supported" in r.stderr
    assert not (crid_runtime.root / "x1").exists()
