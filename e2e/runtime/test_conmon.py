"""conmon (Debian's 2.1.6) drives each runtime unchanged, as cri-o does: create
through conmon, start, a CRI-format log, an exit file; exec through conmon; a
terminal through conmon's console socket."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.fixtures.bundle import Bundle, Runtime

CONMON = shutil.which("conmon") or "/usr/bin/conmon"
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d (stdout|stderr) [PF] ")


class Conmon:
    def __init__(self, rt: Runtime, b: Bundle, d: Path) -> None:
        self.rt, self.b, self.d = rt, b, d
        self.cid = rt.new_id()
        for sub in ("exits", "exec-exits", "socks"):
            (d / sub).mkdir()
        self.base = [CONMON, "--api-version", "1", "-c", self.cid, "-u", self.cid, "-n", "ctr",
                     "-r", rt.binary, "-b", str(b.path), "--socket-dir-path", str(d / "socks"),
                     "--runtime-arg", "--root", "--runtime-arg", str(rt.root), "--sync"]
        self.proc: subprocess.Popen[bytes] | None = None

    def create(self, *extra: str) -> int:
        self.proc = subprocess.Popen(
            [*self.base, "-p", str(self.d / "pid"), "-P", str(self.d / "conmon.pid"),
             "-l", str(self.d / "ctr.log"), "--exit-dir", str(self.d / "exits"), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not (self.d / "pid").exists():
            assert self.proc.poll() is None, "conmon exited before the container was created"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return int((self.d / "pid").read_text())

    def exit_code(self) -> int:
        assert self.proc is not None
        self.proc.wait(15)
        return int((self.d / "exits" / self.cid).read_text())

    def log(self) -> list[str]:
        return (self.d / "ctr.log").read_text().splitlines()


@pytest.fixture
def conmon(runtime: Runtime, bundle: Bundle, tmp_path: Path) -> Iterator[Conmon]:
    (tmp_path / "conmon").mkdir()
    c = Conmon(runtime, bundle, tmp_path / "conmon")
    yield c
    if c.proc is not None and c.proc.poll() is None:
        runtime("kill", c.cid, "KILL")
        c.proc.wait(15)


def test_conmon_create_start_log_exit(conmon: Conmon, runtime: Runtime, bundle: Bundle) -> None:
    bundle.write(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
    pid = conmon.create()
    st = runtime.state(conmon.cid)
    assert (st["status"], st["pid"]) == ("created", pid)
    runtime("start", conmon.cid, check=True)
    assert conmon.exit_code() == 3
    log = conmon.log()
    assert all(CRI_LINE.match(line) for line in log), log
    assert sorted(line.split(" ", 1)[1] for line in log) == ["stderr F to-err", "stdout F to-out"]


def test_conmon_exec(conmon: Conmon, runtime: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.write(["sleep", "100"])
    conmon.create()
    runtime("start", conmon.cid, check=True)
    spec = tmp_path / "process.json"
    spec.write_text(json.dumps({"args": ["sh", "-c", "echo from-exec; hostname; exit 4"],
                                "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
    r = subprocess.run([*conmon.base, "-e", "--exec-process-spec", str(spec),
                        "-p", str(tmp_path / "exec.pid"), "-l", str(tmp_path / "exec.log"),
                        "--exit-dir", str(conmon.d / "exec-exits")],
                       capture_output=True, timeout=30)
    assert r.returncode == 4
    assert (conmon.d / "exec-exits" / conmon.cid).read_text() == "4"
    lines = (tmp_path / "exec.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["stdout F from-exec",
                                                         "stdout F testbox"]
    runtime("kill", conmon.cid, "KILL", check=True)
    assert conmon.exit_code() == 137


def test_conmon_terminal(conmon: Conmon, runtime: Runtime, bundle: Bundle) -> None:
    bundle.config["process"]["terminal"] = True
    bundle.write(["sh", "-c", "tty; exit 0"])
    conmon.create("-t")
    runtime("start", conmon.cid, check=True)
    assert conmon.exit_code() == 0
    text = " ".join(line.split(" ", 3)[3] for line in conmon.log())
    assert "/dev/pts/0" in text
