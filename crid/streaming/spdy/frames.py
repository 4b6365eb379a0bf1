"""SPDY/3.1 frames: their in-memory form, and encoding and decoding them.

A frame is 8 bytes of header and a payload. Control frames carry the
version (3) and a type; data frames carry a stream id. Header blocks (in
SYN_STREAM, SYN_REPLY and HEADERS) are deflated with one zlib stream per
direction for the life of the connection, so the ``HeaderCodec`` of each side
must see every header block in order; that is why encoding and decoding take
the codec rather than being pure functions of one frame.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

from crid.streaming.spdy.dictionary import DICTIONARY

VERSION = 3
MAX_LENGTH = (1 << 24) - 1  # the length field is 24 bits
MAX_STREAM_ID = (1 << 31) - 1
HEADER_SIZE = 8
# What a header block may inflate to, and how many name/value pairs and values
# it may hold: a compression bomb (a few KiB that inflate to gigabytes) or a
# flood of tiny headers ends the connection instead of filling the daemon.
MAX_HEADER_BLOCK = 1024 * 1024
MAX_HEADER_VALUES = 1000
# The largest frame we read. A header block within the cap is no larger
# compressed (deflate adds a few bytes per 64 KiB it cannot shrink), and a
# DATA frame larger than the 1 MiB window we announce breaks flow control.
MAX_FRAME = MAX_HEADER_BLOCK + 4096

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

TYPE_SYN_STREAM = 1
TYPE_SYN_REPLY = 2
TYPE_RST_STREAM = 3
TYPE_SETTINGS = 4
TYPE_PING = 6
TYPE_GOAWAY = 7
TYPE_HEADERS = 8
TYPE_WINDOW_UPDATE = 9

# RST_STREAM status codes
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9

# GOAWAY status codes
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1

SETTINGS_INITIAL_WINDOW_SIZE = 7

Headers = dict[str, list[str]]


class FrameError(Exception):
    """The peer sent bytes that are not valid SPDY/3.1."""


@dataclasses.dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclasses.dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclasses.dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclasses.dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclasses.dataclass(frozen=True)
class Settings:
    values: dict[int, int]  # id -> value; per-setting flags are not kept
    clear: bool = False


@dataclasses.dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclasses.dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclasses.dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclasses.dataclass(frozen=True)
class WindowUpdate:
    stream_id: int  # 0 = the whole connection (SPDY/3.1)
    delta: int


Frame = (
    Data | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame
    | WindowUpdate
)


class HeaderCodec:
    """One side's header compression state: a deflater and an inflater."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         DICTIONARY)
        self._inflate = zlib.decompressobj(15, DICTIONARY)

    def encode(self, headers: Headers) -> bytes:
        block = [struct.pack("!I", len(headers))]
        for name, values in headers.items():
            raw_name = name.lower().encode()
            raw_value = "\x00".join(values).encode()
            block += [struct.pack("!I", len(raw_name)), raw_name,
                      struct.pack("!I", len(raw_value)), raw_value]
        return self._deflate.compress(b"".join(block)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, compressed: bytes) -> Headers:
        try:
            # Inflate no further than the cap: what is left stays compressed.
            block = self._inflate.decompress(compressed, MAX_HEADER_BLOCK + 1)
        except zlib.error as exc:
            raise FrameError(f"header block does not inflate: {exc}") from None
        if len(block) > MAX_HEADER_BLOCK or self._inflate.unconsumed_tail:
            raise FrameError(f"header block inflates to more than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(block)


def parse_header_block(block: bytes) -> Headers:
    """The name/value pairs of an inflated header block (names lower-cased)."""
    headers: Headers = {}
    values = 0
    try:
        (count,), at = struct.unpack_from("!I", block), 4
        if count > MAX_HEADER_VALUES:
            raise FrameError(f"{count} headers in one block; at most {MAX_HEADER_VALUES}")
        for _ in range(count):
            (size,) = struct.unpack_from("!I", block, at)
            name, at = block[at + 4:at + 4 + size], at + 4 + size
            (size,) = struct.unpack_from("!I", block, at)
            value, at = block[at + 4:at + 4 + size], at + 4 + size
            if not name or len(value) != size:
                raise FrameError("truncated or empty header name")
            values += value.count(b"\x00") + 1
            if values > MAX_HEADER_VALUES:
                raise FrameError(f"more than {MAX_HEADER_VALUES} header values in one block")
            headers.setdefault(name.decode().lower(), []).extend(value.decode().split("\x00"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed header block: {exc}") from None
    if at != len(block):
        raise FrameError("trailing bytes after the header block")
    return headers


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise FrameError("control frame too large")
    return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def encode(frame: Frame, codec: HeaderCodec) -> bytes:
    """The wire bytes of ``frame``; header blocks go through ``codec``."""
    match frame:
        case Data(stream_id, data, fin):
            if len(data) > MAX_LENGTH:
                raise FrameError("data frame too large")
            return struct.pack("!II", stream_id & MAX_STREAM_ID,
                               (FLAG_FIN if fin else 0) << 24 | len(data)) + data
        case SynStream(stream_id, headers, associated_to, priority, fin, unidirectional):
            flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
            head = struct.pack("!IIBB", stream_id, associated_to, (priority & 7) << 5, 0)
            return _control(TYPE_SYN_STREAM, flags, head + codec.encode(headers))
        case SynReply(stream_id, headers, fin):
            return _control(TYPE_SYN_REPLY, FLAG_FIN if fin else 0,
                            struct.pack("!I", stream_id) + codec.encode(headers))
        case HeadersFrame(stream_id, headers, fin):
            return _control(TYPE_HEADERS, FLAG_FIN if fin else 0,
                            struct.pack("!I", stream_id) + codec.encode(headers))
        case RstStream(stream_id, status):
            return _control(TYPE_RST_STREAM, 0, struct.pack("!II", stream_id, status))
        case Settings(values, clear):
            body = struct.pack("!I", len(values)) + b"".join(
                struct.pack("!II", key & 0xFFFFFF, value) for key, value in values.items())
            return _control(TYPE_SETTINGS, 1 if clear else 0, body)
        case Ping(ping_id):
            return _control(TYPE_PING, 0, struct.pack("!I", ping_id))
        case GoAway(last_good, status):
            return _control(TYPE_GOAWAY, 0, struct.pack("!II", last_good, status))
        case WindowUpdate(stream_id, delta):
            return _control(TYPE_WINDOW_UPDATE, 0, struct.pack("!II", stream_id, delta))
    raise TypeError(f"not a SPDY frame: {frame!r}")


def frame_length(header: bytes) -> int:
    """The payload length announced by an 8-byte frame header."""
    return int.from_bytes(header[5:8], "big")


def decode(header: bytes, payload: bytes, codec: HeaderCodec) -> Frame | None:
    """The frame made of an 8-byte ``header`` and its ``payload``.

    None for control frame types this implementation ignores (CREDENTIAL and
    unknown types must be ignored, says the spec).
    """
    first, flags = struct.unpack_from("!I", header)[0], header[4]
    if not first & 0x80000000:
        return Data(first & MAX_STREAM_ID, payload, bool(flags & FLAG_FIN))
    version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
    if version != VERSION:
        raise FrameError(f"unsupported SPDY version {version}")
    try:
        return _decode_control(kind, flags, payload, codec)
    except struct.error as exc:
        raise FrameError(f"control frame type {kind} is too short: {exc}") from None


def _decode_control(kind: int, flags: int, payload: bytes, codec: HeaderCodec) -> Frame | None:
    fin = bool(flags & FLAG_FIN)
    if kind == TYPE_SYN_STREAM:
        stream_id, associated, priority = struct.unpack_from("!IIB", payload)
        return SynStream(stream_id & MAX_STREAM_ID, codec.decode(payload[10:]),
                         associated & MAX_STREAM_ID, priority >> 5, fin,
                         bool(flags & FLAG_UNIDIRECTIONAL))
    if kind in (TYPE_SYN_REPLY, TYPE_HEADERS):
        (stream_id,) = struct.unpack_from("!I", payload)
        cls = SynReply if kind == TYPE_SYN_REPLY else HeadersFrame
        return cls(stream_id & MAX_STREAM_ID, codec.decode(payload[4:]), fin)
    if kind == TYPE_RST_STREAM:
        stream_id, status = struct.unpack_from("!II", payload)
        return RstStream(stream_id & MAX_STREAM_ID, status)
    if kind == TYPE_SETTINGS:
        (count,) = struct.unpack_from("!I", payload)
        values = {}
        for i in range(count):
            key, value = struct.unpack_from("!II", payload, 4 + 8 * i)
            values[key & 0xFFFFFF] = value
        return Settings(values, bool(flags & 1))
    if kind == TYPE_PING:
        return Ping(struct.unpack_from("!I", payload)[0])
    if kind == TYPE_GOAWAY:
        last_good, *rest = struct.unpack_from("!I", payload) + (
            struct.unpack_from("!I", payload, 4) if len(payload) >= 8 else (GOAWAY_OK,))
        return GoAway(last_good & MAX_STREAM_ID, rest[0])
    if kind == TYPE_WINDOW_UPDATE:
        stream_id, delta = struct.unpack_from("!II", payload)
        return WindowUpdate(stream_id & MAX_STREAM_ID, delta & MAX_STREAM_ID)
    return None
