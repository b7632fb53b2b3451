"""One client's DevTools websocket joined to Chrome's, task-free once both handshakes are done.

The two transports hand bytes straight to each other from their protocol callbacks. Chrome's
frames reach the client as they are (only their headers are followed, to know where messages
end). Every client message is parsed strictly and judged by cdp.policy. What reaches Chrome is
what was judged: the gateway's canonical serialization of it, or, for a plain command (one
whole frame of text with no escape and no repeated key, which every JSON reader reads alike)
forwarded unchanged, the client's own frame.
A capped command (a new target or browser context) holds the client's later messages until the
gateway has counted, so their order is kept.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, auto
from typing import Protocol

from websockets.speedups import apply_mask

from browserfleet.cdp._plain import plain_method
from browserfleet.cdp.command import Command, CommandError, parse_command
from browserfleet.cdp.frames import (
    OP_CLOSE,
    OP_TEXT,
    Control,
    FrameError,
    Message,
    MessageBoundaries,
    MessageReader,
    MessageTooBig,
    client_frame,
    close_frame,
    server_frame,
    single_text_frame,
)
from browserfleet.cdp.handshake import HEAD_END, MAX_HEAD, HandshakeError, refusal
from browserfleet.cdp.policy import (
    RULES,
    Count,
    Forward,
    Reply,
    SessionPolicy,
    decide,
    forwarded_unchanged,
)

# Close codes sent to clients. The token was closed (session stopped) or the server is going
# down: the endpoint goes away, which is 1001; 1011 when the browser side failed unexpectedly.
SESSION_CLOSED = 1001
PROTOCOL_ERROR = 1002
MESSAGE_TOO_BIG = 1009
BROWSER_LOST = 1011
# After our Close, how long a client has to answer with its own before its socket is closed.
CLOSE_WAIT_S = 1.0


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# loop.call_later's shape: tests pass a timer they fire by hand.
Timer = Callable[[float, Callable[[], None]], Cancellable]
# Counting for a capped command: call back with None to forward it, or with the refusal to send.
Counter = Callable[[Count, Callable[[bytes | None], None]], None]


@dataclass(slots=True)
class Counters:
    """Per-token traffic: open client sockets, and WebSocket bytes relayed each way."""

    open_connections: int = 0
    bytes_to_browser: int = 0
    bytes_to_client: int = 0


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Caps on what one client may send: bytes and frames of one message."""

    max_message_bytes: int = 100 * 1024 * 1024
    max_fragments: int = 1024
    # A message this big is parsed and judged on a worker thread, the client's later messages
    # held meanwhile: a file sent inside a command (tens of MB) would stall every other
    # session's relay, the server's heartbeat included, for the parse.
    off_loop_bytes: int = 1024 * 1024


class Closing(Enum):
    """The client side's close handshake (RFC 6455 §7), one state at a time."""

    OPEN = auto()  # relaying
    AWAITING_CLIENT_CLOSE = auto()  # our Close is sent; the client's is awaited (or the timer)
    HANGING_UP = auto()  # the socket is closing; aborted if the client reads nothing more
    DONE = auto()  # both sides are gone


class Relay:
    """Joins a client's transport to Chrome's; `done` resolves once both are closed."""

    def __init__(
        self,
        client: asyncio.Transport,
        browser: asyncio.Transport,
        *,
        policy: SessionPolicy,
        counters: Counters,
        limits: RelayLimits | None = None,
        count: Counter | None = None,
        close_wait_s: float = CLOSE_WAIT_S,
        timer: Timer | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer: Timer = timer or self._loop.call_later
        self._close_wait_s = close_wait_s
        self._client, self._browser = client, browser
        self._policy = policy
        limits = limits or RelayLimits()
        self._reader = MessageReader(limits.max_message_bytes, limits.max_fragments)
        self._max_message = limits.max_message_bytes
        self._off_loop_bytes = limits.off_loop_bytes
        # What plain_method may take: a message within the cap, and small enough for the loop.
        self._plain_limit = min(limits.max_message_bytes, limits.off_loop_bytes - 1)
        self._count = count
        self._boundaries = MessageBoundaries()
        self._pending: list[bytes] = []  # our replies, waiting for the end of Chrome's message
        self._counters = counters
        self._state = Closing.OPEN
        self._close_timer: Cancellable | None = None
        self._client_close_seen = False
        self._our_close_sent = False
        self._waiting: list[Message | Control] | None = None  # later items while counting
        self._backlog: list[bytes] = []  # client bytes that came while counting
        self._client_open = self._browser_open = True
        self.done: asyncio.Future[None] = self._loop.create_future()

    @property
    def state(self) -> Closing:
        return self._state

    # --- client -> Chrome ----------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self._waiting is not None:
            self._backlog.append(data)
            return
        if self._reader.idle and self._state is Closing.OPEN and self._one_command(data):
            return
        try:
            items = self._reader.feed(data)
        except MessageTooBig as exc:
            self.end(MESSAGE_TOO_BIG, str(exc))
            return
        except FrameError:
            self.end(PROTOCOL_ERROR, "not a WebSocket frame")
            return
        self._take(items)

    def _take(self, items: list[Message | Control]) -> None:
        for index, item in enumerate(items):
            if self._state is not Closing.OPEN:
                if isinstance(item, Control) and item.opcode == OP_CLOSE:
                    self._client_close_seen = True
                    if self._state is Closing.AWAITING_CLIENT_CLOSE:
                        self._hang_up_client()
                continue
            if isinstance(item, Control):
                if item.opcode == OP_CLOSE:
                    self._client_close_seen = True
                self._to_browser(item.raw)
            elif len(item.payload) >= self._off_loop_bytes:
                self._judge_off_loop(item.payload, None, items[index + 1 :])
                return
            elif (held := self._judge(item.payload)) is not None and self._count is not None:
                self._waiting = items[index + 1 :]
                _pause(self._client)
                self._count(held, functools.partial(self._counted, held))
                return

    def _one_command(self, data: bytes) -> bool:
        """The hot path: `data` is exactly one whole, masked text frame within the cap. Judged
        like any message; a plain command forwarded unchanged goes on as the client's bytes.
        Most commands are settled by the first two lines: one C call reads the frame (a plain
        command of printable ASCII, see _plain.c), and the policy has no rule for its method."""
        method = plain_method(data, self._plain_limit)
        if method is not None and method not in RULES:
            self._to_browser(data)
            return True
        start = single_text_frame(data)
        if start is None or len(data) - start > self._max_message:
            return False  # the general path reads it (and ends the relay with the right code)
        payload = apply_mask(data[start:], data[start - 4 : start])
        if len(payload) >= self._off_loop_bytes:
            self._judge_off_loop(payload, data, [])
            return True
        # A method the C call read has a rule (else it went on above): only _judge can tell.
        # The others (non-ASCII text, escapes, ...) may still be plain and ruleless.
        if method is None and forwarded_unchanged(payload):  # no Command is built
            self._to_browser(data)
            return True
        held = self._judge(payload, raw=data)
        if held is not None and self._count is not None:
            self._waiting = []
            _pause(self._client)
            self._count(held, functools.partial(self._counted, held))
        return True

    def _judge(self, payload: bytes, raw: bytes | None = None) -> Count | None:
        """Forward or answer one message; a Count is returned for the caller to have counted.
        `raw`: the message's own frame, forwarded as it came when the command is plain and
        unchanged (both JSON readers read it alike). The hot path: _judged does the same
        with a verdict reached off the loop."""
        try:
            command = parse_command(payload)
        except CommandError as error:
            self._to_client_between_messages(server_frame(OP_TEXT, error.reply()))
            return None
        decision = decide(command, self._policy)
        forward_as_is = raw is not None and command.plain
        if forward_as_is and isinstance(decision, Forward) and decision.command is command:
            self._to_browser(raw)  # type: ignore[arg-type]  # raw is not None here
            return None
        if isinstance(decision, Reply):
            self._to_client_between_messages(server_frame(OP_TEXT, decision.payload))
        elif isinstance(decision, Forward) or self._count is None:
            self._to_browser(client_frame(OP_TEXT, decision.command.encode()))
        else:
            return decision
        return None

    def _act(self, verdict: _Verdict, raw: bytes | None) -> Count | None:
        """Carry out a verdict reached off the loop (_verdict); a Count is returned for the
        caller to have counted."""
        match verdict:
            case bytes() as refusal:
                self._to_client_between_messages(refusal)
            case None:
                self._to_browser(raw)  # type: ignore[arg-type]  # None only when raw is given
            case Reply(payload=reply):
                self._to_client_between_messages(server_frame(OP_TEXT, reply))
            case _Framed(frame=frame):
                self._to_browser(frame)
            case Forward(command=command):
                self._to_browser(client_frame(OP_TEXT, command.encode()))
            case Count(command=command) if self._count is None:
                self._to_browser(client_frame(OP_TEXT, command.encode()))
            case Count():
                return verdict
        return None

    def _judge_off_loop(
        self, payload: bytes, raw: bytes | None, waiting: list[Message | Control]
    ) -> None:
        """Judge a big message on a worker thread; the client's later messages wait (its
        reading paused) until it is acted on, so their order is kept."""
        self._waiting = waiting
        _pause(self._client)
        judged = self._loop.run_in_executor(None, _verdict, payload, raw, self._policy)
        judged.add_done_callback(functools.partial(self._judged, raw))

    def _judged(self, raw: bytes | None, judged: asyncio.Future[_Verdict]) -> None:
        if self._state is not Closing.OPEN or self._waiting is None:
            return
        if judged.cancelled() or judged.exception() is not None:
            self.end(BROWSER_LOST, "the gateway failed to judge a message")
            return
        held = self._act(judged.result(), raw)
        if held is not None and self._count is not None:
            self._count(held, functools.partial(self._counted, held))
            return
        self._go_on()

    def _counted(self, decision: Count, refused: bytes | None) -> None:
        """The count for a held command came back: act on it, then on what waited behind it."""
        if self._state is not Closing.OPEN or self._waiting is None:
            return
        if refused is None:
            self._to_browser(client_frame(OP_TEXT, decision.command.encode()))
        else:
            self._to_client_between_messages(server_frame(OP_TEXT, refused))
        self._go_on()

    def _go_on(self) -> None:
        """What waited behind a held message: the rest of its batch, then the backlog."""
        assert self._waiting is not None
        items, self._waiting = self._waiting, None
        self._take(items)
        while self._waiting is None and self._backlog:
            self.from_client(self._backlog.pop(0))
        if self._waiting is None and self._state is Closing.OPEN:
            _resume(self._client)

    def _to_browser(self, frame: bytes) -> None:
        if self._browser_open and not self._browser.is_closing():
            self._counters.bytes_to_browser += len(frame)
            self._browser.write(frame)

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
        if self._boundaries.close_seen or self._client.is_closing():
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
        if self._waiting is None:
            _resume(self._client)

    # --- endings -------------------------------------------------------------------------------

    def end(self, code: int, reason: str) -> None:
        """Close both sides now (session stopped, server going down, a cap broken): Chrome's at
        once, the client's with a Close frame carrying `code`."""
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
        """OPEN -> AWAITING_CLIENT_CLOSE (our Close is sent, unless Chrome's already went
        through) -> HANGING_UP once the client's Close comes or CLOSE_WAIT_S passes."""
        if self._state is not Closing.OPEN or self._client.is_closing():
            return
        self._waiting, self._backlog = None, []
        if not self._boundaries.close_seen:
            if not self._boundaries.at_boundary:
                self._hang_up_client()  # mid-message: no frame can be sent, just hang up
                return
            self._flush_pending()
            self._client.write(close_frame(code, reason))
            self._our_close_sent = True
        if self._client_close_seen:
            self._hang_up_client()  # the client's own Close already came: the handshake is done
            return
        self._state = Closing.AWAITING_CLIENT_CLOSE
        _resume(self._client)  # its Close must be read
        self._close_timer = self._timer(self._close_wait_s, self._hang_up_client)

    def _hang_up_client(self) -> None:
        """Close the client's socket once what is queued for it is sent; a client that reads
        nothing for CLOSE_WAIT_S more is cut off, so a stop never waits on a stuck client."""
        if self._state in (Closing.HANGING_UP, Closing.DONE):
            return
        self._state = Closing.HANGING_UP
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._client.close()
        self._close_timer = self._timer(self._close_wait_s, self._client.abort)

    def _settle(self) -> None:
        if self._client_open or self._browser_open:
            return
        self._state = Closing.DONE
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.done.done():
            self.done.set_result(None)


@dataclass(frozen=True, slots=True)
class _Framed:
    """A command to forward, its frame already built (off the loop)."""

    command: Command
    frame: bytes


# What judging one message decided: a refusal frame for the client, None to forward the
# client's own frame, or the policy's decision (a forward possibly already framed).
_Verdict = bytes | Reply | Forward | _Framed | Count | None


def _verdict(payload: bytes, raw: bytes | None, policy: SessionPolicy) -> _Verdict:
    """Relay._judge's decision as a value, all the work done (a worker thread's part)."""
    try:
        command = parse_command(payload)
    except CommandError as error:
        return server_frame(OP_TEXT, error.reply())
    decision = decide(command, policy)
    if isinstance(decision, Forward):
        if raw is not None and command.plain and decision.command is command:
            return None
        return _Framed(decision.command, client_frame(OP_TEXT, decision.command.encode()))
    return decision


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
        self.transport.resume_reading()
        if self._early:
            early, self._early = self._early, b""
            relay.from_client(early)

    def refuse(self, status: int, detail: object, headers: Mapping[str, str] | None = None) -> None:
        """Answer the upgrade request with an HTTP error and hang up."""
        if not self.transport.is_closing():
            self.transport.write(refusal(status, detail, headers))
            self.transport.close()

    def shutdown(self) -> None:
        """The web server is going down: close as a session stop would, with 1001."""
        if self.relay is not None:
            self.relay.end(SESSION_CLOSED, "server shutting down")
        else:
            self.transport.close()
