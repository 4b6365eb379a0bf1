"""The last responses of a list call, one per request, reused while what they
were made from is unchanged.

kubelet asks the same few lists (a handful of filters) every second or so; a
response made again from 100 unchanged items costs ~0.12 ms, and the gRPC layer
serializes a response object it has seen only once. Each entry carries a
*stamp* (table generations, pod states...): a caller asks with the stamp of
now and gets the entry only if it matches. Plain dict reads and writes, so the
gRPC layer's polling thread may use it beside the loop.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from google.protobuf.message import Message

R = TypeVar("R", bound=Message)

MAX_ENTRIES = 16  # more distinct requests than kubelet makes: start over


class ListingCache(Generic[R]):
    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[object, R]] = {}

    @staticmethod
    def key(request: Message) -> bytes:
        return request.SerializeToString(deterministic=True)

    def get(self, key: bytes, stamp: object) -> R | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] == stamp else None

    def put(self, key: bytes, stamp: object, response: R) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (stamp, response)
