"""Attacks on crid's NRI socket: who may connect, and what a hostile peer can make it hold.

The NRI socket hands every container to whoever plugs in, so only root may;
and a peer that announces a huge frame, or floods frames without reading
answers, is cut off before crid's memory follows it.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.fixtures.daemon import CridDaemon, DaemonFactory

SYSTEM_PYTHON = "/usr/bin/python3"  # one the unprivileged user may run


@pytest.fixture
def nri_daemon(crid_factory: DaemonFactory) -> Iterator[tuple[CridDaemon, str]]:
    # a directory anyone may traverse: only the socket's own mode may keep users out
    directory = Path(tempfile.mkdtemp(prefix="crid-nri-sec-", dir="/tmp"))
    directory.chmod(0o755)
    socket_path = str(directory / "nri.sock")
    daemon = crid_factory(config_toml=(
        f'[crid.nri]\nenable = true\nsocket_path = "{socket_path}"\nplugin_path = ""\n'
        "registration_timeout_ms = 3000\n"))
    yield daemon, socket_path
    shutil.rmtree(directory, ignore_errors=True)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _closed_by_peer(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        return conn.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_an_unprivileged_user_cannot_connect(nri_daemon: tuple[CridDaemon, str]) -> None:
    _, socket_path = nri_daemon
    assert os.stat(socket_path).st_mode & 0o777 == 0o600
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n")

    def connect_as_nobody() -> int:
        nobody = 65534
        return subprocess.run([SYSTEM_PYTHON, "-I", "-c", probe, socket_path],
                              user=nobody, group=nobody, check=False, timeout=30).returncode

    assert connect_as_nobody() == 13
    os.chmod(socket_path, 0o666)  # the control: the probe does get in when the mode allows
    assert connect_as_nobody() == 0


def test_a_huge_frame_header_is_cut_off_without_allocating(
        nri_daemon: tuple[CridDaemon, str]) -> None:
    daemon, socket_path = nri_daemon
    assert daemon.process is not None
    before = _rss_kib(daemon.process.pid)
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(socket_path)
        # a mux frame for the Runtime service claiming 4 GiB, then a trickle of bytes
        conn.sendall(struct.pack(">II", 2, 0xFFFFFFFF) + b"\0" * 4096)
        assert _closed_by_peer(conn, 5), "crid kept reading a 4 GiB frame"
    assert _rss_kib(daemon.process.pid) - before < 16 * 1024
    assert "mux frame of 4294967295 bytes exceeds" in daemon.stderr_text()


def test_a_flood_of_unread_requests_is_cut_off(nri_daemon: tuple[CridDaemon, str]) -> None:
    """Frames that nobody consumes (a plugin that never registers and floods a
    connection id crid reads) end the connection at the mux's queue bound."""
    daemon, socket_path = nri_daemon
    assert daemon.process is not None
    before = _rss_kib(daemon.process.pid)
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(socket_path)
        conn.settimeout(10)
        # ttrpc frames with only a header: requests that ask for a 4 MiB body
        header = struct.pack(">IIBB", 4 << 20, 1, 1, 0)
        frame = struct.pack(">II", 2, len(header)) + header
        deadline = time.monotonic() + 10
        cut = False
        while time.monotonic() < deadline:
            try:
                conn.sendall(frame * 64)
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
        assert cut or _closed_by_peer(conn, 5), "crid kept taking frames nobody reads"
    assert _rss_kib(daemon.process.pid) - before < 64 * 1024
    assert "mux connection 2 fell behind" in daemon.stderr_text()


MARKER_PLUGIN = "#!/bin/sh\ntouch {marker}\nexec sleep 30\n"


@pytest.mark.parametrize("writable_by_others", [True, False])
def test_a_plugin_others_may_write_is_not_run(crid_factory: DaemonFactory, tmp_path: Path,
                                             writable_by_others: bool) -> None:
    """Anyone who may rewrite a pre-installed plugin would have crid run their code as
    root; such a plugin is refused (the control: the same file, root's alone, runs)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o755)
    marker = tmp_path / "ran"
    script = plugins / "10-marker"
    script.write_text(MARKER_PLUGIN.format(marker=marker))
    script.chmod(0o777 if writable_by_others else 0o755)
    daemon = crid_factory(config_toml=(
        f'[crid.nri]\nsocket_path = "{tmp_path / "nri.sock"}"\nplugin_path = "{plugins}"\n'
        "registration_timeout_ms = 1000\n"))
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists() is not writable_by_others
    assert ("is not root's alone" in daemon.stderr_text()) is writable_by_others
