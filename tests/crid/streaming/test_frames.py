"""SPDY/3.1 frames: encode/decode round trips and the compressed header blocks."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from crid.streaming.spdy import frames
from crid.streaming.spdy.dictionary import DICTIONARY

ALL_FRAMES: list[frames.Frame] = [
    frames.Data(1, b"hello", fin=False),
    frames.Data(7, b"", fin=True),
    frames.SynStream(3, {"streamtype": ["stdout"], "port": ["80"]}, associated_to=1,
                     priority=5, fin=True, unidirectional=True),
    frames.SynReply(3, {"x": ["a", "b"]}, fin=True),
    frames.RstStream(5, frames.CANCEL),
    frames.Settings({frames.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20, 4: 100}),
    frames.Ping(2),
    frames.GoAway(9, frames.GOAWAY_PROTOCOL_ERROR),
    frames.HeadersFrame(3, {"a": ["1"]}, fin=True),
    frames.WindowUpdate(0, 32768),
    frames.WindowUpdate(3, 1),
]


def split(wire: bytes) -> list[tuple[bytes, bytes]]:
    out, at = [], 0
    while at < len(wire):
        header = wire[at:at + 8]
        length = frames.frame_length(header)
        out.append((header, wire[at + 8:at + 8 + length]))
        at += 8 + length
    return out


def test_every_frame_type_round_trips_through_one_codec_pair() -> None:
    sender, receiver = frames.HeaderCodec(), frames.HeaderCodec()
    wire = b"".join(frames.encode(f, sender) for f in ALL_FRAMES)
    decoded = [frames.decode(h, p, receiver) for h, p in split(wire)]
    assert decoded == ALL_FRAMES


def test_control_frame_header_layout() -> None:
    wire = frames.encode(frames.Ping(0x01020304), frames.HeaderCodec())
    assert wire == bytes.fromhex("80030006" "00000004" "01020304")


def test_data_frame_header_layout() -> None:
    wire = frames.encode(frames.Data(5, b"ab", fin=True), frames.HeaderCodec())
    assert wire == bytes.fromhex("00000005" "01000002") + b"ab"


def test_dictionary_is_the_spdy3_one() -> None:
    # 1423 bytes; the Adler-32 is what a peer's zlib stream header names
    assert len(DICTIONARY) == 1423
    assert zlib.adler32(DICTIONARY) == 0xE3C6A7C2
    assert hashlib.sha256(DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


def test_header_blocks_use_the_dictionary_and_one_stream_per_direction() -> None:
    codec = frames.HeaderCodec()
    first = codec.encode({"streamtype": ["error"]})
    second = codec.encode({"streamtype": ["stdin"]})
    # a zlib header with FDICT set, naming the dictionary's checksum
    assert first[1] & 0x20
    assert first[2:6] == struct.pack("!I", zlib.adler32(DICTIONARY))
    # the second block continues the stream: no new zlib header
    inflater = zlib.decompressobj(zdict=DICTIONARY)
    assert frames.parse_header_block(inflater.decompress(first)) == {"streamtype": ["error"]}
    assert frames.parse_header_block(inflater.decompress(second)) == {"streamtype": ["stdin"]}


def test_header_names_are_lower_cased_and_values_split_on_nul() -> None:
    codec, peer = frames.HeaderCodec(), frames.HeaderCodec()
    assert peer.decode(codec.encode({"StreamType": ["a", "b"]})) == {"streamtype": ["a", "b"]}


@pytest.mark.parametrize("block", [
    b"\x00\x00\x00\x01\x00\x00\x00\x05ab",                # truncated name
    b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00",  # empty name
    b"\x00\x00\x00\x00extra",                            # trailing bytes
])
def test_malformed_header_blocks_are_frame_errors(block: bytes) -> None:
    with pytest.raises(frames.FrameError):
        frames.parse_header_block(block)


def test_garbage_that_does_not_inflate_is_a_frame_error() -> None:
    with pytest.raises(frames.FrameError):
        frames.HeaderCodec().decode(b"\x00\x01\x02\x03garbage")


def test_other_versions_are_rejected_and_unknown_types_ignored() -> None:
    codec = frames.HeaderCodec()
    with pytest.raises(frames.FrameError):
        frames.decode(bytes.fromhex("80020006" "00000004"), b"\0\0\0\1", codec)
    assert frames.decode(bytes.fromhex("8003000a" "00000000"), b"", codec) is None


def test_short_control_frames_are_frame_errors() -> None:
    with pytest.raises(frames.FrameError):
        frames.decode(bytes.fromhex("80030003" "00000002"), b"\0\0", frames.HeaderCodec())


# What Go's spdystream (the library of kubelet, kubectl and crictl) sent to our
# server when opening an exec's error, stdout and stderr streams: captured once
# with e2e/streaming/gospdy. Its zlib header names the dictionary 0xe3c6a7c2.
GO_SYN_STREAMS = bytes.fromhex(
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a"
    "6800000000ffff800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff8003"
    "00010000001500000005000000000000c229975a5404000000ffff")


def test_header_blocks_made_by_go_spdystream_decode() -> None:
    codec = frames.HeaderCodec()
    decoded = [frames.decode(h, p, codec) for h, p in split(GO_SYN_STREAMS)]
    assert decoded == [
        frames.SynStream(1, {"streamtype": ["error"]}),
        frames.SynStream(3, {"streamtype": ["stdout"]}),
        frames.SynStream(5, {"streamtype": ["stderr"]}),
    ]


def deflated(block: bytes) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    return deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)


def test_a_header_block_inflating_past_the_cap_is_a_frame_error() -> None:
    size = 64 * frames.MAX_HEADER_BLOCK
    bomb = deflated(struct.pack("!II", 1, 1) + b"x" + struct.pack("!I", size) + bytes(size))
    assert len(bomb) < frames.MAX_HEADER_BLOCK // 8
    with pytest.raises(frames.FrameError, match="inflates to more than 1048576 bytes"):
        frames.HeaderCodec().decode(bomb)


def test_a_header_block_of_exactly_the_cap_decodes() -> None:
    value = frames.MAX_HEADER_BLOCK - 4 - 4 - 1 - 4
    block = struct.pack("!II", 1, 1) + b"x" + struct.pack("!I", value) + b"v" * value
    assert len(block) == frames.MAX_HEADER_BLOCK
    assert frames.HeaderCodec().decode(deflated(block)) == {"x": ["v" * value]}


@pytest.mark.parametrize("block", [
    struct.pack("!I", frames.MAX_HEADER_VALUES + 1) + b"".join(
        struct.pack("!I", 2) + b"h%d" % (i % 10) + struct.pack("!I", 0)
        for i in range(frames.MAX_HEADER_VALUES + 1)),
    struct.pack("!II", 1, 1) + b"x" + struct.pack("!I", frames.MAX_HEADER_VALUES)
    + b"\0" * frames.MAX_HEADER_VALUES,
])
def test_too_many_headers_or_values_are_a_frame_error(block: bytes) -> None:
    with pytest.raises(frames.FrameError, match=r"at most|more than"):
        frames.parse_header_block(block)
