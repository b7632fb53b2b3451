"""The DevTools forwarder's handshake: MAGIC and the forwarder's token before any other byte,
then one status byte back.

Pure: the forwarder and the dialer (forward.py) do the I/O. The token is a per-forwarder secret
handed to the API process alone; whoever lacks it never reaches the browser.
"""

from __future__ import annotations

import hmac
import secrets

MAGIC = b"BFD1"  # the protocol and its version
TOKEN_BYTES = 32
PREFACE_BYTES = len(MAGIC) + TOKEN_BYTES
OK = b"\x00"  # the browser is dialed: from the next byte on, the connection is its
UNREACHABLE = b"\x01"  # the browser could not be dialed; the forwarder closes


def new_token() -> bytes:
    return secrets.token_bytes(TOKEN_BYTES)


def preface(token: bytes) -> bytes:
    """What a client sends first to the forwarder holding `token`."""
    if len(token) != TOKEN_BYTES:
        raise ValueError(f"a forwarder token is {TOKEN_BYTES} bytes, not {len(token)}")
    return MAGIC + token


def preface_matches(received: bytes, token: bytes) -> bool:
    """Whether `received` is exactly the preface for `token` (in constant time for a given
    length: a client learns nothing of the token from how fast it is refused)."""
    return hmac.compare_digest(received, preface(token))


def check_status(answer: bytes) -> None:
    """Return if `answer` (the forwarder's first byte; b"" if it closed instead) lets the
    connection through, else raise ConnectionRefusedError, as a browser's closed port would."""
    if answer == OK:
        return
    if answer == UNREACHABLE:
        raise ConnectionRefusedError("the browser is unreachable from its node")
    if not answer:
        raise ConnectionRefusedError("the DevTools forwarder closed the connection")
    raise ConnectionRefusedError(f"the DevTools forwarder answered {answer!r}")
