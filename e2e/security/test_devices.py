"""Device access (issue 14, hole 1): an image layer may carry a device node for
the host's disk. Opening it in the container must fail with EPERM, under the v1
``devices`` controller and under crid's cgroup2 BPF device program, while the
devices a container is given (/dev/null) keep working; ``update`` swaps the
program for a new one with no gap and leaves exactly one attached.

The attack is real: the node has the major:minor of a host block device,
either the disk under this machine's ``/`` or a loop disk of known content
(this VM refuses its root disk even to host root, so only the loop disk shows
the container's EPERM is the device cgroup's doing; its content is checked
unchanged at the end). The container only opens the node (read, and
write-append without writing a byte), so a regression fails the test without
touching the disk.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import pytest

from e2e.fixtures.bundle import Bundle, Runtime
from e2e.runtime.helpers import wait_status
from e2e.security.conftest import UNIFIED, V1_DEVICES, HostDisk, mknod

pytestmark = pytest.mark.usefixtures("hybrid_cgroups")

EPERM = "Operation not permitted"
FUSE = ("c", 10, 229)  # /dev/fuse and /dev/loop-control: harmless to open, not allowed by default
LOOP_CONTROL = ("c", 10, 237)
PROBE = r"""
for f in "$@"; do
  if (exec 3<"$f") 2>/tmp/err; then echo "$f read ok"; else echo "$f read $(cat /tmp/err)"; fi
  if (exec 3>>"$f") 2>/tmp/err; then echo "$f write ok"; else echo "$f write $(cat /tmp/err)"; fi
done
"""


def _rootfs_with(bundle: Bundle, nodes: dict[str, tuple[str, int, int]],
                 disk: HostDisk | None = None) -> None:
    (bundle.rootfs / "probe.sh").write_text(PROBE)
    for name, (kind, major, minor) in nodes.items():
        mknod(str(bundle.rootfs / name), kind, major, minor)
    if disk is not None:
        mknod(str(bundle.rootfs / "disk"), "b", *disk.number, host_can_open=disk.host_can_open)


def _results(text: str) -> dict[tuple[str, str], str]:
    """{(path, "read"|"write"): "ok" or the shell's error} from the probe's output."""
    out = {}
    for line in text.splitlines():
        path, mode, rest = line.split(" ", 2)
        out[(path, mode)] = "ok" if rest == "ok" else rest
    return out


def _assert_denied(res: dict[tuple[str, str], str], path: str, who: str) -> None:
    for mode in ("read", "write"):
        got = res.get((path, mode))
        assert got is not None and got != "ok" and EPERM in got, (
            f"{who}: opening {path} for {mode} inside the container gave {got!r}, "
            f"expected EPERM: the container can reach the host's device")


def _assert_allowed(res: dict[tuple[str, str], str], path: str, who: str) -> None:
    for mode in ("read", "write"):
        assert res.get((path, mode)) == "ok", f"{who}: {path} {mode}: {res.get((path, mode))!r}"


# BPF_PROG_QUERY / BPF_PROG_GET_FD_BY_ID / BPF_OBJ_GET_INFO_BY_FD, written here
# apart from crid's own seam so the test does not trust the code it checks.
_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = 321  # x86_64, the machines of HOST.md


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    ret = int(_libc.syscall(_SYS_BPF, cmd, attr, len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def attached_device_programs(cgroup_dir: str) -> list[tuple[int, str]]:
    """(id, name) of each BPF_CGROUP_DEVICE program attached to ``cgroup_dir``."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ids = (ctypes.c_uint32 * 64)()
        attr = ctypes.create_string_buffer(32)
        ctypes.memmove(attr, fd.to_bytes(4, "little") + (6).to_bytes(4, "little"), 8)
        ctypes.memmove(ctypes.addressof(attr) + 16,
                       ctypes.addressof(ids).to_bytes(8, "little") + (64).to_bytes(4, "little"),
                       12)
        _bpf(16, attr)  # BPF_PROG_QUERY, BPF_CGROUP_DEVICE
        count = int.from_bytes(attr.raw[24:28], "little")
    finally:
        os.close(fd)
    out = []
    for prog_id in ids[:count]:
        by_id = ctypes.create_string_buffer(int(prog_id).to_bytes(4, "little") + bytes(12), 16)
        pfd = _bpf(13, by_id)  # BPF_PROG_GET_FD_BY_ID
        try:
            info = ctypes.create_string_buffer(80)
            get = ctypes.create_string_buffer(
                pfd.to_bytes(4, "little") + (80).to_bytes(4, "little")
                + ctypes.addressof(info).to_bytes(8, "little"), 16)
            _bpf(15, get)  # BPF_OBJ_GET_INFO_BY_FD: name is at offset 64 of bpf_prog_info
            out.append((int(prog_id), info.raw[64:80].split(b"\0")[0].decode()))
        finally:
            os.close(pfd)
    return out


def _run_probe(rt: Runtime, bundle: Bundle, paths: list[str]) -> dict[tuple[str, str], str]:
    bundle.write(["sh", "/probe.sh", *paths])
    r = rt.run(bundle)
    assert r.returncode == 0, f"{rt.name}: rc={r.returncode} stderr={r.stderr}"
    return _results(r.stdout)


def test_host_disk_node_is_denied(runtime: Runtime, bundle: Bundle, host_disk: HostDisk) -> None:
    """(a)+(b) both controllers in force: the host's disk is refused, /dev/null works."""
    _rootfs_with(bundle, {}, host_disk)
    res = _run_probe(runtime, bundle, ["/disk", "/dev/null"])
    _assert_denied(res, "/disk", runtime.name)
    _assert_allowed(res, "/dev/null", runtime.name)


def test_v1_rules_and_v2_program_are_both_in_place(crid_runtime: Runtime, bundle: Bundle,
                                                   loop_disk: HostDisk) -> None:
    """crid puts the container in the cgroup2 tree too, with one crid program there,
    and v1's devices.list allows no block device beyond mknod; delete removes both."""
    _rootfs_with(bundle, {}, loop_disk)
    bundle.write(["sleep", "60"])
    cid = crid_runtime.create(bundle)
    v1_dir = f"{V1_DEVICES}/{bundle.cgroup_name}"
    v2_dir = f"{UNIFIED}/{bundle.cgroup_name}"
    listing = Path(v1_dir, "devices.list").read_text().split("\n")
    assert "a *:* rwm" not in listing, listing
    assert [x for x in listing if x.startswith("b ")] == ["b *:* m"], listing
    pid = crid_runtime.state(cid)["pid"]
    assert str(pid) in Path(v2_dir, "cgroup.procs").read_text().split()
    progs = attached_device_programs(v2_dir)
    assert [name for _, name in progs] == ["crid_devices"], progs
    crid_runtime("delete", "--force", cid, check=True)
    assert not os.path.exists(v2_dir), "delete left the container's cgroup2 dir behind"
    assert not os.path.exists(v1_dir)


def test_host_disk_denied_by_the_v2_program_alone(crid_runtime: Runtime, bundle: Bundle,
                                                  host_disk: HostDisk) -> None:
    """(a) with the v1 controller opened wide by hand before start: only the
    cgroup2 BPF program stands between the container and the disk."""
    _rootfs_with(bundle, {}, host_disk)
    bundle.write(["sh", "/probe.sh", "/disk", "/dev/null"])
    cid = crid_runtime.create(bundle)
    v1_dir = f"{V1_DEVICES}/{bundle.cgroup_name}"
    Path(v1_dir, "devices.allow").write_text("a")
    assert Path(v1_dir, "devices.list").read_text().split("\n")[0] == "a *:* rwm", (
        "could not open the v1 devices controller for this test")
    crid_runtime("start", cid, check=True)
    wait_status(crid_runtime, cid, "stopped")
    res = _results((bundle.path / f"{cid}.out").read_text())
    _assert_denied(res, "/disk", "crid-runtime, v2 program only")
    _assert_allowed(res, "/dev/null", "crid-runtime, v2 program only")


def _exec_probe(rt: Runtime, cid: str, paths: list[str]) -> dict[tuple[str, str], str]:
    r = rt("exec", cid, "sh", "/probe.sh", *paths)
    assert r.returncode == 0, f"exec: rc={r.returncode} stderr={r.stderr}"
    return _results(r.stdout)


def test_update_swaps_the_device_program(crid_runtime: Runtime, bundle: Bundle,
                                         loop_disk: HostDisk, tmp_path: Path) -> None:
    """(c) a new device list: the newly allowed device opens, the one no longer
    allowed fails, and exactly one crid program (a new one) is attached."""
    _rootfs_with(bundle, {"fuse": FUSE, "loopctl": LOOP_CONTROL}, loop_disk)
    deny_all = {"allow": False, "access": "rwm"}
    bundle.config["linux"]["resources"]["devices"] = [
        deny_all, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]
    bundle.write(["sleep", "120"])
    cid = crid_runtime.create(bundle)
    crid_runtime("start", cid, check=True)
    v1_dir = f"{V1_DEVICES}/{bundle.cgroup_name}"
    v2_dir = f"{UNIFIED}/{bundle.cgroup_name}"
    before = attached_device_programs(v2_dir)
    assert [name for _, name in before] == ["crid_devices"], before
    res = _exec_probe(crid_runtime, cid, ["/fuse", "/loopctl", "/disk"])
    _assert_allowed(res, "/fuse", "before update")
    _assert_denied(res, "/loopctl", "before update")
    _assert_denied(res, "/disk", "before update")

    new = tmp_path / "resources.json"
    new.write_text(json.dumps({"devices": [
        deny_all, {"allow": True, "type": "c", "major": 10, "minor": 237, "access": "rw"}]}))
    r = crid_runtime("update", "--resources", str(new), cid)
    assert r.returncode == 0, r.stderr
    after = attached_device_programs(v2_dir)
    assert [name for _, name in after] == ["crid_devices"], after
    assert after[0][0] != before[0][0], "update kept the old program"
    listing = Path(v1_dir, "devices.list").read_text().split("\n")
    assert "c 10:237 rw" in listing and not [x for x in listing if x.startswith("c 10:229")], (
        listing)
    # v1 follows the new list too; open it wide so the program alone decides.
    Path(v1_dir, "devices.allow").write_text("a")
    res = _exec_probe(crid_runtime, cid, ["/fuse", "/loopctl", "/disk", "/dev/null"])
    _assert_denied(res, "/fuse", "after update")
    _assert_allowed(res, "/loopctl", "after update")
    _assert_denied(res, "/disk", "after update")
    _assert_allowed(res, "/dev/null", "after update")
    assert crid_runtime.state(cid)["status"] == "running"

    # A list a device cgroup cannot express is refused before anything changes.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"devices": [
        deny_all, {"allow": True, "type": "c", "access": "rw"},
        {"allow": False, "type": "c", "major": 10, "minor": 237, "access": "w"}]}))
    r = crid_runtime("update", "--resources", str(bad), cid)
    assert r.returncode != 0 and "punch a hole" in r.stderr, r.stderr
    assert attached_device_programs(v2_dir) == after
