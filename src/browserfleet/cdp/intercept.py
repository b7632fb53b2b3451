"""Which client commands the gateway answers itself instead of forwarding to Chrome.

Pure and cheap: JSON is parsed only when a substring check for a watched method name hits.
`Browser.close` never reaches Chrome (only stop or timeout end a session), and resizing
commands are no-ops for sessions that do not allow resizing.
"""

from __future__ import annotations

import json
import re

from websockets.speedups import apply_mask

from browserfleet.cdp.frames import OP_BINARY, OP_CLOSE, OP_TEXT, Frame, FrameReader, server_frame

BROWSER_CLOSE = "Browser.close"
RESIZING_METHODS = frozenset(
    {
        "Browser.setWindowBounds",
        "Emulation.setDeviceMetricsOverride",
        "Emulation.clearDeviceMetricsOverride",
        "Emulation.setVisibleSize",
    }
)

# Substrings that every watched method contains; a hit only means "parse and look closer".
# A \u escape could spell a method name past them, so a message with one is always parsed.
_WATCHED_WITH_RESIZING = re.compile(rb"\\u|Browser\.close")
_WATCHED_WITHOUT_RESIZING = re.compile(rb"\\u|Browser\.|Emulation\.")
# First byte of an unfragmented text / binary frame; the mask bit of the second byte.
_FINAL_DATA, _MASKED = (0x80 | OP_TEXT, 0x80 | OP_BINARY), 0x80


def intercept(message: str | bytes, allow_resizing: bool) -> str | None:
    """None: forward the message to Chrome. Otherwise the reply to send back to the client."""
    if not _mentions_watched_method(message, allow_resizing):
        return None
    try:
        command = json.loads(message)
    except ValueError:
        return None
    if not isinstance(command, dict):
        return None
    method = command.get("method")
    if method != BROWSER_CLOSE and (allow_resizing or method not in RESIZING_METHODS):
        return None
    return _success_reply(command)


class CommandFilter:
    """A client's frame stream in; the bytes to forward to Chrome and the gateway's replies out.

    Frames go on exactly as they came (still masked) unless their message is answered here;
    a fragmented message is held until its last frame, then forwarded or answered as a whole.
    """

    __slots__ = ("_allow_resizing", "_held", "_quiet", "_reader", "_watched", "close_seen")

    def __init__(self, allow_resizing: bool) -> None:
        self._allow_resizing = allow_resizing
        self._reader = FrameReader()
        self._held: list[Frame] = []
        self.close_seen = False
        self._quiet = True  # nothing held, nothing buffered: passes() may look
        self._watched = _watched(allow_resizing).search

    def passes(self, data: bytes) -> bool:
        """True when `data` is exactly one whole text or binary frame whose command Chrome may
        have as it is (no watched method name, no escape): the relay's hot path, checked with
        no frame objects. False means "ask feed()", not "intercept"."""
        if not self._quiet or len(data) < 6:
            return False
        first, length = data[0], data[1] ^ _MASKED
        if first not in _FINAL_DATA:
            return False
        if length < 126:
            start = 2
        elif length == 126:
            start, length = 4, (data[2] << 8) | data[3]
        else:  # unmasked (not a client frame) or a 64-bit length: not the hot path
            return False
        if len(data) != start + 4 + length:
            return False
        return self._watched(apply_mask(data[start + 4 :], data[start : start + 4])) is None

    def feed(self, data: bytes) -> tuple[bytes, list[bytes]]:
        """(bytes for Chrome, reply frames for the client) for the frames `data` completes.

        Raises frames.FrameError when the client does not speak WebSocket.
        """
        forward: list[bytes] = []
        replies: list[bytes] = []
        for frame in self._reader.feed(data):
            if frame.header.is_control:
                if frame.header.opcode == OP_CLOSE:
                    self.close_seen = True
                    self._held.clear()  # nothing of an unfinished message may follow a Close
                forward.append(frame.raw)
                continue
            self._held.append(frame)
            if not frame.header.fin:
                continue
            message = b"".join(held.payload for held in self._held)
            reply = intercept(message, self._allow_resizing)
            if reply is None:
                forward.extend(f.raw for f in self._held)
            else:
                replies.append(server_frame(OP_TEXT, reply.encode()))
            self._held.clear()
        self._quiet = not self._held and not self._reader.holds_bytes
        return b"".join(forward), replies


def _mentions_watched_method(message: str | bytes, allow_resizing: bool) -> bool:
    raw = message.encode() if isinstance(message, str) else message
    return _watched(allow_resizing).search(raw) is not None


def _watched(allow_resizing: bool) -> re.Pattern[bytes]:
    return _WATCHED_WITH_RESIZING if allow_resizing else _WATCHED_WITHOUT_RESIZING


def _success_reply(command: dict[str, object]) -> str | None:
    command_id = command.get("id")
    if not isinstance(command_id, int) or isinstance(command_id, bool):
        return None  # not a valid command: let Chrome answer with its own error
    reply: dict[str, object] = {"id": command_id, "result": {}}
    session_id = command.get("sessionId")
    if session_id is not None:
        reply["sessionId"] = session_id
    return json.dumps(reply)
