"""The runtime's read of its children's messages while the first child is
watched (``Channel.from_child(while_alive=pidfd)``), on real pipes and a real
child process: a first child that dies without a word must not leave the
runtime waiting on a pipe someone else (init) still holds open."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

from crid.oci.sync import Channel, message


@contextlib.contextmanager
def first_child(body: Callable[[Channel], None]) -> Iterator[tuple[Channel, int]]:
    """A child running ``body`` then exiting, and a pidfd of it. The test keeps
    every end of the channel open, as init would keep the child's write end."""
    ch = Channel.open()
    pid = os.fork()
    if pid == 0:
        body(ch)
        os._exit(0)
    pidfd = os.pidfd_open(pid)
    try:
        yield ch, pidfd
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(pidfd)
        for fd in (ch.c_read, ch.c_write, ch.p_read, ch.p_write):
            os.close(fd)


def test_a_dead_first_child_ends_the_wait_though_the_pipe_stays_open() -> None:
    with first_child(lambda ch: None) as (ch, pidfd):  # dies without a word
        started = time.monotonic()
        assert ch.from_child(pidfd) is None
        assert time.monotonic() - started < 5


def test_a_message_sent_just_before_exiting_is_read_not_lost() -> None:
    with first_child(lambda ch: ch.to_parent({"pid": 42})) as (ch, pidfd):
        time.sleep(0.05)  # exited by now, with the message waiting in the pipe
        assert ch.from_child(pidfd) == {"pid": 42}
        assert ch.from_child(pidfd) is None  # then: gone, nothing pending


def _in_pieces(ch: Channel) -> None:
    data = message({"ready": True})
    os.write(ch.c_write, data[:3])
    time.sleep(0.05)
    os.write(ch.c_write, data[3:])
    time.sleep(5)  # alive while the parent reads


def test_messages_in_pieces_are_put_together() -> None:
    with first_child(_in_pieces) as (ch, pidfd):
        assert ch.from_child(pidfd) == {"ready": True}
