"""One size everywhere: every window, tab and context of a session has the session's screen and
viewport, whether its browser came from the warm pool (and was reshaped) or was launched for it.

Playwright's new_page() and new_context(no_viewport=True), and Puppeteer's newPage() with
`defaultViewport: null`, open pages in new windows or tabs of the session's size. Playwright's
plain new_context() and Puppeteer's default 800x600 ask to emulate their own viewport: with
allowResizing false that request is answered but not applied (README, "Viewport and window
size"), so the page still has the session's size; with allowResizing true it is applied over
the session's screen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fleet_server import Janitor, Server, creates, metric, start_server, wait_for
from node_clients import run_client

from browserfleet.browsers.geometry import TASKBAR_HEIGHT

pytestmark = pytest.mark.e2e

MEASURE = "[screen.width, screen.height, outerWidth, outerHeight, innerWidth, innerHeight]"
SIZES = [(1280, 720), (1024, 768), (2560, 1440)]  # smaller and larger than the pool's


@pytest.fixture(scope="module")
def pooled(suite_resources: Any) -> Iterator[Server]:
    server = start_server(suite_resources, BROWSERFLEET_BROWSER__POOL_SIZE="1")
    try:
        yield server
    finally:
        server.close()


def pool_ready(server: Server) -> None:
    wait_for(lambda: metric(server, "browserfleet_pool_ready") >= 1, 90, what="a pooled browser")


def sizes(playwright: Any, cdp_url: str) -> dict[str, list[int]]:
    browser = playwright.chromium.connect_over_cdp(cdp_url)
    try:
        default = browser.contexts[0]
        seen = {"first": default.pages[0].evaluate(MEASURE)}
        seen["new_page"] = default.new_page().evaluate(MEASURE)
        seen["new_context_no_viewport"] = (
            browser.new_context(no_viewport=True).new_page().evaluate(MEASURE)
        )
        page = browser.new_context().new_page()
        seen["new_context"] = page.evaluate(MEASURE)
        return seen
    finally:
        browser.close()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_pooled_and_cold_sessions_give_every_context_the_session_size(
    pooled: Server, server: Server, janitor: Janitor, playwright: Any, width: int, height: int
) -> None:
    pool_ready(pooled)
    before = creates(pooled, "pool")
    hot = janitor.create(pooled, browserScreenWidth=width, browserScreenHeight=height)
    assert creates(pooled, "pool") == before + 1
    cold = janitor.create(server, browserScreenWidth=width, browserScreenHeight=height)
    hot_sizes, cold_sizes = sizes(playwright, hot["cdpUrl"]), sizes(playwright, cold["cdpUrl"])
    assert hot_sizes == cold_sizes
    window = [width, height, width, height - TASKBAR_HEIGHT]
    for seen in hot_sizes.values():
        assert seen[:4] == window
        assert seen[4] == width and 0 < seen[5] < window[3]  # the window less the toolbar
    viewport = hot_sizes["first"][4:]
    for view in (hot, cold):
        ws = httpx.get(view["cdpUrl"] + "/json/version", timeout=10).json()["webSocketDebuggerUrl"]
        puppeteer = run_client("puppeteer-sizes", ws)
        assert puppeteer["null"]["size"] == [*window, *viewport]
        assert puppeteer["null"]["context"] == [*window, *viewport]
        assert puppeteer["default"]["context"] == [*window, *viewport]
        # Puppeteer's own 800x600 is answered, not applied: the page keeps the session's size.
        assert puppeteer["default"]["size"] == [*window, *viewport]
        assert puppeteer["default"]["reported"] == {"width": 800, "height": 600}


def test_with_allow_resizing_a_clients_viewport_is_applied(
    pooled: Server, janitor: Janitor, playwright: Any
) -> None:
    pool_ready(pooled)
    view = janitor.create(
        pooled, browserScreenWidth=1280, browserScreenHeight=720, allowResizing=True
    )
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"])
    try:
        page = browser.new_context(viewport={"width": 900, "height": 500}).new_page()
        seen = page.evaluate(MEASURE)
        # Playwright emulates a screen of its viewport's size too unless given `screen=`.
        assert seen == [900, 500, 900, 500, 900, 500]
    finally:
        browser.close()
    ws = httpx.get(view["cdpUrl"] + "/json/version", timeout=10).json()["webSocketDebuggerUrl"]
    puppeteer = run_client("puppeteer-sizes", ws)
    assert puppeteer["default"]["size"] == [1280, 720, 1280, 720 - TASKBAR_HEIGHT, 800, 600]
    assert puppeteer["null"]["size"][:4] == [1280, 720, 1280, 720 - TASKBAR_HEIGHT]
