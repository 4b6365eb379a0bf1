"""conmon + a real OCI runtime driven through ``Monitor``, no daemon involved."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from crid.config import Handler
from crid.containers.monitor import Monitor, RuntimeFailed, monitor_alive, reopen_log
from e2e.fixtures.layers import busybox_layer

RUNC = Handler("runc", "/usr/sbin/runc")


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Path]:
    bundle = tmp_path / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(busybox_layer().tar)) as layer:
        layer.extractall(rootfs, filter="tar")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    yield bundle


def configure(bundle: Path, args: list[str], cgroup: str) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["linux"]["cgroupsPath"] = cgroup
    (bundle / "config.json").write_text(json.dumps(spec))


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Monitor]:
    made = Monitor(RUNC, tmp_path / "runc-root", tmp_path / "exits")
    yield made
    shutil.rmtree(tmp_path / "runc-root", ignore_errors=True)


def wait_for_exit(monitor: Monitor, container_id: str, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while (code := monitor.exit_code(container_id)) is None:
        assert time.monotonic() < deadline, "container did not exit"
        time.sleep(0.02)
    return code


def test_create_start_exit_code_and_cri_log(bundle: Path, monitor: Monitor,
                                            tmp_path: Path) -> None:
    cid = uuid.uuid4().hex
    configure(bundle, ["/bin/sh", "-c", "echo out; echo err >&2; printf part; exit 7"],
              f"/crid-test/{cid}")
    log = tmp_path / "ctr.log"
    created = asyncio.run(monitor.create(cid, "ctr", bundle, log))
    assert created.pid > 0 and monitor_alive(created.monitor_pid, cid)
    assert monitor.exit_code(cid) is None
    assert asyncio.run(monitor.state(cid))["status"] == "created"
    asyncio.run(monitor.start(cid))
    assert wait_for_exit(monitor, cid) == 7
    lines = [line.split(" ", 3) for line in log.read_text().splitlines()]
    # Order across stdout and stderr is not guaranteed; each line's form is.
    streams = {(stream, tag, text) for _, stream, tag, text in lines}
    assert streams == {("stdout", "F", "out"), ("stderr", "F", "err"), ("stdout", "P", "part")}
    asyncio.run(monitor.delete(cid))
    asyncio.run(monitor.delete(cid))  # gone already: still fine


def test_kill_exec_sync_and_reopen_log(bundle: Path, monitor: Monitor, tmp_path: Path) -> None:
    cid = uuid.uuid4().hex
    configure(bundle, ["/bin/sleep", "60"], f"/crid-test/{cid}")
    log = tmp_path / "ctr.log"
    asyncio.run(monitor.create(cid, "ctr", bundle, log))
    asyncio.run(monitor.start(cid))
    result = asyncio.run(monitor.exec_sync(
        cid, {"args": ["/bin/sh", "-c", "echo hi; echo oops >&2; exit 3"], "cwd": "/",
              "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}, bundle, timeout=10))
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"hi\n", b"oops\n")
    with pytest.raises(Exception, match="timed out"):
        asyncio.run(monitor.exec_sync(
            cid, {"args": ["/bin/sleep", "30"], "cwd": "/", "env": [],
                  "user": {"uid": 0, "gid": 0}}, bundle, timeout=0.5))
    log.rename(tmp_path / "ctr.log.1")
    reopen_log(bundle)
    deadline = time.monotonic() + 5
    while not log.exists():
        assert time.monotonic() < deadline, "conmon did not reopen the log"
        time.sleep(0.02)
    asyncio.run(monitor.kill(cid, signal.SIGKILL))
    assert wait_for_exit(monitor, cid) == 137
    asyncio.run(monitor.delete(cid))


def test_a_runtime_error_is_reported_with_its_message(bundle: Path, monitor: Monitor,
                                                      tmp_path: Path) -> None:
    cid = uuid.uuid4().hex
    configure(bundle, ["/no/such/binary"], f"/crid-test/{cid}")
    with pytest.raises(RuntimeFailed, match="no such file"):
        asyncio.run(monitor.create(cid, "ctr", bundle, tmp_path / "ctr.log"))
    asyncio.run(monitor.delete(cid, force=True))


def test_a_conmon_whose_launcher_left_no_pid_file_is_found(bundle: Path, tmp_path: Path
                                                            ) -> None:
    """conmon's launcher writes conmon.pid after forking conmon, then exits; one
    killed in between (as e2e/chaos's killer once did) leaves conmon running
    and no file. The create still succeeds, with conmon found by its command
    line and the file written for the next reader."""
    elsewhere = tmp_path / "elsewhere.pid"
    wrapper = tmp_path / "conmon"  # -P pointed away: the file never comes
    wrapper.write_text("#!/bin/sh\n"
                       'for a; do shift\n'
                       '  if [ "$a" = -P ]; then set -- "$@" -P; skip=1; continue; fi\n'
                       f'  if [ -n "$skip" ]; then set -- "$@" {elsewhere}; skip=; '
                       'else set -- "$@" "$a"; fi; done\n'
                       'exec /usr/bin/conmon "$@"\n')
    wrapper.chmod(0o755)
    monitor = Monitor(RUNC, tmp_path / "runc-root", tmp_path / "exits", conmon=str(wrapper))
    cid = uuid.uuid4().hex
    configure(bundle, ["/bin/sleep", "60"], f"/crid-test/{cid}")
    created = asyncio.run(monitor.create(cid, "ctr", bundle, tmp_path / "ctr.log"))
    try:
        assert elsewhere.exists()  # the wrapper did move it
        assert monitor_alive(created.monitor_pid, cid)
        assert (bundle / "conmon.pid").read_text() == str(created.monitor_pid)
    finally:
        asyncio.run(monitor.kill(cid, signal.SIGKILL))
        wait_for_exit(monitor, cid)
        asyncio.run(monitor.delete(cid))
