"""The relay's decisions, over recording transports and a hand-fired timer: what reaches Chrome,
what the client gets, in which order, and how each ending closes both sides."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from pathlib import PurePosixPath

import pytest
from ws_frames import client_frame

from browserfleet.cdp.frames import (
    OP_CLOSE,
    OP_CONTINUATION,
    OP_TEXT,
    MessageReader,
    close_frame,
    server_frame,
)
from browserfleet.cdp.policy import Count, SessionPolicy
from browserfleet.cdp.relay import (
    BROWSER_LOST,
    MESSAGE_TOO_BIG,
    PROTOCOL_ERROR,
    SESSION_CLOSED,
    Closing,
    Counters,
    Relay,
    RelayLimits,
)


class RecordingTransport:
    """Just enough of asyncio.Transport: what was written, and how it was ended."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = self.aborted = self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.is_closing(), "written after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class HandTimer:
    """An injected timer: callbacks run only when the test fires them."""

    def __init__(self) -> None:
        self.armed: list[tuple[float, Callable[[], None], Handle]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> Handle:
        handle = Handle()
        self.armed.append((delay, callback, handle))
        return handle

    def fire(self) -> None:
        """Run every armed, uncancelled callback (as if their delays had passed)."""
        armed, self.armed = self.armed, []
        for _delay, callback, handle in armed:
            if not handle.cancelled:
                callback()


class Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


POLICY = SessionPolicy(PurePosixPath("/s/downloads"), PurePosixPath("/s/uploads"))


class Sides:
    def __init__(
        self,
        *,
        allow_resizing: bool = False,
        limits: RelayLimits | None = None,
        count: Callable[[Count, Callable[[bytes | None], None]], None] | None = None,
    ) -> None:
        self.client, self.browser = RecordingTransport(), RecordingTransport()
        self.counters = Counters()
        self.timer = HandTimer()
        self.relay = Relay(
            self.client,  # type: ignore[arg-type]
            self.browser,  # type: ignore[arg-type]
            policy=SessionPolicy(POLICY.downloads, POLICY.uploads, allow_resizing),
            counters=self.counters,
            limits=limits,
            count=count,
            timer=self.timer,
        )

    def to_chrome(self) -> list[object]:
        """The commands Chrome received, decoded from the gateway's masked frames."""
        reader = MessageReader(1 << 30)
        return [json.loads(m.payload) for m in reader.feed(bytes(self.browser.written))]  # type: ignore[union-attr]

    def to_client(self) -> list[object]:
        data, out, pos = bytes(self.client.written), [], 0
        while pos < len(data):
            length = data[pos + 1]
            start = pos + 2
            if length == 126:
                length, start = struct.unpack("!H", data[pos + 2 : pos + 4])[0], pos + 4
            payload = data[start : start + length]
            out.append(json.loads(payload) if data[pos] & 0x0F == OP_TEXT else payload)
            pos = start + length
        return out


def command(method: str, command_id: int = 1, **params: object) -> bytes:
    return json.dumps({"id": command_id, "method": method, "params": params}).encode()


def state_of(relay: Relay) -> Closing:
    """The relay's close state, read afresh (not narrowed by an earlier assertion)."""
    return relay.state


def close_code(data: bytes) -> int:
    assert data[0] == 0x80 | OP_CLOSE
    return int(struct.unpack("!H", data[2:4])[0])


async def test_a_plain_command_goes_on_as_it_came_and_answers_come_back_as_they_are() -> None:
    sides = Sides()
    frame = client_frame(OP_TEXT, b' { "method" : "Runtime.evaluate", "id" : 1 } ')
    sides.relay.from_client(frame)
    assert bytes(sides.browser.written) == frame  # no escape, no repeated key: read alike
    assert sides.to_chrome() == [{"id": 1, "method": "Runtime.evaluate"}]
    answer = server_frame(OP_TEXT, b'{"id":1,"result":{}}')
    sides.relay.from_browser(answer)
    assert bytes(sides.client.written) == answer
    assert sides.counters.bytes_to_client == len(answer)
    assert sides.counters.bytes_to_browser == len(sides.browser.written)


@pytest.mark.parametrize("size", [100, 300, 70_000])  # each length encoding
async def test_a_command_cut_anywhere_in_its_header_is_judged_once_it_is_whole(size: int) -> None:
    text = command("Runtime.evaluate", expression="x" * size)
    frame = client_frame(OP_TEXT, text)
    for cut in range(1, 15):
        sides = Sides()
        sides.relay.from_client(frame[:cut])
        assert sides.browser.written == b"", cut  # nothing goes on before the frame is whole
        sides.relay.from_client(frame[cut:])
        assert sides.to_chrome() == [json.loads(text)], cut
        assert state_of(sides.relay) is Closing.OPEN


async def test_a_command_with_an_escape_reaches_chrome_as_the_gateways_own_serialization() -> None:
    sides = Sides()
    text = b'{"id": 1, "method": "Runtime.\\u0065valuate"}'
    sides.relay.from_client(client_frame(OP_TEXT, text))
    [payload] = [m.payload for m in MessageReader(1 << 20).feed(bytes(sides.browser.written))]  # type: ignore[union-attr]
    assert json.loads(payload)["method"] == "Runtime.evaluate"
    assert payload != text and b" " not in payload  # re-serialized compactly, not as it came


async def test_one_key_in_two_objects_is_no_repeated_key_and_goes_on_as_it_came() -> None:
    sides = Sides()
    text = b'{"id": 1, "method": "Runtime.evaluate", "params": {"a": {"b": 1}, "c": {"b": 2}}}'
    frame = client_frame(OP_TEXT, text)
    sides.relay.from_client(frame)
    assert bytes(sides.browser.written) == frame


async def test_a_key_repeated_in_a_nested_object_is_refused_and_never_forwarded() -> None:
    sides = Sides()
    text = b'{"id": 1, "method": "Runtime.evaluate", "params": {"a": {"b": 1, "b": 2}}}'
    sides.relay.from_client(client_frame(OP_TEXT, text))
    assert sides.browser.written == b""
    [reply] = sides.to_client()
    assert isinstance(reply, dict) and reply["error"]["code"] == -32700
    assert "duplicate" in reply["error"]["message"]


async def test_a_rewritten_command_is_never_forwarded_as_it_came() -> None:
    sides = Sides()
    text = command("Browser.setDownloadBehavior", 1, behavior="allow", downloadPath="/etc")
    sides.relay.from_client(client_frame(OP_TEXT, text))
    [sent] = sides.to_chrome()
    assert isinstance(sent, dict) and sent["params"]["downloadPath"] == "/s/downloads"


async def test_browser_close_is_answered_by_the_gateway_and_never_reaches_chrome() -> None:
    sides = Sides(allow_resizing=True)
    sides.relay.from_client(client_frame(OP_TEXT, command("Browser.close", 9)))
    assert sides.browser.written == b""
    assert sides.to_client() == [{"id": 9, "result": {}}]


async def test_a_float_id_is_refused_and_not_forwarded() -> None:
    sides = Sides()
    sides.relay.from_client(client_frame(OP_TEXT, b'{"id": 1.0, "method": "Browser.close"}'))
    assert sides.browser.written == b""
    [reply] = sides.to_client()
    assert isinstance(reply, dict) and reply["error"]["code"] == -32600


@pytest.mark.parametrize("allow_resizing", [False, True])
async def test_resizing_is_answered_here_only_when_not_allowed(allow_resizing: bool) -> None:
    sides = Sides(allow_resizing=allow_resizing)
    sides.relay.from_client(client_frame(OP_TEXT, command("Emulation.setDeviceMetricsOverride")))
    assert bool(sides.browser.written) is allow_resizing
    assert bool(sides.client.written) is not allow_resizing


async def test_a_reply_waits_for_the_end_of_the_message_chrome_is_sending() -> None:
    sides = Sides()
    big = server_frame(OP_TEXT, b"E" * 100_000)
    sides.relay.from_browser(big[:5000])  # Chrome is half-way through a large event
    sides.relay.from_client(client_frame(OP_TEXT, command("Browser.close", 4)))
    assert bytes(sides.client.written) == big[:5000]  # not slipped into the middle of it
    after = server_frame(OP_TEXT, b'{"method":"Page.loadEventFired"}')
    sides.relay.from_browser(big[5000:] + after)
    ours = server_frame(OP_TEXT, b'{"id":4,"result":{}}')
    assert bytes(sides.client.written) == big + ours + after


async def test_fragmented_commands_are_judged_whole() -> None:
    sides = Sides()
    text = command("Browser.close", 5)
    for part in (
        client_frame(OP_TEXT, text[:10], fin=False),
        client_frame(OP_CONTINUATION, text[10:20], fin=False),
        client_frame(OP_CONTINUATION, text[20:]),
    ):
        sides.relay.from_client(part)
    assert sides.browser.written == b""
    assert sides.to_client() == [{"id": 5, "result": {}}]
    other = command("Page.reload", 6)
    sides.relay.from_client(
        client_frame(OP_TEXT, other[:7], fin=False) + client_frame(OP_CONTINUATION, other[7:])
    )
    assert sides.to_chrome() == [{"id": 6, "method": "Page.reload"}]


async def test_a_message_over_the_cap_closes_with_1009_before_it_is_buffered() -> None:
    sides = Sides(limits=RelayLimits(max_message_bytes=1000))
    sides.relay.from_client(client_frame(OP_TEXT, b"x" * 5000)[:10])
    assert close_code(bytes(sides.client.written)) == MESSAGE_TOO_BIG
    assert sides.browser.aborted


async def test_a_plain_command_over_the_cap_is_not_forwarded_but_closes_with_1009() -> None:
    text = command("Runtime.evaluate", 1, expression="x" * 200)
    sides = Sides(limits=RelayLimits(max_message_bytes=len(text) - 1))
    sides.relay.from_client(client_frame(OP_TEXT, text))
    assert close_code(bytes(sides.client.written)) == MESSAGE_TOO_BIG
    assert sides.browser.written == b"" and sides.browser.aborted


async def test_a_plain_command_the_c_scanner_leaves_aside_still_goes_on_as_it_came() -> None:
    sides = Sides()
    frame = client_frame(
        OP_TEXT, '{"id":2,"method":"Input.insertText","params":{"text":"é"}}'.encode()
    )
    sides.relay.from_client(frame)
    assert bytes(sides.browser.written) == frame  # non-ASCII: the Python reading took it


async def test_a_plain_command_of_a_method_with_a_rule_is_judged_by_it() -> None:
    sides = Sides()
    sides.relay.from_client(client_frame(OP_TEXT, b'{"id":3,"method":"Browser.crash"}'))
    assert sides.browser.written == b""
    assert sides.to_client() == [{"id": 3, "result": {}}]
    navigate = b'{"id":4,"method":"Page.navigate","params":{"url":"file:///etc/passwd"}}'
    sides.relay.from_client(client_frame(OP_TEXT, navigate))
    assert sides.browser.written == b""
    assert [reply["id"] for reply in sides.to_client()] == [3, 4]  # type: ignore[index]
    assert "error" in sides.to_client()[1]  # type: ignore[operator]


async def test_a_capped_command_holds_later_messages_until_counted() -> None:
    pending: list[Callable[[bytes | None], None]] = []
    sides = Sides(count=lambda _held, done: pending.append(done))
    sides.relay.from_client(
        client_frame(OP_TEXT, command("Target.createTarget", 1, url="about:blank"))
        + client_frame(OP_TEXT, command("Runtime.evaluate", 2))
    )
    assert sides.browser.written == b""
    assert sides.client.paused
    sides.relay.from_client(client_frame(OP_TEXT, command("Page.reload", 3)))
    pending.pop()(None)
    assert [c["id"] for c in sides.to_chrome()] == [1, 2, 3]  # type: ignore[index]
    assert not sides.client.paused


async def test_a_command_over_its_cap_gets_the_refusal_and_the_rest_goes_on() -> None:
    sides = Sides(
        count=lambda _held, done: done(b'{"id":1,"error":{"code":-32000,"message":"cap"}}')
    )
    sides.relay.from_client(
        client_frame(OP_TEXT, command("Target.createBrowserContext", 1))
        + client_frame(OP_TEXT, command("Runtime.evaluate", 2))
    )
    assert sides.to_chrome() == [{"id": 2, "method": "Runtime.evaluate"}]
    assert sides.to_client() == [{"id": 1, "error": {"code": -32000, "message": "cap"}}]


# --- a big message is judged on a worker thread; the client's later messages wait for it ------

OFF_LOOP = RelayLimits(off_loop_bytes=1000)
PADDING = "p" * 2000  # puts a command over OFF_LOOP's threshold


async def judged(sides: Sides) -> None:
    """Until the judgement in flight is acted on: the client's reading resumes (or the relay
    ended meanwhile)."""
    async with asyncio.timeout(5):
        while sides.client.paused and state_of(sides.relay) is Closing.OPEN:
            await asyncio.sleep(0)


async def test_a_big_plain_command_goes_on_as_it_came_and_later_ones_keep_their_order() -> None:
    sides = Sides(limits=OFF_LOOP)
    big = client_frame(OP_TEXT, command("Runtime.evaluate", 1, expression=PADDING))
    sides.relay.from_client(big)
    assert sides.browser.written == b""  # judged off the loop: nothing yet, reading paused
    assert sides.client.paused
    sides.relay.from_client(client_frame(OP_TEXT, command("Page.reload", 2)))  # these wait
    sides.relay.from_client(client_frame(OP_TEXT, command("Page.stopLoading", 3)))
    assert sides.browser.written == b""
    await judged(sides)
    assert bytes(sides.browser.written).startswith(big)  # the client's own frame
    assert [c["id"] for c in sides.to_chrome()] == [1, 2, 3]  # type: ignore[index]
    assert not sides.client.paused


async def test_a_big_command_in_fragments_is_judged_whole_off_the_loop() -> None:
    sides = Sides(limits=OFF_LOOP)
    text = command("Browser.close", 5, padding=PADDING)
    sides.relay.from_client(
        client_frame(OP_TEXT, text[:100], fin=False) + client_frame(OP_CONTINUATION, text[100:])
    )
    sides.relay.from_client(client_frame(OP_TEXT, command("Page.reload", 6)))
    await judged(sides)
    assert sides.to_client() == [{"id": 5, "result": {}}]  # answered here, never forwarded
    assert sides.to_chrome() == [{"id": 6, "method": "Page.reload", "params": {}}]


async def test_a_big_rewritten_command_reaches_chrome_as_the_gateways_serialization() -> None:
    sides = Sides(limits=OFF_LOOP)
    text = command(
        "Browser.setDownloadBehavior", 1, behavior="allow", downloadPath="/etc", padding=PADDING
    )
    sides.relay.from_client(client_frame(OP_TEXT, text))
    await judged(sides)
    (sent,) = sides.to_chrome()
    assert sent["params"]["downloadPath"] == str(POLICY.downloads)  # type: ignore[index]


async def test_a_big_message_that_is_not_strict_json_gets_an_error_and_nothing_else() -> None:
    sides = Sides(limits=OFF_LOOP)
    text = b'{"id": 1, "id": 1, "method": "Browser.close", "params": {"p": "' + PADDING.encode()
    sides.relay.from_client(client_frame(OP_TEXT, text + b'"}}'))
    await judged(sides)
    assert sides.browser.written == b""
    (reply,) = sides.to_client()
    assert reply["error"]["code"] == -32700  # type: ignore[index]


async def test_a_big_capped_command_is_counted_after_its_judgement() -> None:
    pending: list[Callable[[bytes | None], None]] = []
    sides = Sides(limits=OFF_LOOP, count=lambda _held, done: pending.append(done))
    sides.relay.from_client(
        client_frame(OP_TEXT, command("Target.createTarget", 1, url="about:blank#" + PADDING))
        + client_frame(OP_TEXT, command("Runtime.evaluate", 2))
    )
    async with asyncio.timeout(5):
        while not pending:
            await asyncio.sleep(0)
    assert sides.browser.written == b""
    assert sides.client.paused
    pending.pop()(None)
    assert [c["id"] for c in sides.to_chrome()] == [1, 2]  # type: ignore[index]
    assert not sides.client.paused


async def test_a_session_stopped_while_a_big_command_is_judged_forwards_nothing() -> None:
    sides = Sides(limits=OFF_LOOP)
    sides.relay.from_client(
        client_frame(OP_TEXT, command("Runtime.evaluate", 1, expression=PADDING))
    )
    sides.relay.end(SESSION_CLOSED, "session closed")
    await asyncio.get_running_loop().shutdown_default_executor()  # the judgement is done
    for _ in range(3):  # and its callback has run: the verdict was dropped
        await asyncio.sleep(0)
    assert sides.browser.written == b""
    assert close_code(bytes(sides.client.written)) == SESSION_CLOSED


# --- the close handshake, as explicit states with a hand-fired timer ------------------------


async def test_a_session_stop_sends_1001_then_waits_for_the_clients_close() -> None:
    sides = Sides()
    sides.relay.end(SESSION_CLOSED, "session closed")
    assert sides.browser.aborted
    assert close_code(bytes(sides.client.written)) == SESSION_CLOSED
    assert sides.relay.state is Closing.AWAITING_CLIENT_CLOSE
    assert not sides.client.closed  # the client answers with its own Close first
    sides.relay.from_client(client_frame(OP_CLOSE, struct.pack("!H", 1001)))
    assert state_of(sides.relay) is Closing.HANGING_UP
    assert sides.client.closed


async def test_a_silent_client_is_closed_after_the_wait_and_cut_off_if_still_stuck() -> None:
    sides = Sides()
    sides.relay.end(SESSION_CLOSED, "session closed")
    sides.timer.fire()  # the wait for its Close is over
    assert sides.client.closed
    assert not sides.client.aborted
    sides.timer.fire()  # its socket never finished closing (it reads nothing)
    assert sides.client.aborted


async def test_a_client_that_closes_in_time_is_not_cut_off() -> None:
    sides = Sides()
    sides.relay.end(SESSION_CLOSED, "session closed")
    sides.relay.browser_lost()  # what aborting Chrome's transport leads to
    sides.relay.from_client(client_frame(OP_CLOSE, struct.pack("!H", 1001)))
    sides.relay.client_lost()  # its socket closed
    sides.timer.fire()
    assert sides.client.closed
    assert not sides.client.aborted
    assert sides.relay.state is Closing.DONE
    assert sides.relay.done.done()


async def test_a_stop_in_the_middle_of_a_message_hangs_up_without_a_frame() -> None:
    sides = Sides()
    partial = server_frame(OP_TEXT, b"x" * 1000)[:100]
    sides.relay.from_browser(partial)
    sides.relay.end(SESSION_CLOSED, "session closed")
    assert bytes(sides.client.written) == partial
    assert sides.client.closed


async def test_chrome_vanishing_gives_the_client_1011_and_done_follows_both_losses() -> None:
    sides = Sides()
    sides.relay.browser_lost()
    assert close_code(bytes(sides.client.written)) == BROWSER_LOST
    assert not sides.relay.done.done()
    sides.relay.client_lost()
    assert sides.relay.done.done()


async def test_chromes_own_close_is_relayed_and_not_doubled() -> None:
    sides = Sides()
    chrome_close = close_frame(1000, "")
    sides.relay.from_browser(chrome_close)
    sides.relay.from_client(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
    sides.relay.browser_lost()
    assert bytes(sides.client.written) == chrome_close
    assert sides.client.closed


async def test_a_client_leaving_closes_chromes_side() -> None:
    sides = Sides()
    sides.relay.client_lost()
    assert sides.browser.closed
    sides.relay.browser_lost()
    assert sides.relay.done.done()


async def test_bytes_that_are_not_frames_end_the_relay_with_1002() -> None:
    sides = Sides()
    sides.relay.from_client(b"GET / HTTP/1.1\r\n\r\n")
    assert close_code(bytes(sides.client.written)) == PROTOCOL_ERROR
    assert sides.browser.aborted


async def test_a_full_side_pauses_the_other_sides_reading() -> None:
    sides = Sides()
    sides.relay.client_full()
    assert sides.browser.paused
    sides.relay.client_drained()
    assert not sides.browser.paused
    sides.relay.browser_full()
    assert sides.client.paused
    sides.relay.browser_drained()
    assert not sides.client.paused
    await asyncio.sleep(0)
