"""Claiming the socket: stale files replaced, live sockets and other files refused."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from crid import listener
from crid.errors import FailedPrecondition


def test_a_missing_socket_gets_its_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "crid.sock"
    listener.claim(path)
    assert path.parent.is_dir() and not path.exists()


def test_a_stale_socket_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "crid.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    listener.claim(path)
    assert not path.exists()


def test_a_live_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "crid.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(FailedPrecondition, match="served by another live process"):
            listener.claim(path)
    assert path.exists()


def test_a_regular_file_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "crid.sock"
    path.write_text("not mine")
    with pytest.raises(FailedPrecondition, match="not a socket"):
        listener.claim(path)
    assert path.read_text() == "not mine"
