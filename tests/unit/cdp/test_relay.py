"""The relay's decisions, over recording transports: what reaches Chrome, what the client gets,
in which order, and how each ending closes both sides."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from ws_frames import client_frame

from browserfleet.cdp.frames import (
    OP_CLOSE,
    OP_CONTINUATION,
    OP_TEXT,
    close_frame,
    server_frame,
)
from browserfleet.cdp.relay import BROWSER_LOST, PROTOCOL_ERROR, SESSION_CLOSED, Counters, Relay


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


class Sides:
    def __init__(self, *, allow_resizing: bool = False) -> None:
        self.client, self.browser = RecordingTransport(), RecordingTransport()
        self.counters = Counters()
        self.relay = Relay(
            self.client,  # type: ignore[arg-type]
            self.browser,  # type: ignore[arg-type]
            allow_resizing=allow_resizing,
            counters=self.counters,
            close_wait_s=0.05,
        )


def command(method: str, command_id: int = 1) -> bytes:
    return json.dumps({"id": command_id, "method": method, "params": {}}).encode()


def reply_of(frame: bytes) -> object:
    return json.loads(frame[2:])


def close_code(data: bytes) -> int:
    assert data[0] == 0x80 | OP_CLOSE
    return int(struct.unpack("!H", data[2:4])[0])


async def test_commands_reach_chrome_byte_for_byte_and_answers_come_back() -> None:
    sides = Sides()
    frame = client_frame(OP_TEXT, command("Runtime.evaluate"))
    sides.relay.from_client(frame)
    assert bytes(sides.browser.written) == frame  # still masked: Chrome expects client frames
    answer = server_frame(OP_TEXT, b'{"id":1,"result":{}}')
    sides.relay.from_browser(answer)
    assert bytes(sides.client.written) == answer
    assert (sides.counters.bytes_to_browser, sides.counters.bytes_to_client) == (
        len(frame),
        len(answer),
    )


async def test_browser_close_is_answered_by_the_gateway_and_never_reaches_chrome() -> None:
    sides = Sides(allow_resizing=True)
    sides.relay.from_client(client_frame(OP_TEXT, command("Browser.close", 9)))
    assert sides.browser.written == b""
    assert reply_of(bytes(sides.client.written)) == {"id": 9, "result": {}}


@pytest.mark.parametrize("allow_resizing", [False, True])
async def test_resizing_is_answered_here_only_when_not_allowed(allow_resizing: bool) -> None:
    sides = Sides(allow_resizing=allow_resizing)
    frame = client_frame(OP_TEXT, command("Emulation.setDeviceMetricsOverride"))
    sides.relay.from_client(frame)
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
    written = bytes(sides.client.written)
    ours = server_frame(OP_TEXT, json.dumps({"id": 4, "result": {}}).encode())
    assert written == big + ours + after


async def test_fragmented_commands_are_judged_whole() -> None:
    sides = Sides()
    text = command("Browser.close", 5)
    parts = [
        client_frame(OP_TEXT, text[:10], fin=False),
        client_frame(OP_CONTINUATION, text[10:20], fin=False),
        client_frame(OP_CONTINUATION, text[20:]),
    ]
    for part in parts:
        sides.relay.from_client(part)
    assert sides.browser.written == b""
    assert reply_of(bytes(sides.client.written)) == {"id": 5, "result": {}}
    other = command("Page.reload", 6)
    forwarded = [
        client_frame(OP_TEXT, other[:7], fin=False),
        client_frame(OP_CONTINUATION, other[7:]),
    ]
    sides.relay.from_client(b"".join(forwarded))
    assert bytes(sides.browser.written) == b"".join(forwarded)


async def test_a_session_stop_sends_1001_then_waits_for_the_clients_close() -> None:
    sides = Sides()
    sides.relay.end(SESSION_CLOSED, "session closed")
    assert sides.browser.aborted
    assert close_code(bytes(sides.client.written)) == SESSION_CLOSED
    assert not sides.client.closed  # the client answers with its own Close first
    sides.relay.from_client(client_frame(OP_CLOSE, struct.pack("!H", 1001)))
    assert sides.client.closed


async def test_a_silent_client_is_closed_after_the_wait_and_cut_off_if_still_stuck() -> None:
    sides = Sides()
    sides.relay.end(SESSION_CLOSED, "session closed")
    await asyncio.sleep(0.08)
    assert sides.client.closed
    assert not sides.client.aborted
    await asyncio.sleep(0.08)  # its socket never finished closing (it reads nothing)
    assert sides.client.aborted


async def test_a_client_that_closes_in_time_is_not_cut_off() -> None:
    sides = Sides()
    sides.relay.end(SESSION_CLOSED, "session closed")
    sides.relay.browser_lost()  # what aborting Chrome's transport leads to
    sides.relay.from_client(client_frame(OP_CLOSE, struct.pack("!H", 1001)))
    sides.relay.client_lost()  # its socket closed
    await asyncio.sleep(0.15)
    assert sides.client.closed
    assert not sides.client.aborted
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
