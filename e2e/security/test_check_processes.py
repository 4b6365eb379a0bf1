"""``crid check --repair`` kills conmons no container owns: a user's process
dressed as one must never be taken for crid's, and so never killed.

A conmon's command line names the container (``-c``) and the exit dir
(``--exit-dir``), and anyone can start a process with that command line.
The attack: ``nobody`` runs one naming this crid's exit dir and a container
id with no row; the check must not report it (and ``--repair`` must leave it
alive). The same process started as root is reported, which shows the test
would see the attack succeed.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from crid.image import schema as image_schema

from crid.containers import schema as container_schema
from crid.sandbox import schema as sandbox_schema
from crid.store import Store
from e2e.fixtures.daemon import CRID

CONTAINER = "d" * 64
Starter = Callable[..., "subprocess.Popen[bytes]"]


def check_args(tmp_path: Path) -> list[str]:
    (tmp_path / "crid.d").mkdir(exist_ok=True)
    return ["--config", "/dev/null", "--config-dir", str(tmp_path / "crid.d"),
            "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"),
            "--cni-config-dir", str(tmp_path / "net.d"),
            "--cgroup-parent", f"/crid-sec-{uuid.uuid4().hex[:8]}"]


def check(tmp_path: Path, *extra: str) -> tuple[int, list[tuple[str, str]]]:
    done = subprocess.run([str(CRID), "check", *check_args(tmp_path), "--json", *extra],
                          capture_output=True, text=True, timeout=60, check=False)
    tree = json.loads(done.stdout)
    return done.returncode, [(f["kind"], f["subject"]) for f in tree["findings"]]


@pytest.fixture
def fake_conmon(tmp_path: Path) -> Iterator[Starter]:
    """Start ``sh`` as ``conmon -c … --exit-dir <this runroot's> -c <id>`` as a user."""
    started: list[subprocess.Popen[bytes]] = []
    exits = tmp_path / "run" / "exits"
    exits.mkdir(parents=True)

    def start(*as_user: str) -> subprocess.Popen[bytes]:
        # argv[0] "conmon", "-c" the script; the rest only dresses the command line.
        code = ("import os; os.execv('/bin/sh', ['conmon', '-c', 'sleep 30', "
                f"'--exit-dir', '{exits}', '-c', '{CONTAINER}'])")
        process = subprocess.Popen([*as_user, "/usr/bin/python3", "-c", code])
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def make_store(root: Path) -> None:
    """An empty store, as a daemon leaves it."""
    root.mkdir()
    Store(root / "crid.db", migrations={
        "image": image_schema.MIGRATIONS, "sandbox": sandbox_schema.MIGRATIONS,
        "containers": container_schema.MIGRATIONS}).open().close()


def wait_for_cmdline(pid: int) -> None:
    for _ in range(200):
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"conmon\0"):
            return
        time.sleep(0.01)
    raise AssertionError("the fake conmon did not start")


def test_a_users_process_dressed_as_conmon_is_not_crids(tmp_path: Path,
                                                       fake_conmon: Starter) -> None:
    start = fake_conmon
    make_store(tmp_path / "root")  # --repair acts only against a whole store
    theirs = start("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    wait_for_cmdline(theirs.pid)
    assert check(tmp_path) == (0, [])
    assert check(tmp_path, "--repair") == (0, [])
    assert theirs.poll() is None  # not killed

    # The same command line run by root is taken for a conmon of this crid.
    ours = start()
    wait_for_cmdline(ours.pid)
    assert check(tmp_path) == (1, [("conmon-without-container", f"pid {ours.pid}")])
