"""Issue 14, hole 5: mounts are made by file descriptor, not by path
(the CVE-2021-30465, CVE-2024-45310 and CVE-2025-31133/-52565/-52881 classes).

A mount target spelled as a path inside the rootfs is resolved by the kernel
when mount(2) runs, not when the runtime checked it: a symlink swapped in
between by another container sharing a volume sends the mount out of the
root (CVE-2021-30465). crid-runtime opens each target with
openat2(RESOLVE_IN_ROOT) and mounts on /proc/self/fd/N; masked files are
bound from the container's /dev/null opened by fd and proved to be char 1:3
(CVE-2025-31133); nothing is mounted below /proc but runc's lxcfs files, by
the daemon's spec builder (INVALID_ARGUMENT) and by the runtime; and the
runtime's procfs writes (sysctls, oom_score_adj, id maps) go through an fd on
a procfs root, below it without symlinks or mount crossings.

Every attack is performed for real on bundles driven through the runtime
(a few seconds), and the CRI refusal through a daemon. Handlers:

- the symlink-swap race and the /proc refusals run on crid and runc: runc
  1.1.5 carries the CVE-2021-30465 fix (1.0.0-rc95) and refuses mounts in
  /proc (checkProcMount) and procfs on a symlink (CVE-2019-19921);
- the /dev/null symlink runs on crid only: runc 1.1.5 binds whatever
  /dev/null points to over a masked path (fixed in runc 1.2.8/1.3.3,
  CVE-2025-31133);
- the procfs-write mechanism is crid's own library code in a private mount
  namespace.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from crid.oci import linux as L
from crid.oci import procfs

from e2e.containers.helpers import create, pull
from e2e.fixtures.bundle import Bundle, Runtime
from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.images import Image, RunConfig
from e2e.fixtures.layers import busybox_layer
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_config, pod_daemon, stop_remove
from e2e.security.cri_spec import compile_static

HERE = Path(__file__).resolve().parent
ROUNDS = 100

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _under(path: str, parent: Path) -> bool:
    return path == str(parent) or path.startswith(str(parent) + "/")


@contextlib.contextmanager
def _bundle(where: Path) -> Iterator[Bundle]:
    name = f"crid-test-{uuid.uuid4().hex[:10]}"
    b = Bundle(where, name)
    try:
        yield b
    finally:
        for ctl in os.listdir("/sys/fs/cgroup"):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join("/sys/fs/cgroup", ctl, name))


@contextlib.contextmanager
def _shared_dir(path: Path) -> Iterator[Path]:
    """``path`` as a shared mount of the host: a mount that escapes a container
    onto a peer of it shows up in the host's mount table."""
    path.mkdir()
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", str(path)], check=False)


def _start_quietly(rt: Runtime, bundle: Bundle, cid: str) -> subprocess.CompletedProcess[str]:
    with open(bundle.path / f"{cid}.out", "w") as out, \
            open(bundle.path / f"{cid}.err", "w+") as err:
        r = subprocess.run(rt.cmd("create", "--bundle", str(bundle.path), cid),
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                           timeout=30)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, "", err.read())


# -- (a) CVE-2021-30465: a symlink swapped in a shared volume -----------------

@needs_gcc
def test_symlink_swap_in_a_shared_volume_never_mounts_outside(
        runtime: Runtime, tmp_path: Path) -> None:
    """Container B swaps ``/vol/x`` between a directory and a symlink to a host
    directory (``sentinel``) in a tight loop; container A is created 100 times
    with a tmpfs at ``/vol/x/target``. Both share ``vol``, a host directory on
    a shared mount, and A's root propagation is rshared (what a bidirectional
    volume asks for), so a tmpfs landing on the host's ``sentinel/target`` in
    A's namespace would reach the host's mount table. It never does: no mount
    appears under the test's directory on the host, and the sentinel stays
    empty."""
    probe = compile_static(HERE / "swap_probe.c", tmp_path / "swap_probe")
    with _shared_dir(tmp_path / "shared") as shared, \
            _bundle(tmp_path / "a") as a, _bundle(tmp_path / "b") as b:
        vol, sentinel = shared / "vol", shared / "sentinel"
        (vol / "x" / "target").mkdir(parents=True)
        (sentinel / "target").mkdir(parents=True)
        os.symlink(str(sentinel), vol / "x.link")
        volume = {"destination": "/vol", "type": "bind", "source": str(vol),
                  "options": ["rbind", "rprivate", "rw"]}
        shutil.copy2(probe, b.rootfs / "bin" / "swap_probe")
        b.config["mounts"].append(volume)
        b.write(["/bin/swap_probe", "/vol", "x", "x.link"])
        a.config["mounts"] += [volume, {"destination": "/vol/x/target", "type": "tmpfs",
                                        "source": "tmpfs", "options": ["size=64k"]}]
        a.config["linux"]["rootfsPropagation"] = "rshared"
        a.write(["true"])
        swapper = runtime.create(b)
        runtime("start", swapper, check=True)
        made = refused = 0
        try:
            deadline = time.monotonic() + 5
            while not (vol / "x").is_symlink():  # the swapping has begun
                assert time.monotonic() < deadline, (b.path / f"{swapper}.err").read_text()
            for _ in range(ROUNDS):
                cid = runtime.new_id()
                r = _start_quietly(runtime, a, cid)
                if r.returncode == 0:
                    made += 1
                else:  # a lookup the race broke fails safely; it must not be anything else
                    refused += 1
                    assert "outside" not in r.stderr, r.stderr
                escaped = [p for p in _mount_points() if _under(p, tmp_path)]
                assert escaped == [str(shared)], escaped
                assert list((sentinel / "target").iterdir()) == []
                runtime("delete", "--force", cid)
        finally:
            runtime("delete", "--force", swapper)
        assert list((sentinel / "target").iterdir()) == [] and made + refused == ROUNDS
        # The race was on: some lookups met the symlink, and stayed in the root.
        met = (a.rootfs / str(sentinel).lstrip("/")).exists()
        print(f"{runtime.name}: {made} created, {refused} refused while racing; "
              f"symlink met inside the root: {met}")
        assert met


# -- (b) CVE-2025-31133: a /dev/null that is a symlink -----------------------

@pytest.mark.parametrize("points_to", ["/etc/passwd", "host-file", "zero-device"])
def test_dev_null_symlink_is_not_bound_over_masked_paths(
        crid_runtime: Runtime, bundle: Bundle, tmp_path: Path, points_to: str) -> None:
    """The container's /dev (a bind of a directory the attacker controls, as a
    volume shared with another container would be) holds ``null`` as a
    symlink to the container's /etc/passwd or to a host file's path, and
    ``/etc/secret`` is a masked path. A runtime that binds "/dev/null" by
    path binds the link's target over the masked file, readable and writable
    through it (runc 1.1.5 does: /etc/secret then shows the container's
    passwd, mounted rw). crid-runtime masks with nothing but the null device
    (a char device of another number, 1:5 here, is refused too), so the
    create fails, saying why, and nothing changed."""
    host_file = tmp_path / "host-file"
    host_file.write_text("host\n")
    target = str(host_file) if points_to == "host-file" else points_to
    dev = tmp_path / "dev"
    dev.mkdir()
    if points_to == "zero-device":
        os.mknod(dev / "null", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    else:
        os.symlink(target, dev / "null")
    (bundle.rootfs / "etc" / "secret").write_text("secret\n")
    passwd = (bundle.rootfs / "etc" / "passwd").read_text()
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    bundle.config["mounts"].append({"destination": "/dev", "type": "bind", "source": str(dev),
                                    "options": ["rbind", "rw"]})
    bundle.config["linux"]["maskedPaths"] = ["/etc/secret"]
    bundle.write(["sh", "-c", "cat /etc/secret; echo pwned > /etc/secret"])
    r = crid_runtime.run(bundle)
    assert r.returncode != 0
    assert "cannot mask paths: the container's /dev/null" in r.stderr, r.stderr
    assert "passwd" not in r.stdout and "root:" not in r.stdout
    assert host_file.read_text() == "host\n"
    assert (bundle.rootfs / "etc" / "passwd").read_text() == passwd
    assert (bundle.rootfs / "etc" / "secret").read_text() == "secret\n"
    assert os.path.lexists(dev / "null")


def test_masked_file_gets_the_real_null_device(crid_runtime: Runtime, bundle: Bundle) -> None:
    """The control: with the usual /dev, the masked file reads empty and is the null device."""
    (bundle.rootfs / "etc" / "secret").write_text("secret\n")
    bundle.config["linux"]["maskedPaths"] = ["/etc/secret"]
    bundle.write(["sh", "-c", "cat /etc/secret; stat -c '%t:%T %F' /etc/secret"])
    r = crid_runtime.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "1:3 character special file", r.stdout
    assert (bundle.rootfs / "etc" / "secret").read_text() == "secret\n"


# -- (c) a CRI mount below /proc ----------------------------------------------

@pytest.fixture(scope="module")
def cri(registry: Registry) -> Iterator[tuple[CridDaemon, str]]:
    with pod_daemon() as (daemon, _net):
        yield daemon, pull(daemon, registry, Image((busybox_layer(),), config=RunConfig(
            cmd=("sleep", "3600"), env=("PATH=/bin",))))


@pytest.mark.parametrize("handler", ["crid", "runc"])
@pytest.mark.parametrize("container_path", ["/proc/sys/kernel/core_pattern",
                                            "/proc/self/attr/exec", "/proc"])
def test_cri_mount_below_proc_is_refused(cri: tuple[CridDaemon, str], tmp_path: Path,
                                         handler: str, container_path: str) -> None:
    daemon, image = cri
    host = tmp_path / "pattern"
    host.write_text("|/tmp/evil\n")
    config = pod_config()
    pod_id = str(daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            create(daemon, pod_id, config, image, mounts=[api_pb2.Mount(
                container_path=container_path, host_path=str(host))])
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "/proc" in str(refused.value.details()), refused.value.details()
        listed = daemon.runtime.ListContainers(api_pb2.ListContainersRequest(
            filter=api_pb2.ContainerFilter(pod_sandbox_id=pod_id))).containers
        assert list(listed) == []
    finally:
        stop_remove(daemon, pod_id)
    assert host.read_text() == "|/tmp/evil\n"


# -- (d) the runtime's procfs writes cannot be redirected ---------------------

def test_bind_over_a_sysctl_is_refused(runtime: Runtime, bundle: Bundle,
                                       tmp_path: Path) -> None:
    """A bundle that binds a host file over /proc/sys/kernel/domainname and
    sets that sysctl: the runtime's write would land in the host file. Both
    runtimes refuse the bundle; the file is unchanged."""
    host = tmp_path / "domainname"
    host.write_text("host\n")
    bundle.config["mounts"].append({"destination": "/proc/sys/kernel/domainname",
                                    "type": "bind", "source": str(host),
                                    "options": ["rbind", "rw"]})
    bundle.config["linux"]["sysctl"] = {"kernel.domainname": "pwned"}
    bundle.write(["true"])
    r = runtime.run(bundle)
    assert r.returncode != 0
    assert "/proc" in r.stderr, r.stderr
    assert host.read_text() == "host\n"


def test_image_proc_symlink_is_refused(runtime: Runtime, bundle: Bundle) -> None:
    """The image's /proc is a symlink to a directory it made, with a fake
    ``sys/kernel/domainname``: procfs is never mounted through a symlink, so
    the sysctl cannot be aimed at the image's file (or, through an absolute
    link, anywhere else)."""
    fake = bundle.rootfs / "fakeproc" / "sys" / "kernel"
    fake.mkdir(parents=True)
    (fake / "domainname").write_text("image\n")
    (bundle.rootfs / "proc").rmdir()
    os.symlink("/fakeproc", bundle.rootfs / "proc")
    bundle.config["linux"]["sysctl"] = {"kernel.domainname": "pwned"}
    bundle.write(["true"])
    r = runtime.run(bundle)
    assert r.returncode != 0, r.stdout
    assert (fake / "domainname").read_text() == "image\n"


def test_oom_score_adj_and_sysctls_reach_the_container(runtime: Runtime,
                                                       bundle: Bundle) -> None:
    """The control: through the verified procfs, the writes still land."""
    bundle.config["process"]["oomScoreAdj"] = 500
    bundle.config["linux"]["sysctl"] = {"kernel.domainname": "inside"}
    bundle.write(["sh", "-c", "cat /proc/self/oom_score_adj /proc/sys/kernel/domainname"])
    r = runtime.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["500", "inside"]


def _in_private_mount_ns(tmp_path: Path, body: Any) -> dict[str, Any]:
    """Run ``body()`` in a forked child with its own mount namespace; its result
    (a JSON-able dict) or the error it raised."""
    out = tmp_path / "result.json"
    pid = os.fork()
    if pid == 0:
        try:
            sc = L.syscalls()
            sc.unshare(L.CLONE_NEWNS)
            sc.mount(None, "/", None, L.MS_SLAVE | L.MS_REC, None)
            out.write_text(json.dumps(body(sc)))
            os._exit(0)
        except BaseException as e:
            out.write_text(json.dumps({"crashed": repr(e)}))
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(out.read_text())
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


def test_procfs_writes_refuse_a_bind_mount_and_a_fake_proc(tmp_path: Path) -> None:
    """crid.oci.procfs for real, in a private mount namespace: a file bound over
    /proc/sys/kernel/domainname (what CVE-2025-52881 made of /proc/self/attr)
    is not written through (RESOLVE_NO_XDEV), nor is a symlink below /proc
    followed (``self``), and a tmpfs posing as /proc is refused."""
    decoy = tmp_path / "decoy"
    decoy.write_text("decoy\n")
    fake = tmp_path / "fakeproc"
    fake.mkdir()

    def attack(sc: L.Syscalls) -> dict[str, Any]:
        found: dict[str, Any] = {}
        sc.mount(str(decoy), "/proc/sys/kernel/domainname", None, L.MS_BIND, None)
        proc = procfs.open_root(sc)
        calls: list[tuple[str, Callable[[], None]]] = [
            ("bind", lambda: procfs.write_sysctl(sc, proc, "kernel.domainname", "pwned")),
            ("symlink", lambda: procfs.write(sc, proc, "self/oom_score_adj", "0")),
            ("escape", lambda: procfs.write_sysctl(sc, proc, "..", "x")),
        ]
        for name, call in calls:
            try:
                call()
                found[name] = "written"
            except OSError as e:
                found[name] = errno.errorcode.get(e.errno or 0, str(e))
        sc.mount("tmpfs", str(fake), "tmpfs", 0, None)
        try:
            procfs.open_root(sc, str(fake))
            found["fake"] = "accepted"
        except Exception as e:
            found["fake"] = type(e).__name__
        return found

    found = _in_private_mount_ns(tmp_path, attack)
    assert found == {"bind": "EXDEV", "symlink": "ELOOP", "escape": "EXDEV",
                     "fake": "InvalidArgument"}, found
    assert decoy.read_text() == "decoy\n"
    assert stat.S_ISDIR(os.stat(fake).st_mode) and list(fake.iterdir()) == []
