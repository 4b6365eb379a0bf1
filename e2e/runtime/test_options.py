"""Less common options, for both runtimes: --preserve-fds, --no-pivot,
rootfsPropagation, createContainer/startContainer hooks, a refused negative
oomScoreAdj, and the `features` and `spec` verbs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from e2e.fixtures.bundle import RUNTIMES, Bundle, Runtime
from e2e.runtime.helpers import out, sees


def test_preserve_fds(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    (tmp_path / "extra").write_text("passed-through\n")
    bundle.write(["sh", "-c", "cat <&3"])
    # A shell opens the file as fd 3 and execs the runtime, as conmon passes its pipes.
    cmd = ["sh", "-c", 'exec 3<"$0"; exec "$@"', str(tmp_path / "extra"),
           *runtime.cmd("run", "--preserve-fds", "1", "--bundle", str(bundle.path),
                        runtime.new_id())]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, "passed-through\n"), r.stderr


def test_fds_are_not_leaked_without_preserve(runtime: Runtime, bundle: Bundle,
                                             tmp_path: Path) -> None:
    (tmp_path / "extra").write_text("x")
    bundle.write(["sh", "-c", "cat <&7 2>/dev/null || echo closed"])
    cmd = ["sh", "-c", 'exec 7<"$0"; exec "$@"', str(tmp_path / "extra"),
           *runtime.cmd("run", "--bundle", str(bundle.path), runtime.new_id())]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.stdout == "closed\n", r.stderr


def test_exec_fds_are_not_leaked(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.write(["sleep", "100"])
    cid = runtime.create(bundle)
    runtime("start", cid, check=True)
    (tmp_path / "extra").write_text("x")
    cmd = ["sh", "-c", 'exec 7<"$0"; exec "$@"', str(tmp_path / "extra"),
           *runtime.cmd("exec", cid, "sh", "-c", "cat <&7 2>/dev/null || echo closed")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.stdout == "closed\n", r.stderr


def test_no_pivot(runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(["sh", "-c", "ls /; cat /proc/self/mountinfo | wc -l"])
    r = runtime.run(bundle, "--no-pivot")
    assert r.returncode == 0, r.stderr
    assert "bin" in r.stdout.split() and "proc" in r.stdout.split()


def test_rootfs_propagation_private(runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["linux"]["rootfsPropagation"] = "rprivate"
    line = out(runtime, bundle, "awk '$5 == \"/\"' /proc/self/mountinfo")
    assert "shared:" not in line and "master:" not in line


def test_container_hooks(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    # createContainer runs in the container's namespaces before pivot_root (host
    # paths still visible); startContainer runs inside the container after start.
    log = tmp_path / "created"
    bundle.config["hooks"] = {
        "createContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"hostname > {log}"]}],
        "startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "echo started > /tmp/start-hook"]}],
    }
    assert out(runtime, bundle, "cat /tmp/start-hook") == "started"
    assert log.read_text().strip() in ("testbox", os.uname().nodename)


def test_negative_oom_score_adj_is_clamped(crid_runtime: Runtime, bundle: Bundle) -> None:
    # This machine refuses values below 0 (EACCES): warn and run, don't fail.
    bundle.config["process"]["oomScoreAdj"] = -500
    r = sees(crid_runtime, bundle, "cat /proc/self/oom_score_adj")
    assert r.returncode == 0, r.stderr
    if "oom_score_adj -500 refused" in r.stderr:
        assert r.stdout.strip() == Path("/proc/self/oom_score_adj").read_text().strip()
    else:  # a kernel that allows it
        assert r.stdout.strip() == "-500"


def test_features_like_runc(crid_runtime: Runtime) -> None:
    ours = json.loads(crid_runtime("features", check=True).stdout)
    theirs = json.loads(subprocess.run([RUNTIMES["runc"], "features"], capture_output=True,
                                       text=True, check=True).stdout)
    assert set(theirs) <= set(ours)
    assert ours["hooks"] == theirs["hooks"]
    assert set(theirs["linux"]["namespaces"]) <= set(ours["linux"]["namespaces"])
    assert set(ours["linux"]["seccomp"]["actions"]) >= {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO",
                                                        "SCMP_ACT_KILL_PROCESS"}
    assert {"rro", "rbind", "rslave", "nosuid"} <= set(ours["mountOptions"])


def test_spec_writes_a_runnable_default(crid_runtime: Runtime, bundle: Bundle) -> None:
    (bundle.path / "config.json").unlink(missing_ok=True)
    subprocess.run(crid_runtime.cmd("spec", "--bundle", str(bundle.path)), check=True)
    cfg = json.loads((bundle.path / "config.json").read_text())
    cfg["process"].update(terminal=False, args=["hostname"])
    (bundle.path / "config.json").write_text(json.dumps(cfg))
    for name in RUNTIMES:
        rt = Runtime(name, bundle.path.parent / f"spec-root-{name}")
        try:
            r = rt.run(bundle)
            assert (r.returncode, r.stdout) == (0, "crid\n"), (name, r.stderr)
        finally:
            rt.cleanup()
    again = crid_runtime("spec", "--bundle", str(bundle.path))
    assert again.returncode != 0 and "exists" in again.stderr
