"""The WebSocket opening handshake (RFC 6455 §4) on both of the gateway's sides, pure.

The client's upgrade request is checked and answered here (101, or an HTTP refusal with a JSON
`detail`); toward Chrome the gateway writes its own upgrade request and checks the answer.
No extension is ever negotiated, so frames need no rewriting: CDP goes uncompressed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024
_DEVTOOLS_PATH = re.compile(r"/cdp/([^/]+)/devtools/([^/]+)/([^/]+)")
_HOST_DEVTOOLS_PATH = re.compile(r"/devtools/([^/]+)/([^/]+)")


class HandshakeError(Exception):
    """The request is not a WebSocket upgrade this server accepts (answered with 400)."""


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """A client's upgrade request, parsed once."""

    path: str  # percent-decoded, without the query
    headers: Mapping[str, str]  # names lower-cased
    query: str = ""  # as sent, still percent-encoded


@dataclass(frozen=True, slots=True)
class DevtoolsPath:
    """/cdp/{token}/devtools/{kind}/{target_id}"""

    token: str
    kind: str
    target_id: str


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """(request target or status line's code, lower-cased headers) of an HTTP/1.1 head."""
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0].split(" ")
    if len(start) < 3:
        raise HandshakeError("malformed start line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise HandshakeError("malformed header line")
        headers[name.strip().lower()] = value.strip()
    return start[1], headers


def parse_upgrade(head: bytes) -> UpgradeRequest:
    """The path and headers of a GET request head; HandshakeError if it is not one."""
    if not head.startswith(b"GET "):
        raise HandshakeError("a WebSocket upgrade must be a GET")
    target, headers = parse_head(head)
    path, _, query = target.partition("?")
    return UpgradeRequest(unquote(path), headers, query)


def websocket_key(request: UpgradeRequest) -> str:
    """The client's key, once the request is checked as an upgrade (RFC 6455 §4.2.1)."""
    headers = request.headers
    if "websocket" not in headers.get("upgrade", "").lower():
        raise HandshakeError("missing Upgrade: websocket")
    if headers.get("sec-websocket-version") != "13":
        raise HandshakeError("only WebSocket version 13 is supported")
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise HandshakeError("Sec-WebSocket-Key must be 16 bytes in base64")
    except binascii.Error as exc:
        raise HandshakeError("Sec-WebSocket-Key is not base64") from exc
    return key


def devtools_path(path: str) -> DevtoolsPath | None:
    """The parts of a gateway DevTools path, or None for any other path."""
    found = _DEVTOOLS_PATH.fullmatch(path)
    return None if found is None else DevtoolsPath(*found.groups())


def host_devtools_path(path: str, token: str) -> DevtoolsPath | None:
    """/devtools/{kind}/{target_id} at the root of a session's own host (the token is the
    Host's), or None for any other path."""
    found = _HOST_DEVTOOLS_PATH.fullmatch(path)
    return None if found is None else DevtoolsPath(token, *found.groups())


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def switching_protocols(key: str) -> bytes:
    """The 101 answer that completes a client's upgrade (no extension, no subprotocol)."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_value(key)}\r\n\r\n"
    ).encode()


def refusal(status: int, detail: object, headers: Mapping[str, str] | None = None) -> bytes:
    """An HTTP answer refusing the upgrade, with the API's `{"detail": ...}` body (a message or
    a validation error list) and any extra headers (Retry-After)."""
    body = json.dumps({"detail": detail}).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{extra}"
        "Connection: close\r\n\r\n"
    ).encode() + body


def browser_request(port: int, path: str) -> tuple[bytes, str]:
    """(the upgrade request for Chrome's DevTools socket at `path`, the Accept value expected)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, accept_value(key)


def browser_status(head: bytes, expected_accept: str) -> int:
    """Chrome's answer status; a 101 whose Accept or extensions are wrong raises HandshakeError."""
    code, headers = parse_head(head)
    if not code.isdigit():
        raise HandshakeError("malformed status line")
    status = int(code)
    if status == 101:
        if headers.get("sec-websocket-accept") != expected_accept:
            raise HandshakeError("wrong Sec-WebSocket-Accept from the browser")
        if headers.get("sec-websocket-extensions"):
            raise HandshakeError("the browser negotiated an extension nobody asked for")
    return status
