"""uvicorn's HTTP protocol with limits at the edge, before any routing, authentication or parsing.

uvicorn (httptools) caps neither a request head nor, before the app reads it, a body; and a head
or body that never finishes holds its connection forever. Here, per request:
  * the head must arrive within `head_timeout_s` and stay under `max_head_bytes` and
    `max_header_count` (else 431, or 408 on time);
  * a body announced or grown over its cap is answered 413 at once (uploads have their own cap),
    and then read and dropped for a moment so the client sees the answer, never buffered;
  * the whole body must arrive within `body_timeout_s` (else 408).
Every refusal is a JSON `{"detail": ...}` and ends the connection. CDP websocket upgrades pass
the same head checks before the gateway sees them.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

# After a refusal, how long the rest of a request is read and dropped before hanging up.
LINGER_S = 2.0
_UPLOAD_PATH = re.compile(rb"/api/v[234]/browsers/[^/?]+/uploads/?(?:\?.*)?")


# Every answer the edge gives of its own, before any route is chosen: so every operation may
# get one (the served OpenAPI documents each of them on every operation, from this table).
REQUEST_TIMEOUT, BODY_TOO_LARGE, HEAD_TOO_LARGE = 408, 413, 431
EDGE_REFUSALS: dict[int, str] = {
    REQUEST_TIMEOUT: "The request head or body did not arrive in time; the connection is closed",
    BODY_TOO_LARGE: "The request body is over the server's cap (uploads have their own, larger "
    "cap); the connection is closed",
    HEAD_TOO_LARGE: "The request head is too large or has too many header fields; the "
    "connection is closed",
}


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = 100 * 1024 * 1024
    max_head_bytes: int = 64 * 1024
    max_header_count: int = 100
    head_timeout_s: float = 10.0
    body_timeout_s: float = 60.0


def refusal(status: int, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's `http` protocol class (`uvicorn.Config(http=guarded_http(limits))`)."""

    limits = HttpLimits()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._reading_head = True
        self._tail = b""  # the last bytes of the head so far, to find its end across reads
        self._head_bytes = 0
        self._header_count = 0
        self._body_bytes = 0
        self._body_cap = self.limits.max_body_bytes
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.head_timeout_s, "The request head took too long")

    # --- the byte stream ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: the rest of the request is dropped
        if self._reading_head:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(HEAD_TOO_LARGE, "Request header fields too large")
                return  # refused before the parser holds any of it
            self._tail = seen[-3:]
        super().data_received(data)

    # --- parser callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        self._arm(self.limits.head_timeout_s, "The request head took too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            self._refuse(HEAD_TOO_LARGE, "Too many request header fields")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head, self._head_bytes, self._tail = False, 0, b""
        self._disarm()
        if self._refused:
            return
        self._body_bytes = 0
        upload = (
            self.parser.get_method() == b"POST" and _UPLOAD_PATH.fullmatch(self.url) is not None
        )
        self._body_cap = self.limits.max_upload_bytes if upload else self.limits.max_body_bytes
        length = _content_length(self.headers)
        if length is not None and length > self._body_cap:
            self._refuse(BODY_TOO_LARGE, f"The request body is larger than {self._body_cap} bytes")
            return
        super().on_headers_complete()
        if length != 0 and not self.parser.should_upgrade():
            self._arm(self.limits.body_timeout_s, "The request body took too long")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self._body_cap:
            self._refuse(BODY_TOO_LARGE, f"The request body is larger than {self._body_cap} bytes")
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        if not self._refused:
            super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    # --- refusing -------------------------------------------------------------------------------

    def _arm(self, seconds: float, detail: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._refuse, REQUEST_TIMEOUT, detail)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: int, detail: str) -> None:
        """Answer `status` unless a response has begun, drop the rest, hang up soon after."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() sees a disconnect; it sends nothing
            cycle.message_event.set()
        if cycle is None or not cycle.response_started:
            self.transport.write(refusal(status, detail))
        self.flow.resume_reading()
        self._timer = self.loop.call_later(LINGER_S, self.transport.close)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def guarded_http(limits: HttpLimits) -> type[GuardedHttpProtocol]:
    """The protocol class bound to `limits`."""
    return type("BoundGuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})
