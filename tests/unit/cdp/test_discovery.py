"""Rewriting Chrome's /json/* answers so every websocket URL points at the gateway."""

from __future__ import annotations

import json

import pytest

from browserfleet.cdp.discovery import (
    DISCOVERY_PATHS,
    JsonValue,
    gateway_prefix,
    rewrite_body,
    rewrite_frontend_url,
    rewrite_json,
    rewrite_websocket_url,
    websocket_base,
)

PREFIX = "ws://gw.example:8000/cdp/tok"
FRONTEND = (
    "https://chrome-devtools-frontend.appspot.com/serve_rev/@730482a9/inspector.html"
    "?ws=127.0.0.1:41719/devtools/page/771DF9DF"
)
VERSION: dict[str, JsonValue] = {
    "Browser": "Chrome/156.0.8078.108",
    "Protocol-Version": "1.3",
    "User-Agent": "Mozilla/5.0 HeadlessChrome/156.0.0.0",
    "webSocketDebuggerUrl": "ws://127.0.0.1:41719/devtools/browser/27cb35aa-6d01",
}
PAGE: dict[str, JsonValue] = {
    "description": "",
    "devtoolsFrontendUrl": FRONTEND,
    "id": "771DF9DF",
    "title": "about:blank",
    "type": "page",
    "url": "about:blank",
    "webSocketDebuggerUrl": "ws://127.0.0.1:41719/devtools/page/771DF9DF",
}


@pytest.mark.parametrize(
    ("public_base", "expected"),
    [
        ("http://gw.example:8000", "ws://gw.example:8000"),
        ("https://gw.example", "wss://gw.example"),
        ("https://gw.example/", "wss://gw.example"),
        ("https://gw.example/fleet/", "wss://gw.example/fleet"),
        ("ws://already.ws", "ws://already.ws"),
    ],
)
def test_websocket_base_swaps_http_for_ws(public_base: str, expected: str) -> None:
    assert websocket_base(public_base) == expected


def test_gateway_prefix_keeps_a_path_prefix_of_the_public_base() -> None:
    assert gateway_prefix("https://gw.example/fleet/", "abc") == "wss://gw.example/fleet/cdp/abc"


def test_version_payload_points_at_the_gateway() -> None:
    rewritten = rewrite_json(VERSION, PREFIX)
    assert rewritten == {
        **VERSION,
        "webSocketDebuggerUrl": "ws://gw.example:8000/cdp/tok/devtools/browser/27cb35aa-6d01",
    }


def test_list_payload_rewrites_every_target() -> None:
    other: dict[str, JsonValue] = {**PAGE, "id": "94485518", "type": "browser_ui"}
    other["webSocketDebuggerUrl"] = "ws://127.0.0.1:41719/devtools/page/94485518"
    rewritten = rewrite_json([PAGE, other], PREFIX)
    assert isinstance(rewritten, list)
    urls = [item["webSocketDebuggerUrl"] for item in rewritten if isinstance(item, dict)]
    assert urls == [
        "ws://gw.example:8000/cdp/tok/devtools/page/771DF9DF",
        "ws://gw.example:8000/cdp/tok/devtools/page/94485518",
    ]


def test_devtools_frontend_url_gets_the_gateway_in_its_ws_parameter() -> None:
    assert rewrite_frontend_url(FRONTEND, PREFIX) == (
        "https://chrome-devtools-frontend.appspot.com/serve_rev/@730482a9/inspector.html"
        "?ws=gw.example:8000/cdp/tok/devtools/page/771DF9DF"
    )


def test_https_public_base_gives_wss_urls_and_a_wss_frontend_parameter() -> None:
    prefix = gateway_prefix("https://gw.example/fleet", "tok")
    rewritten = rewrite_json(PAGE, prefix)
    assert isinstance(rewritten, dict)
    assert (
        rewritten["webSocketDebuggerUrl"] == "wss://gw.example/fleet/cdp/tok/devtools/page/771DF9DF"
    )
    assert rewritten["devtoolsFrontendUrl"] == (
        "https://chrome-devtools-frontend.appspot.com/serve_rev/@730482a9/inspector.html"
        "?wss=gw.example/fleet/cdp/tok/devtools/page/771DF9DF"
    )


def test_frontend_url_keeps_its_other_query_parameters_verbatim() -> None:
    url = "/devtools/inspector.html?panel=a%20b&ws=127.0.0.1:9/devtools/page/X&x=1"
    assert rewrite_frontend_url(url, PREFIX) == (
        "/devtools/inspector.html?panel=a%20b&ws=gw.example:8000/cdp/tok/devtools/page/X&x=1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://frontend.example/inspector.html",
        "https://frontend.example/inspector.html?ws=",
        "https://frontend.example/inspector.html?other=127.0.0.1:1/devtools/page/X",
    ],
)
def test_frontend_url_without_a_devtools_ws_parameter_is_unchanged(url: str) -> None:
    assert rewrite_frontend_url(url, PREFIX) == url


@pytest.mark.parametrize(
    "url",
    ["", "http://127.0.0.1:1/devtools/page/X", "ws://127.0.0.1:1/other/path", "about:blank"],
)
def test_non_devtools_websocket_urls_are_unchanged(url: str) -> None:
    assert rewrite_websocket_url(url, PREFIX) == url


def test_any_chrome_origin_is_replaced() -> None:
    url = "ws://localhost:9222/devtools/browser/abc"
    assert rewrite_websocket_url(url, PREFIX) == f"{PREFIX}/devtools/browser/abc"


def test_unknown_fields_and_nested_values_are_kept() -> None:
    payload: JsonValue = {
        "fullscreen": True,
        "nested": {"webSocketDebuggerUrl": "ws://127.0.0.1:1/devtools/page/N", "n": [1, 2.5, None]},
        "url": "ws://127.0.0.1:1/devtools/page/not-a-debugger-field",
        "webSocketDebuggerUrl": 7,
    }
    assert rewrite_json(payload, PREFIX) == {
        "fullscreen": True,
        "nested": {"webSocketDebuggerUrl": f"{PREFIX}/devtools/page/N", "n": [1, 2.5, None]},
        "url": "ws://127.0.0.1:1/devtools/page/not-a-debugger-field",
        "webSocketDebuggerUrl": 7,
    }


def test_rewrite_body_round_trips_json() -> None:
    body = json.dumps(VERSION).encode()
    assert json.loads(rewrite_body(body, PREFIX))["webSocketDebuggerUrl"] == (
        f"{PREFIX}/devtools/browser/27cb35aa-6d01"
    )


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe"])
def test_rewrite_body_leaves_non_json_alone(body: bytes) -> None:
    assert rewrite_body(body, PREFIX) == body


def test_discovery_paths_cover_trailing_slash_forms_and_map_json_to_the_list() -> None:
    for path in ("json/version", "json/list", "json/protocol"):
        assert DISCOVERY_PATHS[path] == DISCOVERY_PATHS[path + "/"] == "/" + path
    assert DISCOVERY_PATHS["json"] == DISCOVERY_PATHS["json/"] == "/json/list"
