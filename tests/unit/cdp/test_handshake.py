"""The opening handshake on both sides of the gateway."""

from __future__ import annotations

import json

import pytest

from browserfleet.cdp.handshake import (
    DevtoolsPath,
    HandshakeError,
    accept_value,
    browser_request,
    browser_status,
    devtools_path,
    parse_upgrade,
    refusal,
    switching_protocols,
    websocket_key,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example


def upgrade(target: str = "/cdp/tok/devtools/page/ABC", **headers: str) -> bytes:
    fields = {
        "Host": "example",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"GET {target} HTTP/1.1\r\n{lines}\r\n".encode()


def test_the_rfc_example_key_gives_the_rfc_accept_value() -> None:
    assert accept_value(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in switching_protocols(KEY)
    assert b"Sec-WebSocket-Extensions" not in switching_protocols(KEY)


def test_an_upgrade_is_parsed_with_its_path_decoded_and_query_dropped() -> None:
    request = parse_upgrade(upgrade("/cdp/t%2Dk/devtools/page/X?debug=1", upgrade="WebSocket"))
    assert request.path == "/cdp/t-k/devtools/page/X"
    assert websocket_key(request) == KEY


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (upgrade().replace(b"GET", b"PUT"), "GET"),
        (upgrade(Upgrade="h2c"), "Upgrade"),
        (upgrade(**{"Sec-WebSocket-Version": "8"}), "version 13"),
        (upgrade(**{"Sec-WebSocket-Key": "short"}), "Key"),
        (upgrade(**{"Sec-WebSocket-Key": "!!!!notbase64!!!!!!!!!=="}), "base64"),
        (b"GET /x\r\n\r\n", "start line"),
    ],
)
def test_bad_upgrades_are_refused(head: bytes, why: str) -> None:
    with pytest.raises(HandshakeError, match=why):
        websocket_key(parse_upgrade(head))


def test_devtools_paths_are_recognised_and_nothing_else() -> None:
    assert devtools_path("/cdp/tok/devtools/browser/b-1") == DevtoolsPath("tok", "browser", "b-1")
    for other in (
        "/cdp/tok/json/version",
        "/cdp/tok/devtools/page",
        "/live/x",
        "/cdp//devtools/a/b",
    ):
        assert devtools_path(other) is None


def test_a_refusal_is_http_with_the_api_error_body() -> None:
    answer = refusal(404, "Session not found")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"detail": "Session not found"}


def test_the_browser_side_checks_chromes_accept_value() -> None:
    request, expected = browser_request(9222, "/devtools/page/P")
    assert request.startswith(b"GET /devtools/page/P HTTP/1.1\r\nHost: 127.0.0.1:9222\r\n")
    key = next(
        line.split(b": ")[1].decode()
        for line in request.split(b"\r\n")
        if line.startswith(b"Sec-WebSocket-Key")
    )
    assert accept_value(key) == expected
    good = f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {expected}".encode()
    assert browser_status(good, expected) == 101
    with pytest.raises(HandshakeError, match="Accept"):
        browser_status(good.replace(expected.encode(), b"wrong"), expected)
    with pytest.raises(HandshakeError, match="extension"):
        browser_status(good + b"\r\nSec-WebSocket-Extensions: permessage-deflate", expected)
    assert browser_status(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0", expected) == 404
