"""Which client commands the gateway answers itself instead of forwarding to Chrome.

Pure and cheap: JSON is parsed only when a substring check for a watched method name hits.
`Browser.close` never reaches Chrome (only stop or timeout end a session), and resizing
commands are no-ops for sessions that do not allow resizing.
"""

from __future__ import annotations

import json

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
_ALWAYS = (BROWSER_CLOSE,)
_WITHOUT_RESIZING = ("Browser.", "Emulation.")
_ALWAYS_BYTES = tuple(name.encode() for name in _ALWAYS)
_WITHOUT_RESIZING_BYTES = tuple(name.encode() for name in _WITHOUT_RESIZING)


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


def _mentions_watched_method(message: str | bytes, allow_resizing: bool) -> bool:
    if isinstance(message, str):
        names: tuple[str, ...] = _ALWAYS if allow_resizing else _WITHOUT_RESIZING
        return any(name in message for name in names)
    raw: tuple[bytes, ...] = _ALWAYS_BYTES if allow_resizing else _WITHOUT_RESIZING_BYTES
    return any(name in message for name in raw)


def _success_reply(command: dict[str, object]) -> str | None:
    command_id = command.get("id")
    if not isinstance(command_id, int) or isinstance(command_id, bool):
        return None  # not a valid command: let Chrome answer with its own error
    reply: dict[str, object] = {"id": command_id, "result": {}}
    session_id = command.get("sessionId")
    if session_id is not None:
        reply["sessionId"] = session_id
    return json.dumps(reply)
