"""Which client commands the gateway answers itself instead of forwarding to Chrome."""

from __future__ import annotations

import json

import pytest
from ws_frames import client_frame

from browserfleet.cdp.frames import OP_BINARY, OP_PING, OP_TEXT, server_frame
from browserfleet.cdp.intercept import RESIZING_METHODS, CommandFilter, intercept


def command(method: str, **extra: object) -> str:
    return json.dumps({"id": 7, "method": method, "params": {}, **extra})


def test_browser_close_is_answered_with_an_empty_result() -> None:
    assert json.loads(intercept(command("Browser.close"), True) or "") == {"id": 7, "result": {}}


def test_browser_close_reply_echoes_the_session_id() -> None:
    reply = intercept(command("Browser.close", sessionId="S1"), False)
    assert json.loads(reply or "") == {"id": 7, "result": {}, "sessionId": "S1"}


def test_binary_frames_are_intercepted_too() -> None:
    reply = intercept(command("Browser.close").encode(), True)
    assert json.loads(reply or "") == {"id": 7, "result": {}}


@pytest.mark.parametrize("method", sorted(RESIZING_METHODS))
def test_resizing_is_a_no_op_when_not_allowed(method: str) -> None:
    assert json.loads(intercept(command(method), False) or "") == {"id": 7, "result": {}}
    reply = intercept(command(method, sessionId="S2"), False)
    assert json.loads(reply or "") == {"id": 7, "result": {}, "sessionId": "S2"}


@pytest.mark.parametrize("method", sorted(RESIZING_METHODS))
def test_resizing_passes_through_when_allowed(method: str) -> None:
    assert intercept(command(method), True) is None


@pytest.mark.parametrize(
    "method",
    [
        "Runtime.evaluate",
        "Browser.getVersion",
        "Browser.closeTarget",
        "Emulation.setUserAgentOverride",
        "Target.closeTarget",
    ],
)
def test_unrelated_methods_are_forwarded(method: str) -> None:
    assert intercept(command(method), False) is None
    assert intercept(command(method), True) is None


def test_a_method_name_inside_a_parameter_is_forwarded() -> None:
    message = command("Runtime.evaluate", params={"expression": "'Browser.close'"})
    assert intercept(message, False) is None
    message = command("Runtime.evaluate", params={"expression": "'Emulation.setVisibleSize'"})
    assert intercept(message, False) is None


@pytest.mark.parametrize(
    "message",
    [
        '{"id": 1, "method": "Browser.close"',
        "Browser.close",
        '["Browser.close"]',
        '"Browser.close"',
        b'\xff{"method": "Browser.close"}',
    ],
)
def test_malformed_messages_are_forwarded_untouched(message: str | bytes) -> None:
    assert intercept(message, False) is None


@pytest.mark.parametrize("command_id", [None, "7", True, 1.5])
def test_commands_without_an_integer_id_are_left_to_chrome(command_id: object) -> None:
    message = json.dumps({"id": command_id, "method": "Browser.close"})
    assert intercept(message, True) is None


# --- CommandFilter: the client's frame stream -------------------------------------------------


def frame_of(method: str, *, fin: bool = True) -> bytes:
    return client_frame(OP_TEXT, command(method).encode(), fin=fin)


@pytest.mark.parametrize("allow_resizing", [False, True])
def test_an_ordinary_command_passes_on_the_hot_path(allow_resizing: bool) -> None:
    commands = CommandFilter(allow_resizing)
    assert commands.passes(frame_of("Runtime.evaluate"))
    assert commands.passes(client_frame(OP_BINARY, b"x" * 5000))  # a 16-bit length


@pytest.mark.parametrize(
    ("data", "allow_resizing"),
    [
        (frame_of("Browser.close"), True),
        (frame_of("Emulation.setDeviceMetricsOverride"), False),
        (frame_of("Browser.getVersion"), False),  # a watched prefix: feed() looks closer
        (client_frame(OP_TEXT, b'{"id":1,"method":"Browser\\u002eclose"}'), True),
        (frame_of("Page.reload", fin=False), False),  # a fragment
        (frame_of("Page.reload")[:-1], False),  # incomplete
        (frame_of("Page.reload") * 2, False),  # two frames
        (client_frame(OP_TEXT, b"q" * 70_000), False),  # 64-bit length
        (server_frame(OP_TEXT, command("Page.reload").encode()), False),  # unmasked
        (client_frame(OP_PING, b""), False),
    ],
)
def test_anything_else_goes_to_feed(data: bytes, allow_resizing: bool) -> None:
    assert not CommandFilter(allow_resizing).passes(data)


def test_an_escaped_method_name_is_still_caught() -> None:
    escaped = b'{"id":3,"method":"Browser\\u002eclose","params":{}}'
    forward, replies = CommandFilter(True).feed(client_frame(OP_TEXT, escaped))
    assert forward == b""
    assert [json.loads(reply[2:]) for reply in replies] == [{"id": 3, "result": {}}]


def test_nothing_passes_while_a_fragmented_message_is_held() -> None:
    commands = CommandFilter(False)
    forward, _ = commands.feed(frame_of("Page.reload", fin=False))
    assert forward == b""  # held until its last frame
    assert not commands.passes(frame_of("Runtime.evaluate"))
