"""The CDP gateway with real Chromium: Playwright and a raw websocket client through cdpUrl."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from fleet_server import Janitor, Server, creates, metric, money, wait_for
from pages import PageServer
from playwright.sync_api import Error as PlaywrightError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from browserfleet.browsers.geometry import MIN_WINDOW_WIDTH, TASKBAR_HEIGHT

pytestmark = pytest.mark.e2e

SIZE_JS = "() => [window.innerWidth, window.innerHeight, screen.width, screen.height]"
# The desktop geometry (README: Screen size): the screen, its work area above a 48 px taskbar,
# and a window that fills the work area.
SCREEN_JS = "() => [screen.width, screen.height, screen.availHeight, outerWidth, outerHeight]"


class RawCdp:
    """A minimal CDP client over one websocket: enough to call a method and read its answer."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 15) -> Any:
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == msg_id:
                return msg

    def wait_closed(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with pytest.raises(ConnectionClosed):
            while time.monotonic() < deadline:
                self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            raise AssertionError("socket still open")  # pragma: no cover


@contextmanager
def raw_cdp(url: str) -> Iterator[RawCdp]:
    with connect(url, max_size=None, open_timeout=10) as ws:
        yield RawCdp(ws)


def browser_ws_url(cdp_url: str) -> str:
    resp = httpx.get(f"{cdp_url}/json/version", timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["webSocketDebuggerUrl"])


def page_ws_url(cdp_url: str, page_url: str) -> str:
    targets = httpx.get(f"{cdp_url}/json/list", timeout=10).json()
    for target in targets:
        if target.get("type") == "page" and target.get("url") == page_url:
            return str(target["webSocketDebuggerUrl"])
    raise AssertionError(f"no page target at {page_url}: {targets}")


def first_page(browser: Any) -> Any:
    assert browser.contexts, "the browser must start with a default context"
    context = browser.contexts[0]
    return context.pages[0] if context.pages else context.new_page()


def screen_of(playwright: Any, cdp_url: str, pages: PageServer) -> list[int]:
    browser = playwright.chromium.connect_over_cdp(cdp_url, timeout=20_000)
    try:
        page = first_page(browser)
        page.goto(pages.url("/"))
        return list(page.evaluate(SCREEN_JS))
    finally:
        browser.close()


# ---- navigation and discovery -------------------------------------------------------------


def test_playwright_connect_over_cdp_navigates_to_a_loopback_page_and_reads_it(
    server: Server, janitor: Janitor, tag: str, pages: PageServer, playwright: Any
) -> None:
    view = janitor.create(server, timeout=3, metadata={"suite": tag})
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        assert len(browser.contexts) == 1
        assert browser.contexts[0].pages, "the default context must hold a page"
        page = first_page(browser)
        page.goto(pages.url("/"))
        assert page.title() == "browserfleet e2e index"
        assert page.locator("#greeting").inner_text() == "Hello from loopback"
        page.goto(pages.url("/second"))
        assert page.locator("#marker").inner_text() == "second-page-marker"
    finally:
        browser.close()
    with server.http() as client:
        assert client.get(f"/browsers/{view['id']}").json()["status"] == "active"


def test_cdp_answers_json_version_as_soon_as_create_returns(
    server: Server, janitor: Janitor, tag: str
) -> None:
    view = janitor.create(server, timeout=2, metadata={"suite": tag})
    resp = httpx.get(f"{view['cdpUrl']}/json/version", timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "Browser" in body
    ws_base = view["cdpUrl"].replace("http://", "ws://", 1)
    assert body["webSocketDebuggerUrl"].startswith(f"{ws_base}/devtools/browser/")


DISCOVERY_PATHS = [
    "/json/version",
    "/json/version/",
    "/json",
    "/json/",
    "/json/list",
    "/json/list/",
]


@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_discovery_rewrites_every_websocket_url_to_the_gateway(
    server: Server, janitor: Janitor, tag: str, path: str
) -> None:
    view = janitor.create(server, timeout=2, metadata={"suite": tag})
    resp = httpx.get(f"{view['cdpUrl']}{path}", timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ws_base = view["cdpUrl"].replace("http://", "ws://", 1)
    entries = [body] if isinstance(body, dict) else body
    if path.startswith("/json/list") or path.rstrip("/") == "/json":
        assert isinstance(body, list)
        assert any(e.get("type") == "page" for e in entries), body
    for entry in entries:
        if "webSocketDebuggerUrl" in entry:
            assert entry["webSocketDebuggerUrl"].startswith(f"{ws_base}/devtools/"), entry
    # No trace of Chromium's own debugging port anywhere (e.g. devtoolsFrontendUrl's ws=).
    ports = set(re.findall(r"(?:127\.0\.0\.1|localhost|\[::1\]):(\d+)", resp.text))
    assert ports <= {str(server.port)}, resp.text


def test_json_protocol_is_served_through_the_gateway(
    server: Server, janitor: Janitor, tag: str
) -> None:
    view = janitor.create(server, timeout=2, metadata={"suite": tag})
    resp = httpx.get(f"{view['cdpUrl']}/json/protocol", timeout=10)
    assert resp.status_code == 200
    assert any(d["domain"] == "Page" for d in resp.json()["domains"])


def test_unknown_cdp_token_is_refused(server: Server) -> None:
    bogus = f"{server.url}/cdp/{uuid.uuid4().hex}"
    assert httpx.get(f"{bogus}/json/version", timeout=10).status_code == 404
    ws_url = bogus.replace("http://", "ws://", 1) + "/devtools/browser/x"
    with pytest.raises((InvalidStatus, ConnectionClosed)), connect(ws_url, open_timeout=10) as ws:
        ws.recv(timeout=5)


def test_live_url_serves_the_live_view_page(server: Server, janitor: Janitor, tag: str) -> None:
    view = janitor.create(server, timeout=2, metadata={"suite": tag})
    resp = httpx.get(view["liveUrl"], timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")


# ---- several clients, Browser.close, stop ----------------------------------------------------


def test_raw_websocket_cdp_client_and_playwright_are_attached_at_once(
    server: Server, janitor: Janitor, tag: str, pages: PageServer, playwright: Any
) -> None:
    view = janitor.create(server, timeout=3, metadata={"suite": tag})
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        page = first_page(browser)
        page.goto(pages.url("/"))
        with raw_cdp(browser_ws_url(view["cdpUrl"])) as raw:
            targets = raw.call("Target.getTargets")["result"]["targetInfos"]
            assert pages.url("/") in [t["url"] for t in targets if t["type"] == "page"]
            with raw_cdp(page_ws_url(view["cdpUrl"], pages.url("/"))) as raw_page:
                title = raw_page.call(
                    "Runtime.evaluate", {"expression": "document.title", "returnByValue": True}
                )
                assert title["result"]["result"]["value"] == "browserfleet e2e index"
                # Playwright keeps working while both raw sockets are open
                page.goto(pages.url("/second"))
                assert page.locator("#marker").inner_text() == "second-page-marker"
                href = raw_page.call(
                    "Runtime.evaluate", {"expression": "location.href", "returnByValue": True}
                )
                assert href["result"]["result"]["value"] == pages.url("/second")
            targets = raw.call("Target.getTargets")["result"]["targetInfos"]
            assert pages.url("/second") in [t["url"] for t in targets]
    finally:
        browser.close()


def test_a_clients_browser_close_does_not_end_the_session(
    server: Server, janitor: Janitor, tag: str, pages: PageServer, playwright: Any
) -> None:
    view = janitor.create(server, timeout=3, metadata={"suite": tag})
    chromium_pid = server.browser_main_process(view["id"]).pid
    with raw_cdp(browser_ws_url(view["cdpUrl"])) as raw:
        answer = raw.call("Browser.close")
        assert "error" not in answer, answer
        # The same socket goes on working: the close was answered, not forwarded.
        assert "product" in raw.call("Browser.getVersion")["result"]
    with server.http() as client:
        assert client.get(f"/browsers/{view['id']}").json()["status"] == "active"
    assert server.browser_main_process(view["id"]).pid == chromium_pid
    assert httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).status_code == 200
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        page = first_page(browser)
        page.goto(pages.url("/"))
        assert page.title() == "browserfleet e2e index"
    finally:
        browser.close()


# Each sent as plain ASCII text, so the gateway's compiled hot path reads it first: what it
# says yes to must still meet the policy's rule for the method, and what it cannot read must
# still be refused by the Python reading.
BROWSER_LEVEL_ATTACKS = [
    '{"id":101,"method":"Browser.close"}',
    '{"id":102,"method":"Browser.crash","params":{}}',
    '{"id":103, "method": "Browser.crashGpuProcess"}',
    '{"id":104,"method":"Target.createBrowserContext","params":{"proxyServer":"127.0.0.1:1"}}',
    '{"id":105,"method":"Runtime.evaluate","method":"Browser.close"}',
    '{"id":106,"method":"Browser.getVersion","params":{"a":{"b":1,"b":2}}}',
]
PAGE_LEVEL_ATTACKS = [
    '{"id":201,"method":"Page.navigate","params":{"url":"file:///etc/passwd"}}',
    '{"id":202,"method":"Page.navigate","params":{"url":"chrome://version"}}',
]


def answer_to(ws: ClientConnection, text: str) -> Any:
    """The answer to `text`: the message with its id, or an error naming none (a message that
    is not strict JSON gets no id back); events in between are skipped."""
    ws.send(text)
    wanted = json.loads(text)["id"]
    while True:
        message = json.loads(ws.recv(timeout=15))
        if message.get("id") == wanted or ("error" in message and "id" not in message):
            return message


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled", "cold"])
def test_forbidden_commands_in_plain_text_are_answered_here_on_pooled_and_cold_sessions(
    make_server: Callable[..., Server],
    janitor: Janitor,
    pages: PageServer,
    playwright: Any,
    pooled: bool,
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__POOL_SIZE="1" if pooled else "0")
    if pooled:
        wait_for(lambda: metric(server, "browserfleet_pool_ready") >= 1, 60, what="pool ready")
    view = janitor.create(server, timeout=3)
    assert creates(server, "pool" if pooled else "cold") == 1
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        page = first_page(browser)
        page.goto(pages.url("/"))
        with connect(browser_ws_url(view["cdpUrl"]), max_size=None, open_timeout=10) as ws:
            answers = [answer_to(ws, text) for text in BROWSER_LEVEL_ATTACKS]
        # The session's own ends are the API's: Chrome never saw these three.
        assert [a.get("result") for a in answers[:3]] == [{}, {}, {}], answers
        # A context with its own proxy would bypass the egress guard; the rest are not strict.
        assert all("error" in a for a in answers[3:]), answers
        with connect(page_ws_url(view["cdpUrl"], pages.url("/")), max_size=None) as ws:
            navigations = [answer_to(ws, text) for text in PAGE_LEVEL_ATTACKS]
        assert all("error" in a for a in navigations), navigations
        assert page.evaluate("location.href") == pages.url("/")
        page.goto(pages.url("/second"))
        assert page.locator("#marker").inner_text() == "second-page-marker"
    finally:
        browser.close()
    with server.http() as client:
        assert client.get(f"/browsers/{view['id']}").json()["status"] == "active"


def test_stop_closes_every_socket_and_discovery_answers_404(
    server: Server, janitor: Janitor, tag: str, pages: PageServer, playwright: Any
) -> None:
    view = janitor.create(server, timeout=3, metadata={"suite": tag})
    cdp_url = view["cdpUrl"]
    browser = playwright.chromium.connect_over_cdp(cdp_url, timeout=20_000)
    try:
        page = first_page(browser)
        page.goto(pages.url("/"))
        browser_ws = browser_ws_url(cdp_url)
        with (
            raw_cdp(browser_ws) as raw_browser,
            raw_cdp(page_ws_url(cdp_url, pages.url("/"))) as raw_page,
        ):
            with server.http() as client:
                stopped = client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
            assert stopped.status_code == 200
            raw_browser.wait_closed()
            raw_page.wait_closed()
        with pytest.raises(PlaywrightError):
            page.evaluate("1 + 1")
    finally:
        browser.close()
    for path in DISCOVERY_PATHS:
        assert httpx.get(f"{cdp_url}{path}", timeout=10).status_code == 404, path
    with (
        pytest.raises((InvalidStatus, ConnectionClosed)),
        connect(browser_ws, open_timeout=10) as ws,
    ):
        ws.recv(timeout=5)
    wait_for(
        lambda: view["id"] not in server.browser_sessions_running(),
        10,
        what="the stopped session's Chromium to exit",
    )


# ---- screen size and resizing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, [1920, 1080]),
        ({"browserScreenWidth": 1280, "browserScreenHeight": 800}, [1280, 800]),
        ({"browser_screen_width": 1024, "browser_screen_height": 700}, [1024, 700]),
        ({"browserScreenWidth": 320, "browserScreenHeight": 320}, [320, 320]),
        ({"browserScreenWidth": 1000}, [1000, 1080]),
    ],
    ids=["default", "camel", "snake", "minimum", "width-only"],
)
def test_the_screen_is_the_requested_size_and_the_window_fills_its_work_area(
    server: Server,
    janitor: Janitor,
    tag: str,
    pages: PageServer,
    playwright: Any,
    body: dict[str, Any],
    expected: list[int],
) -> None:
    view = janitor.create(server, timeout=2, metadata={"suite": tag}, **body)
    width, height = expected
    work = height - TASKBAR_HEIGHT
    window = max(width, MIN_WINDOW_WIDTH)  # Chromium's narrowest window
    assert screen_of(playwright, view["cdpUrl"], pages) == [width, height, work, window, work]


@pytest.mark.parametrize("allow", [False, True])
def test_set_viewport_size_succeeds_but_applies_only_when_resizing_is_allowed(
    server: Server,
    janitor: Janitor,
    tag: str,
    pages: PageServer,
    playwright: Any,
    allow: bool,
) -> None:
    view = janitor.create(
        server,
        timeout=2,
        metadata={"suite": tag},
        browserScreenWidth=1280,
        browserScreenHeight=800,
        allowResizing=allow,
    )
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        page = first_page(browser)
        page.goto(pages.url("/"))
        before = page.evaluate(SIZE_JS)[:2]
        assert before[0] == 1280 and before[1] < 800 - TASKBAR_HEIGHT  # the browser's own UI
        page.set_viewport_size({"width": 800, "height": 600})  # must not raise either way
        page.wait_for_timeout(300)
        assert page.evaluate(SIZE_JS)[:2] == ([800, 600] if allow else before)
    finally:
        browser.close()


# ---- custom proxy ---------------------------------------------------------------------------

CUSTOM_PROXY_USD_PER_GB = Decimal("0.20")  # the default rate of a custom proxy (docs/api.md)
MICRO = Decimal("0.000001")


def test_custom_proxy_carries_page_traffic_with_its_credentials_and_is_metered(
    server: Server, janitor: Janitor, tag: str, pages: PageServer, playwright: Any
) -> None:
    view = janitor.create(
        server,
        timeout=2,
        metadata={"suite": tag},
        customProxy={
            "host": "127.0.0.1",
            "port": pages.port,
            "username": "alice",
            "password": "s3cret",
        },
    )
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        page = first_page(browser)
        page.goto("http://proxied.example/proxied")
        assert page.locator("#marker").inner_text() == "came-through-the-proxy"
    finally:
        browser.close()
    seen = [(url, auth) for url, auth in pages.proxy_log.snapshot() if "proxied.example" in url]
    assert seen, "the page did not go through the custom proxy"
    expected_auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert all(auth == expected_auth for _, auth in seen), seen
    with server.http() as client:
        live = client.get(f"/browsers/{view['id']}").json()
        assert money(live["proxyUsedMb"]) > 0
        assert money(live["proxyCost"]) == 0  # egress is charged at stop
        assert "s3cret" not in json.dumps(live)
        final = client.patch(f"/browsers/{view['id']}", json={"action": "stop"}).json()
    # Every byte both ways, at the custom-proxy rate (0.20 per GB), rounded half up to 10^-6.
    used_bytes = money(final["proxyUsedMb"]) * 10**6
    assert used_bytes >= money(live["proxyUsedMb"]) * 10**6
    expected = (used_bytes * CUSTOM_PROXY_USD_PER_GB / 10**9).quantize(MICRO, ROUND_HALF_UP)
    assert money(final["proxyCost"]) == expected, final
