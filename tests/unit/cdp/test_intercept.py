"""Which client commands the gateway answers itself instead of forwarding to Chrome."""

from __future__ import annotations

import json

import pytest

from browserfleet.cdp.intercept import RESIZING_METHODS, intercept


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
