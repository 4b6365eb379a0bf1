"""Claiming the socket: stale files replaced, live sockets and other files refused."""

from __future__ import annotations

import os
import socket
import stat
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


def test_a_staged_socket_arrives_with_its_mode_and_group(tmp_path: Path) -> None:
    path = tmp_path / "crid.sock"
    with socket.socket(socket.AF_UNIX) as server:
        with listener.staged(path, 64999) as private_path:
            assert private_path.parent.parent == tmp_path
            assert stat.S_IMODE(private_path.parent.stat().st_mode) == 0o700
            assert not path.exists()  # nothing at the final path until it is ready
            old = os.umask(0)  # the mode the kernel gives a bound socket: all bits
            try:
                server.bind(str(private_path))
            finally:
                os.umask(old)
            server.listen()
        st = path.lstat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == 64999
        assert [p.name for p in tmp_path.iterdir()] == ["crid.sock"]  # the private dir went
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))  # the listener still serves it after the rename


def test_a_failed_start_leaves_neither_socket_nor_private_dir(tmp_path: Path) -> None:
    path = tmp_path / "crid.sock"
    with pytest.raises(RuntimeError), listener.staged(path, os.getegid()) as private_path:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(private_path))
        raise RuntimeError("the server did not start")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("group", "gid"), [("", os.getegid()), ("64999", 64999),
                                            ("root", 0)])
def test_group_ids(group: str, gid: int) -> None:
    assert listener.group_id(group) == gid


def test_an_unknown_group_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="no group 'no-such-group-here'"):
        listener.group_id("no-such-group-here")
