"""The runtime <-> child handshake: small messages over a pair of close-on-exec pipes.

Children report progress (``{"pid": N}``, ``{"ready": true}``) or failure
(``{"error": "..."}``); the parent answers requests (``{"userns": pid}`` ->
write id maps -> ``{"ok": true}``), and tells init ``{"created": true}`` last.
Each message is a ``marshal``-ed dict behind a 4-byte length: both ends are
this same program, and ``marshal`` is built in, where ``json`` would cost
milliseconds of imports on every container start.
"""

from __future__ import annotations

import marshal
import os

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.jsontypes import Json

_LEN = 4


class Channel:
    def __init__(self, to_child: tuple[int, int], to_parent: tuple[int, int]) -> None:
        self.c_read, self.p_write = to_child
        self.p_read, self.c_write = to_parent
        self._buf = b""

    @classmethod
    def open(cls) -> Channel:
        """A channel on two new pipes: parent -> child, child -> parent."""
        return cls(os.pipe(), os.pipe())

    def parent_side(self) -> None:
        os.close(self.c_read)
        os.close(self.c_write)

    def child_side(self) -> None:
        os.close(self.p_read)
        os.close(self.p_write)

    def to_parent(self, msg: Json) -> None:
        _send(self.c_write, msg)

    def to_child(self, msg: Json) -> None:
        _send(self.p_write, msg)

    def _recv(self, fd: int) -> Json | None:
        if not self._fill(fd, _LEN):
            return None
        n = int.from_bytes(self._buf[:_LEN], "little")
        if not self._fill(fd, _LEN + n):
            return None
        msg: Json = marshal.loads(self._buf[_LEN : _LEN + n])
        self._buf = self._buf[_LEN + n :]
        return msg

    def _ready(self, pidfd: int) -> bool:
        """Wait until a whole message is here or EOF (True), or the process of
        ``pidfd`` has exited and nothing more is to be read (False)."""
        import select

        poll = select.poll()
        poll.register(self.p_read, select.POLLIN)
        poll.register(pidfd, select.POLLIN)
        while not self._whole():
            ready = dict(poll.poll())
            if ready.get(self.p_read):
                chunk = os.read(self.p_read, 65536)
                if not chunk:
                    return True  # EOF: _recv says so
                self._buf += chunk
            elif ready.get(pidfd):
                return False
        return True

    def _whole(self) -> bool:
        return len(self._buf) >= _LEN and \
            len(self._buf) >= _LEN + int.from_bytes(self._buf[:_LEN], "little")

    def _fill(self, fd: int, size: int) -> bool:
        while len(self._buf) < size:
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            self._buf += chunk
        return True

    def from_child(self, while_alive: int | None = None) -> Json | None:
        """The children's next message; None at EOF. With ``while_alive`` (a
        pidfd), None too once that process has exited with no message pending:
        the first child can die between forking init and reporting its pid,
        and init, holding this pipe open, would wait for us forever."""
        if while_alive is not None and not self._ready(while_alive):
            return None
        return self._recv(self.p_read)

    def from_parent(self) -> Json | None:
        return self._recv(self.c_read)

    def close_parent(self) -> None:
        for fd in (self.p_read, self.p_write):
            try:
                os.close(fd)
            except OSError:
                pass


def message(msg: Json) -> bytes:
    """``msg`` as it travels: length, then marshal."""
    data = marshal.dumps(msg)
    return len(data).to_bytes(_LEN, "little") + data


def _send(fd: int, msg: Json) -> None:
    os.write(fd, message(msg))
