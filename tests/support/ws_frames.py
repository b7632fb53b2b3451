"""WebSocket frames as tests need to write them: masked client frames, fragmented messages."""

from __future__ import annotations

import struct

from websockets.speedups import apply_mask

from browserfleet.cdp.frames import OP_CONTINUATION, server_frame


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"abcd") -> bytes:
    """A masked frame as a client sends it, with the shortest length encoding."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + apply_mask(payload, mask)


def fragment(opcode: int, first_part: bytes, *rest: bytes) -> bytes:
    """An unmasked message in several frames, as a server may send it."""
    parts = [first_part, *rest]
    out = b""
    for i, part in enumerate(parts):
        code = opcode if i == 0 else OP_CONTINUATION
        fin = i == len(parts) - 1
        out += bytes([(0x80 if fin else 0) | code]) + server_frame(code, part)[1:]
    return out
