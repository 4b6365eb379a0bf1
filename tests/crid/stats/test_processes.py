"""Counting threads, open files and sockets of real processes in /proc."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from crid.stats.processes import count


def test_counts_this_process() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM):
            found = count([os.getpid()])
            assert found.processes == 1
            assert found.threads >= 2
            assert found.sockets >= 1
            assert found.file_descriptors >= 3 + found.sockets
    finally:
        stop.set()
        worker.join()


def test_a_gone_process_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "status").write_text("Name:\tsh\nThreads:\t3\n")
    (tmp_path / "7" / "fd").mkdir()
    os.symlink("socket:[1234]", tmp_path / "7" / "fd" / "0")
    os.symlink("/dev/null", tmp_path / "7" / "fd" / "1")
    found = count([7, 8], proc=tmp_path)
    assert (found.processes, found.threads, found.file_descriptors, found.sockets) == (1, 3, 2, 1)
