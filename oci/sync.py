"""The runtime <-> child handshake: JSON lines over a pair of close-on-exec pipes.

Children report progress (``{"pid": N}``, ``{"ready": true}``) or failure
(``{"error": "..."}``); the parent answers requests (``{"userns": pid}`` ->
write id maps -> ``{"ok": true}``).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]


class Channel:
    def __init__(self) -> None:
        self.c_read, self.p_write = os.pipe()  # parent -> child
        self.p_read, self.c_write = os.pipe()  # child -> parent
        self._buf = b""

    def parent_side(self) -> None:
        os.close(self.c_read)
        os.close(self.c_write)

    def child_side(self) -> None:
        os.close(self.p_read)
        os.close(self.p_write)

    def to_parent(self, msg: Json) -> None:
        os.write(self.c_write, json.dumps(msg).encode() + b"\n")

    def to_child(self, msg: Json) -> None:
        os.write(self.p_write, json.dumps(msg).encode() + b"\n")

    def _recv(self, fd: int) -> Json | None:
        while b"\n" not in self._buf:
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: Json = json.loads(line)
        return msg

    def from_child(self) -> Json | None:
        return self._recv(self.p_read)

    def from_parent(self) -> Json | None:
        return self._recv(self.c_read)

    def close_parent(self) -> None:
        for fd in (self.p_read, self.p_write):
            try:
                os.close(fd)
            except OSError:
                pass
