"""The container lifecycle through the runc command line, for both runtimes:
create/start/state/kill/delete, signals, pause/resume, exec, tty over a
console socket, cgroup limits as files, seccomp, hooks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from e2e.fixtures.bundle import Bundle, Runtime
from e2e.runtime.helpers import ConsoleSocket, cgroup_file, out, read_all, sees, wait_status

SLEEPER = ["sleep", "1000"]


def _started(rt: Runtime, b: Bundle, args: list[str] | None = None) -> str:
    b.write(args or SLEEPER)
    cid = rt.create(b)
    rt("start", cid, check=True)
    wait_status(rt, cid, "running" if args is None or args[0] != "true" else "stopped")
    return cid


# --- state ------------------------------------------------------------------


def test_state_through_the_lifecycle(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.write(["sh", "-c", "read x < /dev/null; sleep 0.3"])
    pid_file = tmp_path / "pid"
    cid = runtime.create(bundle, None, "--pid-file", str(pid_file))
    st = runtime.state(cid)
    assert (st["id"], st["status"], st["bundle"]) == (cid, "created", str(bundle.path))
    assert st["pid"] == int(pid_file.read_text())
    assert Path(f"/proc/{st['pid']}").exists()
    runtime("start", cid, check=True)
    assert runtime.state(cid)["status"] == "running"
    wait_status(runtime, cid, "stopped")
    runtime("delete", cid, check=True)
    r = runtime("state", cid)
    assert r.returncode != 0 and "container does not exist" in r.stderr


def test_start_twice_fails(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    r = runtime("start", cid)
    assert r.returncode != 0


def test_delete_running_needs_force(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    assert runtime("delete", cid).returncode != 0
    runtime("delete", "--force", cid, check=True)
    assert not (runtime.root / cid).exists()
    assert not Path(f"/sys/fs/cgroup/memory/{bundle.cgroup_name}").exists()


def test_delete_created_container(runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(SLEEPER)
    cid = runtime.create(bundle)
    pid = runtime.state(cid)["pid"]
    runtime("delete", cid, check=True)
    assert not (runtime.root / cid).exists()
    assert not Path(f"/sys/fs/cgroup/pids/{bundle.cgroup_name}").exists()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/status").exists() and "zombie" not in \
            Path(f"/proc/{pid}/status").read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not Path(f"/proc/{pid}/status").exists() or "zombie" in \
        Path(f"/proc/{pid}/status").read_text()


def test_unknown_container_errors(runtime: Runtime) -> None:
    for verb in ("state", "start", "kill", "delete", "pause"):
        r = runtime(verb, "no-such-container")
        assert r.returncode != 0 and "container does not exist" in r.stderr, (verb, r.stderr)


def test_duplicate_id_refused(runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(SLEEPER)
    cid = runtime.create(bundle)
    r = runtime("create", "--bundle", str(bundle.path), cid)
    assert r.returncode != 0 and "exists" in r.stderr
    assert runtime.state(cid)["status"] == "created"


def test_list(runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(SLEEPER)
    cid = runtime.create(bundle)
    rows = json.loads(runtime("list", "--format", "json", check=True).stdout)
    assert [(r["id"], r["status"]) for r in rows] == [(cid, "created")]


# --- signals ----------------------------------------------------------------


def test_signal_delivery_and_exit_code(runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(["sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; "
                              "while true; do sleep 0.05; done"])
    cid = runtime.new_id()
    proc = subprocess.Popen(runtime.cmd("run", "--bundle", str(bundle.path), cid),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    runtime("kill", cid, "TERM", check=True)
    assert proc.wait(10) == 7
    assert proc.stdout.read().strip() == "got-term"


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_signal_spellings(runtime: Runtime, bundle: Bundle, sig: str) -> None:
    cid = _started(runtime, bundle)
    runtime("kill", cid, sig, check=True)
    wait_status(runtime, cid, "stopped")


def test_kill_all(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle, ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    deadline = time.monotonic() + 5
    while len(json.loads(runtime("ps", "--format", "json", cid).stdout)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    runtime("kill", "--all", cid, "KILL", check=True)
    wait_status(runtime, cid, "stopped")


def test_kill_stopped_container(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle, ["true"])
    r = runtime("kill", cid, "KILL")
    assert r.returncode != 0 and "container not running" in r.stderr


# --- pause / resume, ps -----------------------------------------------------


def test_pause_resume(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    runtime("pause", cid, check=True)
    assert runtime.state(cid)["status"] == "paused"
    assert cgroup_file(bundle, "freezer", "freezer.state") == "FROZEN"
    pid = runtime.state(cid)["pid"]
    state_line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith("State:"))
    assert "S" in state_line or "D" in state_line
    runtime("resume", cid, check=True)
    assert runtime.state(cid)["status"] == "running"
    assert cgroup_file(bundle, "freezer", "freezer.state") == "THAWED"


def test_ps_lists_the_init_pid(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    pids = json.loads(runtime("ps", "--format", "json", cid, check=True).stdout)
    assert pids == [runtime.state(cid)["pid"]]


def test_ps_table(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    # runc says "running" once its init opened the exec fifo; it execs the
    # process a moment later, and a loaded machine may show "runc init" first.
    deadline = time.monotonic() + 5
    while True:
        lines = runtime("ps", cid, check=True).stdout.splitlines()
        if len(lines) != 2 or "sleep 1000" in lines[1] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "PID" in lines[0].split()
    assert len(lines) == 2 and "sleep 1000" in lines[1]


def test_force_delete_paused_container(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    pid = runtime.state(cid)["pid"]
    runtime("pause", cid, check=True)
    runtime("delete", "--force", cid, check=True)
    assert not (runtime.root / cid).exists()
    assert not Path(f"/sys/fs/cgroup/freezer/{bundle.cgroup_name}").exists()
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "zombie" in status.read_text()


# --- exec -------------------------------------------------------------------


def test_exec_sees_the_container(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    r = runtime("exec", cid, "sh", "-c", "hostname; echo $$; readlink /proc/1/exe", check=True)
    host, pid, exe = r.stdout.split()
    assert host == "testbox" and int(pid) > 1 and exe == "/bin/busybox"


def test_exec_forwards_signals(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    proc = subprocess.Popen(runtime.cmd("exec", cid, "sh", "-c",
                                        "trap 'exit 9' TERM; echo ready; "
                                        "while true; do sleep 0.05; done"),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 9


def test_exec_exit_code(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    assert runtime("exec", cid, "sh", "-c", "exit 5").returncode == 5


def test_exec_process_file_user_env_cwd(runtime: Runtime, bundle: Bundle,
                                        tmp_path: Path) -> None:
    cid = _started(runtime, bundle)
    proc = {"terminal": False, "user": {"uid": 1234, "gid": 4321}, "cwd": "/tmp",
            "args": ["sh", "-c", "id -u; id -g; pwd; echo $GREETING"],
            "env": ["PATH=/bin", "GREETING=hello"]}
    (tmp_path / "process.json").write_text(json.dumps(proc))
    r = runtime("exec", "--process", str(tmp_path / "process.json"), cid, check=True)
    assert r.stdout.split() == ["1234", "4321", "/tmp", "hello"]


def test_exec_detach_pid_file(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    cid = _started(runtime, bundle)
    pid_file = tmp_path / "exec.pid"
    r = runtime("exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "30",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, capture_output=False)
    assert r.returncode == 0
    pid = int(pid_file.read_text())
    assert pid in json.loads(runtime("ps", "--format", "json", cid).stdout)
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(
        f"/proc/{runtime.state(cid)['pid']}/ns/pid")


def test_exec_in_stopped_container_fails(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle, ["true"])
    assert runtime("exec", cid, "true").returncode != 0


# --- terminal ---------------------------------------------------------------


def test_tty_via_console_socket(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.config["process"]["terminal"] = True
    bundle.write(["sh", "-c", "tty; test -t 0 && echo stdin-is-tty"])
    cs = ConsoleSocket(tmp_path / "console.sock")
    try:
        cid = runtime.new_id()
        proc = subprocess.Popen(runtime.cmd("create", "--bundle", str(bundle.path),
                                            "--console-socket", str(cs.path), cid),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        master = cs.receive()
        assert proc.wait(20) == 0
        runtime("start", cid, check=True)
        text = read_all(master).decode().replace("\r", "")
        os.close(master)
    finally:
        cs.close()
    assert text.split() == ["/dev/pts/0", "stdin-is-tty"]


def test_exec_tty_via_console_socket(runtime: Runtime, bundle: Bundle,
                                     tmp_path: Path) -> None:
    cid = _started(runtime, bundle)
    cs = ConsoleSocket(tmp_path / "exec.sock")
    try:
        proc = subprocess.Popen(runtime.cmd("exec", "--tty", "--detach", "--console-socket",
                                            str(cs.path), cid, "sh", "-c", "tty"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        master = cs.receive()
        assert proc.wait(20) == 0
        text = read_all(master).decode().strip()
        os.close(master)
    finally:
        cs.close()
    assert text.startswith("/dev/pts/")


# --- cgroups ----------------------------------------------------------------


def test_cgroup_limits_as_files(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["linux"]["resources"].update({
        "memory": {"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024,
                   "swap": 128 * 1024 * 1024},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
    })
    cid = _started(runtime, bundle)
    assert cgroup_file(bundle, "memory", "memory.limit_in_bytes") == str(64 * 1024 * 1024)
    assert cgroup_file(bundle, "memory", "memory.soft_limit_in_bytes") == str(32 * 1024 * 1024)
    assert cgroup_file(bundle, "memory", "memory.memsw.limit_in_bytes") == str(128 * 1024 * 1024)
    assert cgroup_file(bundle, "cpu", "cpu.shares") == "512"
    assert cgroup_file(bundle, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgroup_file(bundle, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgroup_file(bundle, "cpuset", "cpuset.cpus") == "0"
    assert cgroup_file(bundle, "pids", "pids.max") == "42"
    pid = runtime.state(cid)["pid"]
    assert f":memory:/{bundle.cgroup_name}" in Path(f"/proc/{pid}/cgroup").read_text()


def test_cgroup_limits_seen_inside(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["linux"]["resources"]["pids"] = {"limit": 17}
    assert out(runtime, bundle, "cat /sys/fs/cgroup/pids/pids.max") == "17"


def test_blkio_throttle(runtime: Runtime, bundle: Bundle) -> None:
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    bundle.config["linux"]["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}
    _started(runtime, bundle)
    assert cgroup_file(bundle, "blkio", "blkio.throttle.read_bps_device") == \
        f"{major}:{minor} 1048576"


def test_pids_limit_enforced(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["linux"]["resources"]["pids"] = {"limit": 3}
    r = sees(runtime, bundle, "for i in 1 2 3 4 5; do sleep 1 & done 2>&1; wait")
    assert "Resource temporarily unavailable" in r.stdout + r.stderr


def test_update_memory_and_pids(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    cid = _started(runtime, bundle)
    runtime("update", "--memory", "50M", "--pids-limit", "99", cid, check=True)
    assert cgroup_file(bundle, "memory", "memory.limit_in_bytes") == str(50 * 1024 * 1024)
    assert cgroup_file(bundle, "pids", "pids.max") == "99"
    (tmp_path / "res.json").write_text(json.dumps({"cpu": {"shares": 300}}))
    runtime("update", "--resources", str(tmp_path / "res.json"), cid, check=True)
    assert cgroup_file(bundle, "cpu", "cpu.shares") == "300"


# --- seccomp ----------------------------------------------------------------


def _seccomp(bundle: Bundle, rules: list[dict[str, object]], default: str = "SCMP_ACT_ALLOW"
             ) -> None:
    bundle.config["linux"]["seccomp"] = {"defaultAction": default,
                                         "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                                         "syscalls": rules}


def test_seccomp_errno(runtime: Runtime, bundle: Bundle) -> None:
    _seccomp(bundle, [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                       "errnoRet": 1}])
    r = sees(runtime, bundle, "mkdir /tmp/x")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr


def test_seccomp_errno_ret_value(runtime: Runtime, bundle: Bundle) -> None:
    _seccomp(bundle, [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                       "errnoRet": 28}])
    r = sees(runtime, bundle, "mkdir /tmp/x")
    assert "No space left on device" in r.stderr


def test_seccomp_argument_condition(runtime: Runtime, bundle: Bundle) -> None:
    # deny kill(2) only when the signal (arg 1) is SIGUSR1
    _seccomp(bundle, [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                       "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}])
    r = sees(runtime, bundle, "kill -0 $$ && echo zero-ok; kill -USR1 $$ 2>&1 || echo usr1-denied")
    assert r.stdout.split("\n")[0] == "zero-ok"
    assert "usr1-denied" in r.stdout


def test_seccomp_kill_process(runtime: Runtime, bundle: Bundle) -> None:
    _seccomp(bundle, [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}])
    r = sees(runtime, bundle, "uname; exit 3")
    assert r.returncode == 128 + signal.SIGSYS or (r.returncode == 3 and "Bad system" in r.stderr)


def test_seccomp_default_errno_allowlist(runtime: Runtime, bundle: Bundle) -> None:
    # Only what a static echo needs: anything else fails with EPERM.
    _seccomp(bundle, [{"names": ["execve", "write", "exit_group", "exit", "brk",
                                 "arch_prctl", "set_tid_address", "getuid", "getpid",
                                 "rt_sigaction", "rt_sigprocmask", "futex", "capget",
                                 "capset", "prctl", "setresuid", "setresgid", "setgroups",
                                 "close", "fcntl", "openat", "newfstatat", "fstat", "read",
                                 "getppid", "chdir", "sched_getaffinity", "fstatfs", "statfs",
                                 "getcwd", "ioctl", "mmap", "munmap", "mprotect", "readlink",
                                 "readlinkat", "uname", "getrandom", "rseq", "set_robust_list",
                                 "prlimit64", "sigaltstack", "rt_sigreturn", "lseek", "dup2",
                                 "dup3", "faccessat", "faccessat2", "access", "setsid",
                                 "getdents64", "wait4", "nanosleep", "clock_nanosleep",
                                 "pread64", "mount_setattr", "close_range", "kill", "tgkill",
                                 "getpgrp", "geteuid", "getgid", "getegid", "gettid"],
                       "action": "SCMP_ACT_ALLOW"}], default="SCMP_ACT_ERRNO")
    bundle.write(["echo", "still-works"])
    r = runtime.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "still-works\n"


def test_seccomp_without_no_new_privs(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["noNewPrivileges"] = False
    _seccomp(bundle, [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                       "errnoRet": 1}])
    r = sees(runtime, bundle, "grep -E 'NoNewPrivs|Seccomp:' /proc/self/status; mkdir /x")
    assert r.stdout.split() == ["NoNewPrivs:", "0", "Seccomp:", "2"]
    assert "Operation not permitted" in r.stderr


# --- hooks ------------------------------------------------------------------


def test_hooks_get_state_on_stdin(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"

    def hook(stage: str) -> dict[str, object]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat >> {log}; echo ' {stage}' >> {log}"],
                "timeout": 10}

    bundle.config["hooks"] = {s: [hook(s)] for s in (
        "prestart", "createRuntime", "poststart", "poststop")}
    bundle.write(["true"])
    assert runtime.run(bundle).returncode == 0
    lines = log.read_text().splitlines()
    stages = [line.rsplit(" ", 1)[1] for line in lines]
    assert stages == ["prestart", "createRuntime", "poststart", "poststop"]
    first = json.loads(lines[0].rsplit(" ", 1)[0])
    assert first["bundle"] == str(bundle.path) and first["pid"] > 0


def test_failing_prestart_hook_fails_create(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    bundle.write(["true"])
    cid = runtime.new_id()
    r = runtime("create", "--bundle", str(bundle.path), cid)
    assert r.returncode != 0
    assert not (runtime.root / cid / "state.json").exists()


def test_hook_timeout_fails_create(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "20"],
                                            "timeout": 1}]}
    bundle.write(["true"])
    cid = runtime.new_id()
    start = time.monotonic()
    r = runtime("create", "--bundle", str(bundle.path), cid)
    assert r.returncode != 0
    assert time.monotonic() - start < 10
    assert not (runtime.root / cid / "state.json").exists()


def test_exec_flags_cwd_env_user(runtime: Runtime, bundle: Bundle) -> None:
    cid = _started(runtime, bundle)
    r = runtime("exec", "--cwd", "/tmp", "--env", "A=1", "--env", "B=two", "--user", "1000:1001",
                cid, "sh", "-c", "pwd; echo $A $B; id -u; id -g", check=True)
    assert r.stdout.split() == ["/tmp", "1", "two", "1000", "1001"]
