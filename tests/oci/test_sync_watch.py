"""The runtime's read of its children's messages while the first child is
watched (``Channel.from_child(while_alive=pidfd)``), on real pipes and a real
child process: a first child that dies without a word must not leave the
runtime waiting on a pipe someone else (init) still holds open."""

from __future__ import annotations

import os
import time

from crid.oci.sync import Channel, message


def test_a_dead_first_child_ends_the_wait_though_the_pipe_stays_open() -> None:
    ch = Channel.open()
    pid = os.fork()
    if pid == 0:
        os._exit(0)  # dies without a word; our test holds the write end open, as init would
    pidfd = os.pidfd_open(pid)
    try:
        started = time.monotonic()
        assert ch.from_child(pidfd) is None
        assert time.monotonic() - started < 5
    finally:
        os.waitpid(pid, 0)
        os.close(pidfd)
        for fd in (ch.c_read, ch.c_write, ch.p_read, ch.p_write):
            os.close(fd)


def test_a_message_sent_just_before_exiting_is_read_not_lost() -> None:
    ch = Channel.open()
    pid = os.fork()
    if pid == 0:
        os.write(ch.c_write, message({"pid": 42}))
        os._exit(0)
    pidfd = os.pidfd_open(pid)
    try:
        time.sleep(0.05)  # exited by now, with the message waiting in the pipe
        assert ch.from_child(pidfd) == {"pid": 42}
        assert ch.from_child(pidfd) is None  # then: gone, nothing pending
    finally:
        os.waitpid(pid, 0)
        os.close(pidfd)
        for fd in (ch.c_read, ch.c_write, ch.p_read, ch.p_write):
            os.close(fd)


def test_messages_in_pieces_are_put_together() -> None:
    ch = Channel.open()
    pid = os.fork()
    if pid == 0:
        data = message({"ready": True})
        os.write(ch.c_write, data[:3])
        time.sleep(0.05)
        os.write(ch.c_write, data[3:])
        time.sleep(5)
        os._exit(0)
    pidfd = os.pidfd_open(pid)
    try:
        assert ch.from_child(pidfd) == {"ready": True}
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(pidfd)
        for fd in (ch.c_read, ch.c_write, ch.p_read, ch.p_write):
            os.close(fd)
