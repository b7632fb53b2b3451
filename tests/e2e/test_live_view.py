"""The live view page, driven by Playwright, showing and steering a real Chromium over CDP.

A target Chromium shows a loopback page with a button and an input; a uvicorn in a thread serves
the live router and, in front of the target, the CDP gateway. A second Chromium opens the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fleet_server import wait_for
from loopback import RESOLVER_RULES
from pages import PageServer
from websockets.sync.client import connect

from browserfleet.api.routes import live
from browserfleet.api.routes.cdp import build_cdp_router
from browserfleet.api.websocket_protocol import GATEWAY_STATE_KEY, GatewayWebSocketProtocol
from browserfleet.cdp import CdpGatewayServer
from browserfleet.cdp.dial import LoopbackDialer
from browserfleet.liveview import input_events as ie

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/lib/chromium/chromium"
TARGET_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-features=AutofillServerCommunication,NetworkTimeServiceQuerying,OptimizationHints",
    "--gaia-url=http://127.0.0.1:9",
    "--google-apis-url=http://127.0.0.1:9",
    "--component-updater=url-source=http://127.0.0.1:9/",
    RESOLVER_RULES,
    "--remote-debugging-port=0",
    "--window-size=1100,760",
]
TOKEN = "live-" + "b2" * 16
DOOMED_TOKEN = "live-" + "c3" * 16
PAGE_BACKGROUND = (245, 215, 110)
TARGET_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Live target</title>
<style>
  body { margin: 0; background: rgb(245, 215, 110); font: 20px sans-serif; }
  #btn { position: absolute; left: 40px; top: 40px; width: 220px; height: 70px; }
  #field { position: absolute; left: 40px; top: 160px; width: 320px; height: 40px; }
</style></head><body>
<button id="btn">Click me</button>
<input id="field" autocomplete="off">
<script>
  window.clicks = 0;
  document.getElementById("btn").addEventListener("click", () => {
    window.clicks += 1;
    document.title = "clicked " + window.clicks;
  });
</script></body></html>"""
SECOND_HTML = "<!doctype html><title>Second page</title><body style='background:#9bd'>second"


# --- the target side: a page server and Chromium processes --------------------------------------


@pytest.fixture(scope="module")
def page_base() -> Iterator[str]:
    with PageServer({"/": TARGET_HTML.encode(), "/second": SECOND_HTML.encode()}) as server:
        yield server.base_url


@dataclass
class Target:
    """One Chromium the live view looks at, and a raw CDP line to check what happened in it."""

    process: subprocess.Popen[bytes]
    port: int

    def page_ws(self) -> str:
        targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", trust_env=False).json()
        return str(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        with connect(self.page_ws(), max_size=None, open_timeout=10) as ws:
            ws.send(json.dumps({"id": 1, "method": method, "params": params}))
            while True:
                answer: dict[str, Any] = json.loads(ws.recv(timeout=30))
                if answer.get("id") == 1:
                    return answer

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"]["result"].get("value")

    def show(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate("location.href") == url, what=f"target shows {url}")
        wait_for(lambda: self.evaluate("document.readyState") == "complete", what="page load")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def launch_target(profile: Path) -> Target:
    process = subprocess.Popen(
        [CHROMIUM, *TARGET_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    target = Target(process, 0)
    try:
        target.port = _devtools_port(profile / "DevToolsActivePort", process)
    except BaseException:
        target.kill()
        raise
    return target


def _devtools_port(path: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("target chromium exited during startup")
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= 2:
            return int(lines[0])
        time.sleep(0.05)
    raise TimeoutError("target chromium wrote no DevToolsActivePort")


# --- the server side: the live router plus the CDP gateway (or a passthrough) --------------------


NOWHERE = PurePosixPath("/nonexistent")


@dataclass(frozen=True, slots=True)
class Route:
    token: str
    devtools: LoopbackDialer
    allow_resizing: bool
    downloads: PurePosixPath = NOWHERE / "downloads"
    uploads: PurePosixPath = NOWHERE / "uploads"


def request_base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def gateway_app(routes: list[Route]) -> FastAPI:
    """The live router and the real CDP gateway (its websockets through the gateway's protocol)."""
    gateway = CdpGatewayServer()
    for route in routes:
        gateway.open(route)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with gateway:
            yield {GATEWAY_STATE_KEY: gateway}

    app = FastAPI(lifespan=lifespan)
    app.include_router(live.router)
    app.include_router(build_cdp_router(gateway, public_base=request_base))
    return app


class ThreadedUvicorn:
    """uvicorn on a loopback socket, served from its own thread and event loop."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(
            app, log_level="warning", ws=GatewayWebSocketProtocol, ws_per_message_deflate=False
        )
        self._server = uvicorn.Server(config)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._socket])),
            name="live-uvicorn",
            daemon=True,
        )

    def __enter__(self) -> str:
        self._thread.start()
        wait_for(lambda: self._server.started, 20, what="uvicorn to start")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()


@dataclass(frozen=True, slots=True)
class Harness:
    base: str
    target: Target
    doomed: Target
    page_base: str

    def live_url(self, token: str = TOKEN, **query: str) -> str:
        cdp_url = f"{self.base}/cdp/{token}"
        extra = "".join(f"&{key}={value}" for key, value in query.items())
        return f"{self.base}/live?wss={quote(cdp_url, safe='')}{extra}"


@pytest.fixture(scope="module")
def harness(page_base: str, suite_resources: Any) -> Iterator[Harness]:
    with contextlib.ExitStack() as stack:
        target = launch_target(suite_resources.new_data_dir())
        stack.callback(target.kill)
        doomed = launch_target(suite_resources.new_data_dir())
        stack.callback(doomed.kill)
        routes = [
            Route(TOKEN, LoopbackDialer(target.port), False),
            Route(DOOMED_TOKEN, LoopbackDialer(doomed.port), False),
        ]
        server = ThreadedUvicorn(gateway_app(routes))
        suite_resources.ports.add(server.port)
        base = stack.enter_context(server)
        yield Harness(base, target, doomed, page_base)


@pytest.fixture(scope="module")
def viewer() -> Iterator[Any]:
    """The second Chromium, the one a person would use to watch the live view."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", RESOLVER_RULES, "--disable-quic"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LivePage:
    page: Any
    errors: list[str]
    sockets: list[str]

    def canvas_box(self) -> dict[str, float]:
        box: dict[str, float] = self.page.locator("#screen").bounding_box()
        return box

    def frame(self) -> ie.FrameMetadata:
        meta = self.page.evaluate("window.browserfleetLive.frame()")
        return ie.FrameMetadata(
            meta["deviceWidth"], meta["deviceHeight"], meta["offsetTop"], meta["pageScaleFactor"]
        )

    def screen_point(self, page_x: float, page_y: float) -> tuple[float, float]:
        """Where on the screen (viewer CSS px) the target page's point (x, y) is drawn."""
        box = self.canvas_box()
        frame = self.frame()
        rect = ie.frame_rect(ie.Size(box["width"], box["height"]), frame)
        scale = rect.width / frame.device_width * frame.page_scale_factor
        return box["x"] + rect.x + page_x * scale, box["y"] + rect.y + page_y * scale

    def pixel(self, x: float, y: float) -> tuple[int, int, int]:
        """The canvas pixel at canvas CSS point (x, y)."""
        rgb = self.page.evaluate(
            """([x, y]) => {
                const c = document.getElementById('screen');
                const r = c.width / c.clientWidth;
                const at = [Math.round(x * r), Math.round(y * r)];
                const d = c.getContext('2d').getImageData(...at, 1, 1);
                return [d.data[0], d.data[1], d.data[2]];
            }""",
            [x, y],
        )
        return rgb[0], rgb[1], rgb[2]


def wait_state(page: Any, state: str) -> None:
    """Wait for the page's state; a selector, since the page's CSP forbids eval."""
    page.locator(f"html[data-state='{state}']").wait_for(state="attached", timeout=20_000)


@pytest.fixture
def open_live(viewer: Any, harness: Harness) -> Iterator[Callable[..., LivePage]]:
    contexts: list[Any] = []

    def open_page(url: str | None = None, *, wait_live: bool = True) -> LivePage:
        context = viewer.new_context(viewport={"width": 1000, "height": 700})
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(url or harness.live_url())
        if wait_live:
            wait_state(page, "live")
        return LivePage(page, errors, sockets)

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def fresh_target(harness: Harness) -> Target:
    harness.target.show(f"{harness.page_base}/")
    return harness.target


def near(actual: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# --- the page and its headers -------------------------------------------------------------------


def test_live_page_is_served_uncached_with_a_frameable_csp(harness: Harness) -> None:
    response = httpx.get(harness.live_url(), trust_env=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors *" in csp
    assert "connect-src 'self' http: https: ws: wss:" in csp
    assert "script-src 'self'" in csp


def test_static_assets_are_served_and_nothing_else_is(harness: Harness) -> None:
    for name, kind in (("live.js", "text/javascript"), ("live.css", "text/css")):
        response = httpx.get(f"{harness.base}/live/static/{name}", trust_env=False)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
    missing = httpx.get(f"{harness.base}/live/static/live.html", trust_env=False)
    assert missing.status_code == 404


# --- frames, input, tabs --------------------------------------------------------------------------


def test_canvas_draws_the_target_page(
    harness: Harness, fresh_target: Target, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live()
    box = live_page.canvas_box()
    centre = (box["width"] / 2, box["height"] / 2)
    wait_for(lambda: near(live_page.pixel(*centre), PAGE_BACKGROUND), what="the page's colour")
    assert live_page.errors == []
    gateway = f"{harness.base.replace('http', 'ws', 1)}/cdp/{TOKEN}/devtools/page/"
    assert live_page.sockets
    assert all(url.startswith(gateway) for url in live_page.sockets), live_page.sockets


def test_click_on_canvas_clicks_the_button_in_the_target(
    fresh_target: Target, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live()
    live_page.page.mouse.click(*live_page.screen_point(150, 75))
    wait_for(lambda: fresh_target.evaluate("window.clicks") == 1, what="the button's click")
    assert fresh_target.evaluate("document.title") == "clicked 1"
    live_page.page.mouse.dblclick(*live_page.screen_point(150, 75))
    wait_for(lambda: fresh_target.evaluate("window.clicks") == 3, what="a double click")
    assert live_page.errors == []


def test_typing_into_canvas_types_into_the_focused_input(
    fresh_target: Target, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live()
    live_page.page.mouse.click(*live_page.screen_point(200, 180))
    wait_for(
        lambda: fresh_target.evaluate("document.activeElement.id") == "field", what="input focus"
    )
    live_page.page.keyboard.type("Hello, World!")
    live_page.page.keyboard.press("Backspace")
    live_page.page.keyboard.press("ArrowLeft")
    live_page.page.keyboard.press("Shift+Home")
    live_page.page.keyboard.type("Bye")
    field = "document.getElementById('field').value"
    wait_for(lambda: fresh_target.evaluate(field) == "Byed", what="typed text")
    assert live_page.errors == []


def test_tab_list_shows_the_page_title_and_follows_it(
    fresh_target: Target, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live()
    tabs = live_page.page.locator("#tabs .tab")
    wait_for(lambda: tabs.all_inner_texts() == ["Live target"], what="the tab title")
    fresh_target.evaluate("document.title = 'Renamed'")
    wait_for(lambda: tabs.all_inner_texts() == ["Renamed"], what="the new tab title")


def test_url_bar_shows_the_url_and_navigates_on_enter(
    harness: Harness, fresh_target: Target, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live()
    url_bar = live_page.page.locator("#url")
    wait_for(lambda: url_bar.input_value() == f"{harness.page_base}/", what="the URL")
    url_bar.fill(f"{harness.page_base}/second")
    url_bar.press("Enter")
    wait_for(
        lambda: fresh_target.evaluate("document.title") == "Second page", what="the navigation"
    )
    wait_for(lambda: url_bar.input_value() == f"{harness.page_base}/second", what="the new URL")
    live_page.page.locator("#back").click()
    wait_for(lambda: fresh_target.evaluate("document.title") == "Live target", what="going back")


def test_wheel_on_canvas_scrolls_the_target(
    fresh_target: Target, open_live: Callable[..., LivePage]
) -> None:
    fresh_target.evaluate("document.body.style.height = '5000px'")
    live_page = open_live()
    live_page.page.mouse.move(*live_page.screen_point(500, 400))
    live_page.page.mouse.wheel(0, 300)
    wait_for(lambda: fresh_target.evaluate("window.scrollY") > 100, what="the scroll")


# --- theme and ui ---------------------------------------------------------------------------------


def test_light_theme_changes_the_background(
    harness: Harness, open_live: Callable[..., LivePage]
) -> None:
    style = "getComputedStyle(document.body).backgroundColor"
    dark = open_live().page.evaluate(style)
    light = open_live(harness.live_url(theme="light")).page.evaluate(style)
    assert dark == "rgb(11, 13, 16)"
    assert light == "rgb(230, 232, 235)"


def test_ui_false_hides_the_bar(harness: Harness, open_live: Callable[..., LivePage]) -> None:
    assert open_live().page.locator("#bar").is_visible()
    bare = open_live(harness.live_url(ui="false"))
    assert not bare.page.locator("#bar").is_visible()
    box = bare.canvas_box()
    assert (box["y"], box["height"]) == (0, 700)


def test_screenshot_of_the_live_page(
    harness: Harness, fresh_target: Target, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live()
    wait_for(
        lambda: live_page.page.locator("#tabs .tab").all_inner_texts() == ["Live target"],
        what="the tab title",
    )
    live_page.page.screenshot(path="/tmp/live.png")
    open_live(harness.live_url(theme="light")).page.screenshot(path="/tmp/live-light.png")


# --- the JS mirrors input_events.py --------------------------------------------------------------


FRAMES = [
    ie.FrameMetadata(1100, 652),
    ie.FrameMetadata(800, 457, 0, 2),
    ie.FrameMetadata(412, 915, 56, 1.5),
    ie.FrameMetadata(0, 0),
]
CANVASES = [ie.Size(1000, 600), ie.Size(300, 900), ie.Size(1280, 720)]
POINTS = [ie.Point(0, 0), ie.Point(10, 20), ie.Point(499.5, 300.25), ie.Point(1200, 800)]
KEYS = [
    ("a", "KeyA", 0), ("A", "KeyA", 8), ("a", "KeyA", 2), ("@", "KeyQ", 3), ("Enter", "Enter", 0),
    ("Tab", "Tab", 0), ("ArrowLeft", "ArrowLeft", 8), ("1", "Numpad1", 0), ("é", "", 0),
    ("Unidentified", "", 0), ("F5", "F5", 0), ("v", "KeyV", 4), (" ", "Space", 0),
    ("constructor", "toString", 0), ("😀", "", 0),
]  # fmt: skip

JsCall = Callable[..., Any]


@pytest.fixture
def js(open_live: Callable[..., LivePage]) -> JsCall:
    """Call one of the page's mapping functions (window.browserfleetLive) with JSON args."""
    page = open_live().page

    def call(fn: str, *args: Any) -> Any:
        return page.evaluate("([fn, args]) => window.browserfleetLive[fn](...args)", [fn, args])

    return call


def _as_js(value: ie.FrameMetadata | ie.MouseEvent | ie.KeyEvent) -> dict[str, Any]:
    if isinstance(value, ie.FrameMetadata):
        return {
            "deviceWidth": value.device_width, "deviceHeight": value.device_height,
            "offsetTop": value.offset_top, "pageScaleFactor": value.page_scale_factor,
        }  # fmt: skip
    return {name: getattr(value, name) for name in value.__slots__}


def test_javascript_geometry_matches_input_events(js: JsCall) -> None:
    for frame in FRAMES:
        for canvas in CANVASES:
            size = {"width": canvas.width, "height": canvas.height}
            rect = ie.frame_rect(canvas, frame)
            assert js("frameRect", size, _as_js(frame)) == pytest.approx(
                {"x": rect.x, "y": rect.y, "width": rect.width, "height": rect.height}
            )
            for point, clamp in itertools.product(POINTS, (False, True)):
                want = ie.canvas_to_page(point, canvas, frame, clamp=clamp)
                got = js("canvasToPage", {"x": point.x, "y": point.y}, size, _as_js(frame), clamp)
                expected = None if want is None else pytest.approx({"x": want.x, "y": want.y})
                assert got == expected, (frame, canvas, point, clamp)


def test_javascript_mouse_mapping_matches_input_events(js: JsCall) -> None:
    for button in range(-1, 7):
        assert js("mouseButton", button) == ie.mouse_button(button)
    for buttons in range(32):
        assert js("heldButton", buttons) == ie.held_button(buttons)
    for kind in ie.MOUSE_EVENT_TYPES:
        event = ie.MouseEvent(kind, button=2, buttons=2, detail=2, modifiers=10)
        got = js("mouseEventParams", _as_js(event), {"x": 1.5, "y": 2})
        assert got == ie.mouse_event_params(event, ie.Point(1.5, 2))
    for mode in (0, 1, 2, 7):
        assert js("wheelDelta", -3, mode, 600) == ie.wheel_delta(-3, mode, 600)


def test_javascript_key_mapping_matches_input_events(js: JsCall) -> None:
    for key, code, mask in KEYS:
        assert js("virtualKeyCode", key, code) == ie.virtual_key_code(key, code), key
        assert js("keyText", key, mask) == ie.key_text(key, mask), key
        for kind in ("keydown", "keyup"):
            event = ie.KeyEvent(kind, key, code, mask, location=3, repeat=True)
            assert js("keyEventParams", _as_js(event)) == ie.key_event_params(event), event


# --- the end of a session ---------------------------------------------------------------------


def test_unknown_session_shows_session_ended(
    harness: Harness, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live(harness.live_url("no-such-token"), wait_live=False)
    wait_state(live_page.page, "ended")
    assert live_page.page.locator("#overlay-title").inner_text() == "Session ended"


def test_missing_wss_says_so(harness: Harness, open_live: Callable[..., LivePage]) -> None:
    live_page = open_live(f"{harness.base}/live", wait_live=False)
    wait_state(live_page.page, "ended")
    assert live_page.page.locator("#overlay-title").inner_text() == "No session"


def test_killing_the_browser_shows_session_ended(
    harness: Harness, open_live: Callable[..., LivePage]
) -> None:
    live_page = open_live(harness.live_url(DOOMED_TOKEN))
    harness.doomed.kill()
    wait_state(live_page.page, "ended")
    assert live_page.page.locator("#overlay-title").inner_text() == "Session ended"
    assert live_page.page.locator("#overlay").is_visible()
    live_page.page.screenshot(path="/tmp/live-ended.png")
