"""WebSocket framing (RFC 6455) as the gateway's relay needs it. Pure and sans-io.

One header decoder (`parse_header`) serves both directions. Chrome's stream is only followed
header by header (`MessageBoundaries`: where its messages end, so the gateway can slip its own
reply in between two of them); the client's stream is cut into whole messages
(`MessageReader`), within a size cap, so each command can be parsed and judged.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import NamedTuple

from websockets.speedups import apply_mask

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_FIN = 0x80
_MASKED = 0x80
_LENGTH_16, _LENGTH_64 = 126, 127
_MAX_HEADER = 14  # 2 + 8 (64-bit length) + 4 (mask)
_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})
_masks = random.Random()


class FrameError(Exception):
    """The bytes are not a WebSocket frame stream (reserved bits, bad opcode, bad control)."""


class MessageTooBig(Exception):
    """A client's message (all its fragments together) is over the cap: close with 1009."""


class Header(NamedTuple):
    """One frame's header: where its payload starts and how long it is. A tuple: one is made
    for every frame that passes, and a tuple is built several times faster than a frozen
    dataclass."""

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
    available = len(data) - start
    if available < 2:
        return None
    first, second = data[start], data[start + 1]
    if first & 0x70:
        raise FrameError("reserved bits set (no extension was negotiated)")
    opcode = first & 0x0F
    if opcode not in _OPCODES:
        raise FrameError(f"unknown opcode {opcode}")
    sized = _payload_length(data, start, second & 0x7F, available)
    if sized is None:
        return None
    length, offset = sized
    mask = None
    if second & _MASKED:
        if available < offset + 4:
            return None
        mask = bytes(data[start + offset : start + offset + 4])
        offset += 4
    fin = bool(first & _FIN)
    if opcode >= OP_CLOSE and (length > 125 or not fin):
        raise FrameError("control frames are short and never fragmented")
    return Header(fin, opcode, mask, offset, length)


def single_text_frame(data: bytes) -> int | None:
    """Where the payload starts when `data` is exactly one whole client text frame (final,
    masked, no reserved bit), else None. What parse_header would say of such a frame, read
    without building a Header: a client's command takes this way."""
    size = len(data)
    if size < 6 or data[0] != _FIN | OP_TEXT or not data[1] & _MASKED:
        return None
    code = data[1] & 0x7F
    if code < _LENGTH_16:
        start, length = 6, code
    elif code == _LENGTH_16:
        if size < 8:
            return None
        start, length = 8, (data[2] << 8) | data[3]
    else:
        if size < 14:
            return None
        start, length = 14, struct.unpack_from("!Q", data, 2)[0]
    return start if start + length == size else None


def _payload_length(
    data: bytes | bytearray | memoryview, start: int, code: int, available: int
) -> tuple[int, int] | None:
    """(payload length, offset past it) from the 7-bit length code and what follows it."""
    if code == _LENGTH_16:
        return None if available < 4 else ((data[start + 2] << 8) | data[start + 3], 4)
    if code == _LENGTH_64:
        return None if available < 10 else (struct.unpack_from("!Q", data, start + 2)[0], 10)
    return code, 2


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, unfragmented frame, as a server sends it."""
    return _frame(opcode, payload, 0)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, unfragmented frame with a fresh mask, as a client sends it. The mask guards
    intermediaries' caches (RFC 6455 §10.3); toward Chrome on this host there are none, so a
    fast non-cryptographic generator is enough."""
    mask = _masks.randbytes(4)
    return _frame(opcode, payload, _MASKED) + mask + apply_mask(payload, mask)


def _frame(opcode: int, payload: bytes, masked: int) -> bytes:
    length = len(payload)
    if length < _LENGTH_16:
        head = struct.pack("!BB", _FIN | opcode, masked | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", _FIN | opcode, masked | _LENGTH_16, length)
    else:
        head = struct.pack("!BBQ", _FIN | opcode, masked | _LENGTH_64, length)
    return head if masked else head + payload


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
            else:
                if self._head:
                    header = parse_header(self._head + data[pos : pos + _MAX_HEADER])
                else:
                    header = parse_header(data, pos)
                if header is None:  # the header is cut by the end of this chunk: keep it
                    self._head += data[pos:]
                    return end
                pos += header.payload_start - len(self._head)
                self._head = b""
                self._remaining = header.length
                if header.opcode == OP_CLOSE:
                    self.close_seen = True
                elif header.opcode < OP_CLOSE:
                    self._fragmented = not header.fin
            if stop_at_boundary and self.at_boundary:
                return pos
        return end


@dataclass(frozen=True, slots=True)
class Message:
    """A whole data message from the client: its opcode and unmasked payload."""

    opcode: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Control:
    """A control frame from the client, as it came (still masked), and its opcode."""

    opcode: int
    raw: bytes


class MessageReader:
    """Cuts a client-to-server stream into whole messages and control frames.

    A message may have at most `max_bytes` of payload and `max_fragments` frames; past either,
    MessageTooBig is raised as soon as a header shows it, before its payload is buffered. A
    frame split over many reads is joined once, when its last byte has come.
    """

    __slots__ = (
        "_chunks",
        "_held",
        "_held_bytes",
        "_max_bytes",
        "_max_fragments",
        "_needed",
        "_opcode",
        "_size",
    )

    def __init__(self, max_bytes: int, max_fragments: int = 1024) -> None:
        self._max_bytes, self._max_fragments = max_bytes, max_fragments
        self._chunks: list[bytes] = []
        self._size = 0
        self._needed = 0  # bytes the buffered frame needs in all, once its header is known
        self._held: list[bytes] = []  # payloads of the fragments of an unfinished message
        self._held_bytes = 0
        self._opcode = 0

    @property
    def idle(self) -> bool:
        """Nothing is buffered: no partial frame, no unfinished message."""
        return not self._chunks and not self._held

    def feed(self, data: bytes) -> list[Message | Control]:
        """The messages and control frames completed by `data`, in order."""
        if self._chunks:
            self._chunks.append(data)
            self._size += len(data)
            if self._size < self._needed:
                return []
            data = b"".join(self._chunks)
            self._chunks.clear()
        out: list[Message | Control] = []
        pos, size = 0, len(data)
        while pos < size and (header := parse_header(data, pos)) is not None:
            self._check(header)
            end = pos + header.payload_start + header.length
            if end > len(data):
                self._needed = end - pos
                break
            if header.mask is None:
                raise FrameError("client frames must be masked")
            payload = apply_mask(data[pos + header.payload_start : end], header.mask)
            if header.is_control:
                out.append(Control(header.opcode, data[pos:end]))
            elif (message := self._data(header, payload)) is not None:
                out.append(message)
            pos = end
        else:
            self._needed = 0  # a header is incomplete (or none is left): look again next read
        if pos < size:
            self._chunks.append(data[pos:])
            self._size = len(data) - pos
        return out

    def _check(self, header: Header) -> None:
        if header.is_control:
            return
        if (header.opcode == OP_CONTINUATION) != bool(self._held):
            raise FrameError("a continuation frame must continue a message, and only then")
        if self._held_bytes + header.length > self._max_bytes:
            raise MessageTooBig(f"a message is over {self._max_bytes} bytes")
        if len(self._held) + 1 > self._max_fragments:
            raise MessageTooBig(f"a message is in over {self._max_fragments} fragments")

    def _data(self, header: Header, payload: bytes) -> Message | None:
        if header.opcode != OP_CONTINUATION:
            self._opcode = header.opcode
        if header.fin and not self._held:
            return Message(self._opcode, payload)
        self._held.append(payload)
        self._held_bytes += len(payload)
        if not header.fin:
            return None
        whole = b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        return Message(self._opcode, whole)
