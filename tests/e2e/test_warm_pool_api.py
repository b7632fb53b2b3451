"""The warm pool through the real API: hits, reshaping, cold fallback, refill, capacity, metrics."""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fleet_server import Janitor, Server, creates, metric, wait_for
from pages import PageServer

from browserfleet.browsers.geometry import TASKBAR_HEIGHT

pytestmark = pytest.mark.e2e


def pool_ready(server: Server, size: int) -> None:
    wait_for(lambda: metric(server, "browserfleet_pool_ready") >= size, 60, what="pool ready")


def viewport(playwright: Any, cdp_url: str) -> list[int]:
    browser = playwright.chromium.connect_over_cdp(cdp_url)
    try:
        page = browser.contexts[0].pages[0]
        return list(page.evaluate("[outerWidth, outerHeight, screen.width, screen.height]"))
    finally:
        browser.close()


def test_sessions_of_any_screen_size_come_from_the_pool_and_it_refills(
    make_server: Callable[..., Server], janitor: Janitor, playwright: Any
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__POOL_SIZE="2")
    pool_ready(server, 2)
    default = janitor.create(server)
    small = janitor.create(server, browserScreenWidth=1280, browserScreenHeight=720)
    assert creates(server, "pool") == 2
    assert creates(server, "cold") == 0
    # A maximized window above the taskbar of a screen of the requested size.
    assert viewport(playwright, default["cdpUrl"]) == [1920, 1080 - TASKBAR_HEIGHT, 1920, 1080]
    assert viewport(playwright, small["cdpUrl"]) == [1280, 720 - TASKBAR_HEIGHT, 1280, 720]
    pool_ready(server, 2)  # refilled in the background
    assert metric(server, "browserfleet_browser_launches_total") == 4  # 2 at start, 2 refills


def test_a_pooled_browser_is_never_reused(
    make_server: Callable[..., Server], janitor: Janitor, playwright: Any, pages: PageServer
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__POOL_SIZE="1")
    pool_ready(server, 1)
    first = janitor.create(server)
    browser = playwright.chromium.connect_over_cdp(first["cdpUrl"])
    page = browser.contexts[0].pages[0]
    page.goto(pages.url("/"))
    page.evaluate("document.cookie = 'secret=1; max-age=3600'; localStorage.setItem('k', 'v')")
    assert "secret=1" in page.evaluate("document.cookie")
    browser.close()
    with server.http() as client:
        assert client.patch(f"/browsers/{first['id']}", json={"action": "stop"}).status_code == 200
    pool_ready(server, 1)
    second = janitor.create(server)
    assert creates(server, "pool") == 2
    browser = playwright.chromium.connect_over_cdp(second["cdpUrl"])
    page = browser.contexts[0].pages[0]
    page.goto(pages.url("/"))
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.getItem('k')") is None
    assert browser.contexts[0].cookies() == []
    browser.close()


def test_a_request_the_pool_cannot_serve_launches_cold(
    make_server: Callable[..., Server], janitor: Janitor
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__POOL_SIZE="1")
    pool_ready(server, 1)
    janitor.create(server, pdfRendererEnabled=False)
    assert creates(server, "cold") == 1
    assert creates(server, "pool") == 0
    assert metric(server, "browserfleet_pool_ready") == 1
    assert "cold launch: no pooled browser fits" in server.log_tail(200)


def test_a_burst_larger_than_the_pool_falls_back_to_cold_launches(
    make_server: Callable[..., Server], janitor: Janitor
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__POOL_SIZE="2")
    pool_ready(server, 2)

    def create(_: int) -> httpx.Response:
        with server.http() as client:
            return client.post("/browsers", json={})

    with concurrent.futures.ThreadPoolExecutor(5) as executor:
        responses = list(executor.map(create, range(5)))
    for response in responses:
        assert response.status_code == 201, response.text
        janitor.track(server, server.key, response.json()["id"])
    assert creates(server, "pool") + creates(server, "cold") == 5
    assert creates(server, "pool") >= 2
    assert creates(server, "cold") >= 1


def test_over_host_capacity_is_a_503_and_starts_nothing(
    make_server: Callable[..., Server], janitor: Janitor
) -> None:
    server = make_server(
        BROWSERFLEET_BROWSER__POOL_SIZE="1", BROWSERFLEET_LIMITS__HOST_MAX_BROWSERS="2"
    )
    pool_ready(server, 1)
    janitor.create(server)
    janitor.create(server)
    before = server.browser_sessions_running()
    with server.http() as client:
        refused = client.post("/browsers", json={})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert "no room for another browser" in refused.json()["detail"]
    assert server.browser_sessions_running() == before
    assert metric(server, "browserfleet_pool_ready") == 0  # sessions evicted the pooled one


def test_shutdown_with_a_full_pool_leaves_no_process(make_server: Callable[..., Server]) -> None:
    server = make_server(BROWSERFLEET_BROWSER__POOL_SIZE="2")
    pool_ready(server, 2)
    assert len(server.browser_sessions_running()) == 2
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises it
    assert server.processes() == []
    assert list((server.data_dir / "sessions").iterdir()) == []


def test_metrics_count_stops_by_reason_and_active_sessions(
    make_server: Callable[..., Server], janitor: Janitor
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__POOL_SIZE="0")
    first = janitor.create(server)
    janitor.create(server)
    with server.http() as client:
        # No project ids on /metrics by default: the total of this server's sessions.
        assert metric(server, "browserfleet_sessions_active") == 2
        client.patch(f"/browsers/{first['id']}", json={"action": "stop"})
    assert metric(server, "browserfleet_session_stops_total", reason="user") == 1
    assert metric(server, "browserfleet_sessions_active") == 1
    assert metric(server, "browserfleet_session_create_seconds_count", source="cold") == 2
    assert metric(server, "browserfleet_browser_launches_total") == 2
    assert metric(server, "browserfleet_cdp_connections_open") == 0
