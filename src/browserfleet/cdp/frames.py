"""WebSocket framing (RFC 6455) as the gateway's relay needs it: frame boundaries, not messages.

Pure and sans-io. Frames are forwarded as they came; the browser's stream is only followed
header by header (to know where a message ends, so the gateway can slip its own reply in between
two messages), and the client's stream is cut into whole messages so commands can be inspected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from websockets.speedups import apply_mask

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_FIN = 0x80
_MASKED = 0x80
_LENGTH_16, _LENGTH_64 = 126, 127
_MAX_HEADER = 14  # 2 + 8 (64-bit length) + 4 (mask)
_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})


class FrameError(Exception):
    """The bytes are not a WebSocket frame stream (reserved bits, bad opcode, bad control)."""


@dataclass(frozen=True, slots=True)
class Header:
    """One frame's header: where its payload starts and how long it is."""

    fin: bool
    opcode: int
    mask: bytes | None
    payload_start: int  # offset of the payload from the start of the frame
    length: int

    @property
    def is_control(self) -> bool:
        return self.opcode >= OP_CLOSE


def parse_header(data: bytes | bytearray | memoryview, start: int = 0) -> Header | None:
    """The header of the frame at data[start:], or None while it is incomplete."""
    if len(data) - start < 2:
        return None
    first, second = data[start], data[start + 1]
    if first & 0x70:
        raise FrameError("reserved bits set (no extension was negotiated)")
    opcode = first & 0x0F
    if opcode not in _OPCODES:
        raise FrameError(f"unknown opcode {opcode}")
    sized = _payload_length(data, start, second & 0x7F)
    if sized is None:
        return None
    length, offset = sized
    mask = None
    if second & _MASKED:
        if len(data) - start < offset + 4:
            return None
        mask = bytes(data[start + offset : start + offset + 4])
        offset += 4
    fin = bool(first & _FIN)
    if opcode >= OP_CLOSE and (length > 125 or not fin):
        raise FrameError("control frames are short and never fragmented")
    return Header(fin, opcode, mask, offset, length)


def _payload_length(
    data: bytes | bytearray | memoryview, start: int, code: int
) -> tuple[int, int] | None:
    """(payload length, offset past it) from the 7-bit length code and what follows it."""
    available = len(data) - start
    if code == _LENGTH_16:
        return None if available < 4 else (struct.unpack_from("!H", data, start + 2)[0], 4)
    if code == _LENGTH_64:
        return None if available < 10 else (struct.unpack_from("!Q", data, start + 2)[0], 10)
    return code, 2


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, unfragmented frame, as a server sends it."""
    length = len(payload)
    if length < _LENGTH_16:
        head = struct.pack("!BB", _FIN | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", _FIN | opcode, _LENGTH_16, length)
    else:
        head = struct.pack("!BBQ", _FIN | opcode, _LENGTH_64, length)
    return head + payload


def close_frame(code: int, reason: str) -> bytes:
    """A server's Close frame; the reason is cut to fit the 125-byte control payload."""
    return server_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:123])


class MessageBoundaries:
    """Follows a server-to-client frame stream and finds where its messages end.

    A boundary is a point between two frames that is not inside a fragmented message: the only
    place where another complete frame may be inserted.
    """

    __slots__ = ("_fragmented", "_head", "_remaining", "close_seen")

    def __init__(self) -> None:
        self._head = b""  # an incomplete frame header carried over from the previous chunk
        self._remaining = 0  # payload bytes of the current frame still to come
        self._fragmented = False  # inside a message sent as several frames
        self.close_seen = False  # a Close frame has started: nothing may follow it

    @property
    def at_boundary(self) -> bool:
        return not self._head and self._remaining == 0 and not self._fragmented

    def advance(self, data: bytes, start: int = 0, *, stop_at_boundary: bool = False) -> int:
        """Consume data[start:]. Returns len(data), or, with stop_at_boundary, the first offset
        after `start` at which a message has just ended (what follows is left unconsumed)."""
        end, pos = len(data), start
        while pos < end:
            if self._remaining:
                step = min(self._remaining, end - pos)
                pos += step
                self._remaining -= step
            elif not self._head and end - pos >= 4 and data[pos + 1] <= _LENGTH_16:
                pos = self._short_header(data, pos)  # nearly every frame Chrome sends
            else:
                header = parse_header(self._head + data[pos : pos + _MAX_HEADER])
                if header is None:  # fewer than _MAX_HEADER bytes are left: keep them all
                    self._head += data[pos:]
                    return end
                pos += header.payload_start - len(self._head)
                self._head = b""
                self._remaining = header.length
                self._note(header.opcode, header.fin)
            if stop_at_boundary and self.at_boundary:
                return pos
        return end

    def _short_header(self, data: bytes, pos: int) -> int:
        """An unmasked header with a 7- or 16-bit length, read without building a Header (the
        relay's hot path); returns the offset of the payload."""
        first, code = data[pos], data[pos + 1]
        if first & 0x70 or (first & 0x0F) not in _OPCODES:
            raise FrameError("not a frame header")
        if code == _LENGTH_16:
            self._remaining = (data[pos + 2] << 8) | data[pos + 3]
            pos += 4
        else:
            self._remaining = code
            pos += 2
        self._note(first & 0x0F, bool(first & _FIN))
        return pos

    def _note(self, opcode: int, fin: bool) -> None:
        if opcode == OP_CLOSE:
            self.close_seen = True
        elif opcode < OP_CLOSE:
            self._fragmented = not fin


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete frame: its bytes as received and its payload unmasked."""

    header: Header
    raw: bytes
    payload: bytes


class FrameReader:
    """Cuts a client-to-server stream into complete frames.

    A frame split over many reads is joined once, when its last byte has come (a 20 MB command
    arrives in hundreds of reads; re-joining at every read would copy it hundreds of times).
    """

    __slots__ = ("_chunks", "_needed", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._needed = 0  # bytes the buffered frame needs in all, once its header is known

    @property
    def holds_bytes(self) -> bool:
        """Part of a frame is buffered, waiting for the rest."""
        return bool(self._chunks)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by `data`, in order; an incomplete tail is kept for later."""
        if self._chunks:
            self._chunks.append(data)
            self._size += len(data)
            if self._size < self._needed:
                return []
            data = b"".join(self._chunks)
            self._chunks.clear()
        frames, pos = [], 0
        while (header := parse_header(data, pos)) is not None:
            end = pos + header.payload_start + header.length
            if end > len(data):
                self._needed = end - pos
                break
            payload = data[pos + header.payload_start : end]
            if header.mask is not None:
                payload = apply_mask(payload, header.mask)
            frames.append(Frame(header, data[pos:end], payload))
            pos = end
        else:
            self._needed = 0  # a header is incomplete: look again at the next read
        if pos < len(data):
            self._chunks.append(data[pos:])
            self._size = len(data) - pos
        return frames
