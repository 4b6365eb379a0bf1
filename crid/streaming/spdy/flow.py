"""SPDY/3.1 flow-control arithmetic: send and receive windows.

Pure accounting, no I/O, so it can be tested on its own; the session owns the
waiting. Each stream has a window in each direction, and so does the whole
connection (stream id 0 in WINDOW_UPDATE, new in 3.1). A sender may only
send as many DATA bytes as the smaller of its stream and connection windows
allow; a receiver returns credit with WINDOW_UPDATE as its reader consumes.
"""

from __future__ import annotations

from crid.streaming.spdy.frames import MAX_STREAM_ID

# What SPDY/3.1 assumes for every stream and for the connection until the
# receiver says otherwise (SETTINGS, WINDOW_UPDATE on stream 0).
DEFAULT_WINDOW = 64 * 1024
# What the streaming server announces instead: with 64 KiB a bulk transfer
# (port-forward, ``kubectl cp``'s stdin) costs two WINDOW_UPDATEs, two more
# writes, per 32 KiB frame. It is also the most a stream can hold unread from
# a peer that honours windows.
ANNOUNCED_WINDOW = 1024 * 1024
MAX_WINDOW = MAX_STREAM_ID  # 2^31 - 1


class FlowControlError(Exception):
    """A window was grown past 2^31-1."""


class SendWindow:
    """How many bytes we may still send before the peer grants more."""

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        self.available = size

    def take(self, wanted: int) -> int:
        """Reserve up to ``wanted`` bytes; returns how many (0 if exhausted)."""
        granted = max(0, min(wanted, self.available))
        self.available -= granted
        return granted

    def grow(self, delta: int) -> None:
        """Apply a WINDOW_UPDATE (or an INITIAL_WINDOW_SIZE change, maybe < 0)."""
        if self.available + delta > MAX_WINDOW:
            raise FlowControlError(f"window would grow to {self.available + delta}")
        self.available += delta


class ReceiveWindow:
    """What the peer may still send us, and when to give credit back.

    Credit is returned in batches once half the window has been consumed,
    so a bulk transfer costs one WINDOW_UPDATE per half window, not per frame.
    """

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        self.size = size
        self.available = size
        self._consumed = 0

    def received(self, count: int) -> bool:
        """Account ``count`` bytes that arrived; False if they overran the window.

        The caller decides whether an overrun is an error: peers that never
        take part in flow control (Go's spdystream, used by kubelet, kubectl
        and crictl) overrun by design.
        """
        self.available -= count
        return self.available >= 0

    def resize(self, size: int) -> None:
        """The peer was told a new window size (SETTINGS, or credit on stream 0)."""
        self.available += size - self.size
        self.size = size

    def consumed(self, count: int) -> int:
        """Record that the reader took ``count`` bytes; the update to send, or 0."""
        self._consumed += count
        if self._consumed < self.size // 2:
            return 0
        delta, self._consumed = self._consumed, 0
        self.available += delta
        return delta
