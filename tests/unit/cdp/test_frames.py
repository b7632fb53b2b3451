"""WebSocket framing as the relay follows it: headers, message boundaries, client frames."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ws_frames import client_frame, fragment

from browserfleet.cdp.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    Control,
    FrameError,
    Message,
    MessageBoundaries,
    MessageReader,
    MessageTooBig,
    close_frame,
    parse_header,
    server_frame,
    single_text_frame,
)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_server_frames_use_the_shortest_length_and_parse_back(size: int) -> None:
    frame = server_frame(OP_BINARY, b"x" * size)
    header = parse_header(frame)
    assert header is not None
    assert (header.fin, header.opcode, header.mask, header.length) == (True, OP_BINARY, None, size)
    assert len(frame) == header.payload_start + size
    assert header.payload_start == (2 if size < 126 else 4 if size < 65536 else 10)


def test_a_header_is_incomplete_until_every_byte_of_it_came() -> None:
    frame = client_frame(OP_TEXT, b"y" * 70_000)  # 2 + 8 + 4 header bytes
    for cut in range(14):
        assert parse_header(frame[:cut]) is None
    header = parse_header(frame[:14])
    assert header is not None
    assert header.mask == b"abcd"
    assert header.length == 70_000


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (bytes([0x80 | 0x40 | OP_TEXT, 0]), "reserved"),  # RSV1: compression never negotiated
        (bytes([0x80 | 0x3, 0]), "opcode"),
        (bytes([OP_PING, 0]), "control"),  # a fragmented ping
        (bytes([0x80 | OP_PING, 126, 0, 200]), "control"),  # a 200-byte ping
    ],
)
def test_malformed_headers_are_rejected(frame: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        parse_header(frame)


def test_close_frames_carry_code_and_a_reason_cut_to_fit() -> None:
    frame = close_frame(1001, "x" * 500)
    header = parse_header(frame)
    assert header is not None
    assert header.opcode == OP_CLOSE
    assert header.length == 125
    assert struct.unpack("!H", frame[2:4]) == (1001,)


# --- MessageBoundaries ------------------------------------------------------------------------


def test_boundaries_are_found_after_each_whole_message() -> None:
    first, second = server_frame(OP_TEXT, b"a" * 10), server_frame(OP_TEXT, b"b" * 300)
    stream = first + second
    tracker = MessageBoundaries()
    assert tracker.advance(stream, stop_at_boundary=True) == len(first)
    assert tracker.at_boundary
    assert tracker.advance(stream, len(first), stop_at_boundary=True) == len(stream)
    assert tracker.at_boundary


def test_no_boundary_inside_a_fragmented_message_even_around_a_ping() -> None:
    message = fragment(OP_TEXT, b"part one ", b"part two")
    first_frame_end = 2 + len(b"part one ")
    ping = server_frame(OP_PING, b"")
    stream = message[:first_frame_end] + ping + message[first_frame_end:]
    tracker = MessageBoundaries()
    assert tracker.advance(stream, stop_at_boundary=True) == len(stream)
    assert tracker.at_boundary


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100, 4096])
def test_boundaries_survive_any_split_of_the_stream(chunk: int) -> None:
    messages = [server_frame(OP_TEXT, os.urandom(n)) for n in (0, 5, 125, 126, 4000, 70_000)]
    messages.append(fragment(OP_BINARY, b"x" * 200, b"y" * 10, b"z"))
    stream = b"".join(messages)
    ends = {sum(len(m) for m in messages[: i + 1]) for i in range(len(messages))}
    tracker = MessageBoundaries()
    found, offset = set(), 0
    for start in range(0, len(stream), chunk):
        data = stream[start : start + chunk]
        pos = 0
        while pos < len(data):
            pos = tracker.advance(data, pos, stop_at_boundary=True)
            if tracker.at_boundary:
                found.add(offset + pos)
        offset += len(data)
    assert found == ends


def test_a_close_frame_is_noticed() -> None:
    tracker = MessageBoundaries()
    tracker.advance(server_frame(OP_TEXT, b"hi"))
    assert not tracker.close_seen
    tracker.advance(close_frame(1000, ""))
    assert tracker.close_seen


def test_garbage_from_the_browser_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        MessageBoundaries().advance(b"HTTP/1.1 200 OK\r\n")


# --- client frames ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 5, 13, 1000, 1 << 20])
def test_message_reader_returns_whole_messages_whatever_the_reads(chunk: int) -> None:
    payloads = [b"", b"a", b"b" * 126, os.urandom(70_000), b"c" * 3]
    stream = b"".join(client_frame(OP_BINARY, p, mask=os.urandom(4)) for p in payloads)
    reader = MessageReader(1 << 20)
    items = []
    for start in range(0, len(stream), chunk):
        items += reader.feed(stream[start : start + chunk])
    assert items == [Message(OP_BINARY, p) for p in payloads]
    assert reader.idle


def test_fragments_are_joined_and_control_frames_between_them_come_first() -> None:
    ping = client_frame(OP_PING, b"p")
    stream = (
        client_frame(OP_TEXT, b"one ", fin=False)
        + ping
        + client_frame(OP_CONTINUATION, b"two ", fin=False)
        + client_frame(OP_CONTINUATION, b"three")
    )
    reader = MessageReader(100)
    assert reader.feed(stream) == [Control(OP_PING, ping), Message(OP_TEXT, b"one two three")]


def test_a_frame_over_the_cap_is_refused_from_its_header_alone() -> None:
    reader = MessageReader(1000)
    header_only = client_frame(OP_TEXT, b"x" * 2000)[:8]
    with pytest.raises(MessageTooBig):
        reader.feed(header_only)


def test_fragments_together_over_the_cap_are_refused() -> None:
    reader = MessageReader(1000)
    reader.feed(client_frame(OP_TEXT, b"x" * 600, fin=False))
    with pytest.raises(MessageTooBig):
        reader.feed(client_frame(OP_CONTINUATION, b"x" * 600, fin=False)[:8])


def test_endless_empty_continuations_hit_the_fragment_cap() -> None:
    reader = MessageReader(1000, max_fragments=50)
    reader.feed(client_frame(OP_TEXT, b"", fin=False))
    empty = client_frame(OP_CONTINUATION, b"", fin=False)
    with pytest.raises(MessageTooBig):
        for _ in range(60):
            reader.feed(empty)


@pytest.mark.parametrize(
    "stream",
    [
        client_frame(OP_CONTINUATION, b"x"),  # continues nothing
        client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"),  # interleaved
        server_frame(OP_TEXT, b"unmasked"),
    ],
)
def test_broken_client_streams_are_frame_errors(stream: bytes) -> None:
    with pytest.raises(FrameError):
        MessageReader(1000).feed(stream)


def _whole_text_frame_start(data: bytes) -> int | None:
    """What parse_header says of `data`, put as single_text_frame's question."""
    try:
        header = parse_header(data)
    except FrameError:
        return None
    if (
        header is None
        or not header.fin
        or header.opcode != OP_TEXT
        or header.mask is None
        or header.payload_start + header.length != len(data)
    ):
        return None
    return header.payload_start


_FRAMES = st.one_of(
    st.binary(max_size=20),
    st.builds(  # real client frames of every length encoding and opcode, cut or padded
        lambda opcode, fin, size, cut, pad: (
            client_frame(opcode, b"p" * size, fin=fin)[: cut or None] + b"q" * pad
        ),
        st.sampled_from([OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, 0x3]),
        st.booleans(),
        st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70_000]),
        st.integers(-3, 20),
        st.integers(0, 2),
    ),
    st.builds(
        lambda first, rest: bytes([first]) + rest, st.integers(0, 255), st.binary(max_size=16)
    ),
    st.builds(  # a final masked text frame's head with any length code, and any bytes after
        lambda code, rest: bytes([0x80 | OP_TEXT, 0x80 | code]) + rest,
        st.sampled_from([0, 1, 124, 125, 126, 127]),
        st.binary(max_size=13),
    ),
)


@given(_FRAMES)
def test_the_single_text_frame_shortcut_agrees_with_the_header_decoder(data: bytes) -> None:
    assert single_text_frame(data) == _whole_text_frame_start(data)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_a_whole_client_text_frame_is_recognised_at_every_length_encoding(size: int) -> None:
    frame = client_frame(OP_TEXT, b"t" * size)
    assert single_text_frame(frame) == (6 if size < 126 else 8 if size < 65536 else 14)
    assert single_text_frame(frame[:-1] if size else frame + b"x") is None
    for cut in range(len(frame) if size < 126 else 14):  # the header itself cut short
        assert single_text_frame(frame[:cut]) is None, cut
