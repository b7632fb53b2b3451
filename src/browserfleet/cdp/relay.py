"""One client's DevTools websocket joined to Chrome's, task-free once both handshakes are done.

The two transports hand bytes straight to each other from their protocol callbacks: Chrome's
frames reach the client as they are (only their headers are followed, to know where messages
end), the client's reach Chrome as they are unless cdp.intercept answers them. No task, queue or
frame re-encoding sits on the path, which keeps a round trip close to a direct connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from browserfleet.cdp.frames import FrameError, MessageBoundaries, close_frame
from browserfleet.cdp.handshake import HEAD_END, MAX_HEAD, HandshakeError, refusal
from browserfleet.cdp.intercept import CommandFilter

# Close codes sent to clients. The token was closed (session stopped) or the server is going
# down: the endpoint goes away, which is 1001; 1011 when the browser side failed unexpectedly.
SESSION_CLOSED = 1001
BROWSER_LOST = 1011
PROTOCOL_ERROR = 1002
# After our Close, how long a client has to answer with its own before its socket is closed.
CLOSE_WAIT_S = 1.0


@dataclass(slots=True)
class Counters:
    """Per-token traffic: open client sockets, and WebSocket bytes relayed each way."""

    open_connections: int = 0
    bytes_to_browser: int = 0
    bytes_to_client: int = 0


class Relay:
    """Joins a client's transport to Chrome's; `done` resolves once both are closed."""

    def __init__(
        self,
        client: asyncio.Transport,
        browser: asyncio.Transport,
        *,
        allow_resizing: bool,
        counters: Counters,
        close_wait_s: float = CLOSE_WAIT_S,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._close_wait_s = close_wait_s
        self._client, self._browser = client, browser
        self._commands = CommandFilter(allow_resizing)
        self._boundaries = MessageBoundaries()
        self._pending: list[bytes] = []  # our replies, waiting for the end of Chrome's message
        self._counters = counters
        self._our_close_sent = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._client_open = self._browser_open = True
        self.done: asyncio.Future[None] = self._loop.create_future()

    # --- client -> Chrome ----------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self._close_timer is None and self._commands.passes(data):
            self._browser.write(data)  # the hot path: one ordinary command, as it came
            self._counters.bytes_to_browser += len(data)
            return
        try:
            forward, replies = self._commands.feed(data)
        except FrameError:
            self.end(PROTOCOL_ERROR, "not a WebSocket frame")
            return
        if self._close_timer is not None:  # closing: only the client's Close is awaited now
            if self._commands.close_seen and not self._client.is_closing():
                self._hang_up_client()
            return
        if forward:
            self._counters.bytes_to_browser += len(forward)
            self._browser.write(forward)
        for reply in replies:
            self._to_client_between_messages(reply)

    # --- Chrome -> client ----------------------------------------------------------------------

    def from_browser(self, data: bytes) -> None:
        if self._pending or self._our_close_sent:
            self._from_browser_with_replies(data)
            return
        self._client.write(data)  # first: following the frames is not the client's wait
        self._counters.bytes_to_client += len(data)
        try:
            self._boundaries.advance(data)
        except FrameError:
            self.end(BROWSER_LOST, "the browser sent an invalid frame")

    def _from_browser_with_replies(self, data: bytes) -> None:
        """Chrome's bytes while replies of ours wait: each goes out where a message ends."""
        if self._our_close_sent:
            return
        self._counters.bytes_to_client += len(data)
        boundaries, pos = self._boundaries, 0
        try:
            while self._pending and pos < len(data):
                cut = boundaries.advance(data, pos, stop_at_boundary=True)
                self._client.write(data[pos:cut])
                pos = cut
                if boundaries.at_boundary:
                    self._flush_pending()
            if pos < len(data):
                self._client.write(data[pos:])
                boundaries.advance(data, pos)
        except FrameError:
            self.end(BROWSER_LOST, "the browser sent an invalid frame")

    def _to_client_between_messages(self, frame: bytes) -> None:
        if self._boundaries.close_seen:
            return  # Chrome closed this socket: nothing may follow its Close
        if self._boundaries.at_boundary and not self._pending:
            self._client.write(frame)
        else:
            self._pending.append(frame)

    def _flush_pending(self) -> None:
        if not self._boundaries.close_seen:
            self._client.write(b"".join(self._pending))
        self._pending.clear()

    # --- flow control: a side that cannot keep up pauses the other's reading --------------------

    def client_full(self) -> None:
        _pause(self._browser)

    def client_drained(self) -> None:
        _resume(self._browser)

    def browser_full(self) -> None:
        _pause(self._client)

    def browser_drained(self) -> None:
        _resume(self._client)

    # --- endings -------------------------------------------------------------------------------

    def end(self, code: int, reason: str) -> None:
        """Close both sides now (session stopped, server going down): Chrome's at once, the
        client's with a Close frame carrying `code`."""
        self._close_client(code, reason)
        self._browser.abort()

    def client_lost(self) -> None:
        self._client_open = False
        self._browser.close()
        self._settle()

    def browser_lost(self) -> None:
        self._browser_open = False
        if self._client_open:
            self._close_client(BROWSER_LOST, "browser connection lost")
        self._settle()

    def _close_client(self, code: int, reason: str) -> None:
        """End the client's side cleanly: our Close frame unless Chrome's already went through,
        then the client's Close (or CLOSE_WAIT_S) before the socket is closed."""
        if self._client.is_closing() or self._close_timer is not None:
            return
        if not self._boundaries.close_seen:
            if not self._boundaries.at_boundary:
                self._hang_up_client()  # mid-message: no frame can be sent, just hang up
                return
            self._flush_pending()
            self._client.write(close_frame(code, reason))
            self._our_close_sent = True
        if self._commands.close_seen:
            self._hang_up_client()  # the client's own Close already came: the handshake is done
        else:
            self._close_timer = self._loop.call_later(self._close_wait_s, self._hang_up_client)

    def _hang_up_client(self) -> None:
        """Close the client's socket once what is queued for it is sent; a client that reads
        nothing for CLOSE_WAIT_S more is cut off, so a stop never waits on a stuck client."""
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._client.close()
        self._close_timer = self._loop.call_later(self._close_wait_s, self._client.abort)

    def _settle(self) -> None:
        if self._client_open or self._browser_open:
            return
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.done.done():
            self.done.set_result(None)


def _pause(transport: asyncio.Transport) -> None:
    if not transport.is_closing():
        transport.pause_reading()


def _resume(transport: asyncio.Transport) -> None:
    if not transport.is_closing():
        transport.resume_reading()


class BrowserPeer(asyncio.Protocol):
    """The gateway's own connection to Chrome: the handshake answer first, then the relay."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.relay: Relay | None = None
        self._buffer = b""
        self.answer: asyncio.Future[tuple[bytes, bytes]] = (
            asyncio.get_running_loop().create_future()
        )

    @property
    def connected(self) -> asyncio.Transport:
        if self.transport is None:
            raise RuntimeError("not connected")
        return self.transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP transport reads and writes

    def data_received(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.from_browser(data)
            return
        self._buffer += data
        head, found, rest = self._buffer.partition(HEAD_END)
        if found and not self.answer.done():
            self.connected.pause_reading()  # until the relay takes over
            self.answer.set_result((head, rest))
        elif len(self._buffer) > MAX_HEAD and not self.answer.done():
            self.answer.set_exception(HandshakeError("oversized answer"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.relay is not None:
            self.relay.browser_lost()
        elif not self.answer.done():
            self.answer.set_exception(ConnectionError("the browser closed the connection"))

    def pause_writing(self) -> None:
        if self.relay is not None:
            self.relay.browser_full()

    def resume_writing(self) -> None:
        if self.relay is not None:
            self.relay.browser_drained()

    def start(self, relay: Relay, early: bytes) -> None:
        """Hand Chrome's bytes to `relay` from now on, starting with any that came with the 101."""
        self.relay = relay
        if early:
            relay.from_browser(early)
        self.connected.resume_reading()


def _nothing() -> None:
    pass


class ClientPeer(asyncio.Protocol):
    """The client's side. Until the upgrade completes, the web server's protocol object feeds
    it; from then on it is the transport's protocol itself, so a client's bytes reach the relay
    with no layer in between.

    Reading stays paused from the upgrade request until the relay starts (or the upgrade is
    refused), so nothing the client sends early is lost or reordered. `on_lost` runs once the
    connection is gone (the web server's bookkeeping of open connections).
    """

    def __init__(self, transport: asyncio.Transport, on_lost: Callable[[], None] = _nothing):
        self.transport = transport
        self.relay: Relay | None = None
        self.gone = False
        self._early = b""
        self._on_lost = on_lost
        transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.from_client(data)
        else:
            self._early += data

    def connection_lost(self, exc: Exception | None = None) -> None:
        self.gone = True
        if self.relay is not None:
            self.relay.client_lost()
        self._on_lost()

    def pause_writing(self) -> None:
        if self.relay is not None:
            self.relay.client_full()

    def resume_writing(self) -> None:
        if self.relay is not None:
            self.relay.client_drained()

    def start(self, relay: Relay, answer: bytes) -> None:
        """Complete the upgrade with `answer` (the 101) and relay from now on."""
        self.transport.write(answer)
        self.relay = relay
        self.transport.set_protocol(self)
        if self._early:
            early, self._early = self._early, b""
            relay.from_client(early)
        self.transport.resume_reading()

    def refuse(self, status: int, detail: str) -> None:
        """Answer the upgrade request with an HTTP error and hang up."""
        if not self.transport.is_closing():
            self.transport.write(refusal(status, detail))
            self.transport.close()

    def shutdown(self) -> None:
        """The web server is going down: close as a session stop would, with 1001."""
        if self.relay is not None:
            self.relay.end(SESSION_CLOSED, "server shutting down")
        else:
            self.transport.close()
