"""What a container sees, asserted identically for crid-runtime and runc: each
test runs once per runtime (the ``runtime`` fixture) on the same busybox bundle."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from e2e.fixtures.bundle import Bundle, Runtime
from e2e.runtime.helpers import out, sees, userns_bundle

# --- process: identity, environment, limits ---------------------------------


def test_hostname(runtime: Runtime, bundle: Bundle) -> None:
    assert out(runtime, bundle, "hostname") == "testbox"


def test_domainname(crid_runtime: Runtime, bundle: Bundle) -> None:
    # runc 1.1.5 predates `domainname` (it ignores the field), so this is ours alone.
    bundle.config["domainname"] = "example.test"
    assert out(crid_runtime, bundle, "cat /proc/sys/kernel/domainname") == "example.test"


def test_uid_gid(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001}
    assert out(runtime, bundle, "id -u; id -g").split() == ["1000", "1001"]


def test_additional_gids(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}
    assert sorted(out(runtime, bundle, "id -G").split()) == ["10", "1000", "20"]


def test_groups_cleared_for_root(runtime: Runtime, bundle: Bundle) -> None:
    assert out(runtime, bundle, "grep Groups /proc/self/status").split() == ["Groups:"]


def test_umask(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["user"]["umask"] = 0o027
    assert out(runtime, bundle, "umask") == "0027"


def test_env_and_default_home(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["env"].append("FOO=bar baz")
    lines = out(runtime, bundle, "env").splitlines()
    assert "FOO=bar baz" in lines
    assert "HOME=/root" in lines  # from the rootfs's /etc/passwd


def test_cwd(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["cwd"] = "/var/work"
    os.makedirs(bundle.rootfs / "var" / "work")
    assert out(runtime, bundle, "pwd") == "/var/work"


def test_args_passed_verbatim(runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(["echo", "a b", "*", "$HOME"])
    assert runtime.run(bundle).stdout == "a b * $HOME\n"


def test_exit_code(runtime: Runtime, bundle: Bundle) -> None:
    assert sees(runtime, bundle, "exit 42").returncode == 42


def test_killed_by_signal_exit_code(runtime: Runtime, bundle: Bundle) -> None:
    # PID 1 ignores SIGKILL from inside its namespace: kill a child shell instead.
    assert sees(runtime, bundle, "sh -c 'kill -9 $$'; exit $?").returncode == 137


def test_missing_program_fails(runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(["/no/such/program"])
    r = runtime.run(bundle)
    assert r.returncode != 0


def test_rlimit_nofile(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048}]
    assert out(runtime, bundle, "ulimit -n; ulimit -Hn").split() == ["512", "2048"]


def test_rlimit_core_and_nproc(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 300}]
    limits = out(runtime, bundle, "cat /proc/self/limits")
    assert any(line.startswith("Max core file size") and line.split()[4:6] == ["0", "0"]
               for line in limits.splitlines())
    assert any(line.startswith("Max processes") and line.split()[2:4] == ["300", "300"]
               for line in limits.splitlines())


# --- capabilities and privileges --------------------------------------------


def _status(runtime: Runtime, bundle: Bundle) -> dict[str, str]:
    text = out(runtime, bundle, "cat /proc/self/status")
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_capability_sets(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
        "effective": ["CAP_KILL", "CAP_CHOWN"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
    }
    st = _status(runtime, bundle)
    # KILL=5, CHOWN=0, NET_RAW=13; a shell started by exec keeps P from the filesystem rules
    assert st["CapBnd"] == f"{(1 << 5) | 1 | (1 << 13):016x}"
    assert st["CapInh"] == f"{1 << 5:016x}"
    assert st["CapEff"] == f"{(1 << 5) | 1:016x}"
    assert st["CapPrm"] == f"{(1 << 5) | 1:016x}"


def test_ambient_caps_for_non_root(runtime: Runtime, bundle: Bundle) -> None:
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {k: caps for k in (
        "bounding", "effective", "permitted", "inheritable", "ambient")}
    st = _status(runtime, bundle)
    want = f"{(1 << 10) | (1 << 5):016x}"
    assert (st["CapAmb"], st["CapEff"], st["CapPrm"]) == (want, want, want)


def test_non_root_without_ambient_has_no_effective(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    st = _status(runtime, bundle)
    assert st["CapEff"] == "0" * 16 and st["CapAmb"] == "0" * 16


def test_no_new_privileges_on(runtime: Runtime, bundle: Bundle) -> None:
    assert _status(runtime, bundle)["NoNewPrivs"] == "1"


def test_no_new_privileges_off(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["noNewPrivileges"] = False
    assert _status(runtime, bundle)["NoNewPrivs"] == "0"


def test_oom_score_adj_positive(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["oomScoreAdj"] = 500
    assert out(runtime, bundle, "cat /proc/self/oom_score_adj") == "500"


# --- namespaces -------------------------------------------------------------


def test_pid_namespace_init_is_pid_1(runtime: Runtime, bundle: Bundle) -> None:
    assert out(runtime, bundle, "echo $$; readlink /proc/1/exe").split() == ["1", "/bin/busybox"]


def test_network_namespace_has_only_loopback_up(runtime: Runtime, bundle: Bundle) -> None:
    links = out(runtime, bundle, "ip -o link").splitlines()
    assert len(links) == 1 and "lo:" in links[0] and "UP" in links[0]


def test_namespaces_differ_from_host(runtime: Runtime, bundle: Bundle) -> None:
    names = ["ipc", "uts", "net", "pid", "mnt"]
    seen = out(runtime, bundle, "; ".join(f"readlink /proc/self/ns/{n}" for n in names))
    host = [os.readlink(f"/proc/self/ns/{n}") for n in names]
    assert all(a != b for a, b in zip(seen.split(), host, strict=True))


def test_join_network_namespace_by_path(runtime: Runtime, bundle: Bundle) -> None:
    name = f"crid-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for ns in bundle.config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/run/netns/{name}"
        inode = os.stat(f"/run/netns/{name}").st_ino
        assert out(runtime, bundle, "readlink /proc/self/ns/net") == f"net:[{inode}]"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_cgroup_namespace(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    lines = out(runtime, bundle, "cat /proc/self/cgroup").splitlines()
    mem = [line for line in lines if ":memory:" in line]
    assert mem == [mem[0].rsplit(":", 1)[0] + ":/"]


def test_user_namespace_with_mappings(runtime: Runtime, bundle: Bundle,
                                      request: pytest.FixtureRequest) -> None:
    bundle = userns_bundle(bundle, request)
    seen = out(runtime, bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u")
    assert seen.split() == ["0", "100000", "65536", "0", "100000", "65536", "0"]


# --- root and mounts --------------------------------------------------------


def _mountinfo(text: str) -> dict[str, tuple[str, str, str]]:
    """mount point -> (per-mount options, fs type, super options)."""
    out: dict[str, tuple[str, str, str]] = {}
    for line in text.splitlines():
        f = line.split()
        sep = f.index("-")
        out[f[4]] = (f[5], f[sep + 1], f[sep + 3])
    return out


def test_mount_table_matches_spec(runtime: Runtime, bundle: Bundle) -> None:
    mi = _mountinfo(out(runtime, bundle, "cat /proc/self/mountinfo"))
    assert mi["/proc"][:2] == ("rw,relatime", "proc")
    assert mi["/dev"][0] == "rw,nosuid" and "size=65536k" in mi["/dev"][2]
    assert mi["/dev/pts"][1] == "devpts" and "ptmxmode=666" in mi["/dev/pts"][2]
    assert "gid=5" in mi["/dev/pts"][2] and "mode=620" in mi["/dev/pts"][2]
    assert mi["/dev/shm"][0] == "rw,nosuid,nodev,noexec,relatime"
    assert mi["/dev/mqueue"][1] == "mqueue"
    assert mi["/sys"][:2] == ("ro,nosuid,nodev,noexec,relatime", "sysfs")
    assert mi["/sys/fs/cgroup/memory"][0].startswith("ro,")
    assert mi["/proc/sys"][0].startswith("ro")
    assert mi["/proc/keys"][1] == "tmpfs"  # /dev/null from the container's /dev tmpfs


def test_readonly_root(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["root"]["readonly"] = True
    r = sees(runtime, bundle, "touch /x 2>&1; awk '$5 == \"/\" {print $6}' /proc/self/mountinfo")
    assert "Read-only file system" in r.stdout
    assert r.stdout.split("\n")[1].startswith("ro,")


def test_bind_mount_readonly_and_flags(runtime: Runtime, bundle: Bundle,
                                       tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    (src / "hello").write_text("hi")
    bundle.config["mounts"].append({"destination": "/data", "type": "bind",
                                    "source": str(src),
                                    "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
    r = sees(runtime, bundle, "cat /data/hello; touch /data/x 2>&1; "
                              "grep ' /data ' /proc/self/mountinfo")
    assert r.stdout.startswith("hi")
    assert "Read-only file system" in r.stdout
    assert " /data ro,nosuid,nodev,noexec" in r.stdout


def test_bind_mount_of_a_file_with_relative_source(runtime: Runtime, bundle: Bundle) -> None:
    (bundle.path / "motd").write_text("welcome\n")
    bundle.config["mounts"].append({"destination": "/etc/motd", "type": "bind",
                                    "source": "motd", "options": ["bind"]})
    assert out(runtime, bundle, "cat /etc/motd") == "welcome"


def test_recursive_readonly_bind(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    os.system(f"mount -t tmpfs tmpfs {src / 'sub'}")
    try:
        bundle.config["mounts"].append({"destination": "/tree", "type": "bind",
                                        "source": str(src), "options": ["rbind", "rro"]})
        r = sees(runtime, bundle, "touch /tree/sub/x 2>&1; grep ' /tree/sub ' "
                                  "/proc/self/mountinfo")
        assert "Read-only file system" in r.stdout, r.stderr
        assert " /tree/sub ro," in r.stdout
    finally:
        os.system(f"umount {src / 'sub'}")


def test_mount_propagation_rslave(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    src = tmp_path / "shared"
    src.mkdir()
    os.system(f"mount --bind {src} {src} && mount --make-shared {src}")
    try:
        bundle.config["mounts"].append({"destination": "/shared", "type": "bind",
                                        "source": str(src), "options": ["rbind", "rslave"]})
        line = out(runtime, bundle, "grep ' /shared ' /proc/self/mountinfo")
        assert "master:" in line and "shared:" not in line
    finally:
        os.system(f"umount {src}")


def test_tmpfs_size_and_mode(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["mounts"].append({"destination": "/scratch", "type": "tmpfs",
                                    "source": "tmpfs",
                                    "options": ["size=1m", "mode=1770", "nosuid"]})
    seen = out(runtime, bundle, "stat -c %a /scratch; df -k /scratch | tail -1")
    mode, df = seen.split("\n", 1)
    assert mode == "1770"
    assert df.split()[1] == "1024"


def test_mount_target_symlink_stays_inside_rootfs(runtime: Runtime, bundle: Bundle,
                                                  tmp_path: Path) -> None:
    # /escape -> /tmp/<outside> inside the rootfs must resolve inside the rootfs
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), bundle.rootfs / "escape")
    bundle.config["mounts"].append({"destination": "/escape", "type": "tmpfs",
                                    "source": "tmpfs", "options": ["size=1m"]})
    out(runtime, bundle, "touch /escape/inside")
    assert list(outside.iterdir()) == []
    assert (bundle.rootfs / str(outside).lstrip("/")).is_dir()


def test_masked_paths(runtime: Runtime, bundle: Bundle) -> None:
    seen = out(runtime, bundle, "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                                "touch /sys/firmware/x 2>&1 | grep -c Read-only")
    assert seen.split() == ["0", "0", "1"]


def test_readonly_paths(runtime: Runtime, bundle: Bundle) -> None:
    r = sees(runtime, bundle, "echo 1 > /proc/sys/vm/overcommit_memory")
    assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_default_devices(runtime: Runtime, bundle: Bundle) -> None:
    seen = out(runtime, bundle, "for d in null zero full random urandom tty; do "
                                "stat -c '%n %F %t:%T %a' /dev/$d; done")
    assert seen.splitlines() == [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
    ]


def test_dev_links(runtime: Runtime, bundle: Bundle) -> None:
    seen = out(runtime, bundle, "for l in fd stdin stdout stderr ptmx; do "
                                "readlink /dev/$l; done")
    assert seen.split() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
                            "/proc/self/fd/2", "pts/ptmx"]


def test_extra_device(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10,
                                          "minor": 229, "fileMode": 0o600, "uid": 0,
                                          "gid": 0}]
    assert out(runtime, bundle, "stat -c '%F %t:%T %a' /dev/fuse") == \
        "character special file a:e5 600"


def test_devices_cgroup_denies_unlisted(runtime: Runtime, bundle: Bundle) -> None:
    # The rootfs has CAP_MKNOD: the node can be made but the cgroup refuses opening it.
    r = sees(runtime, bundle, "mknod /dev/vdx b 254 0 && head -c1 /dev/vdx")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr


def test_sysctl(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1",
                                        "kernel.msgmax": "4096"}
    host_before = Path("/proc/sys/kernel/msgmax").read_text()
    assert out(runtime, bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax"
               ).split() == ["1", "4096"]
    assert Path("/proc/sys/kernel/msgmax").read_text() == host_before  # ipc ns is private
