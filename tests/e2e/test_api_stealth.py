"""Stealth by default: the classic headless checks, botd, client hints and the egress region,
in every kind of target (first tab, new tab, new browser context, cross-site iframe), through
the real API with Playwright and Puppeteer as clients.

One cold session (the shared server, no warm pool) and one pooled session routed through a
`de` country pool are probed once each in every context; each check is then its own test, on
both sessions where it does not depend on the session's size or region.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fleet_server import Janitor, Server, start_server, wait_for
from node_clients import needs_node
from playwright.sync_api import sync_playwright
from stealth_pages import JS_DIR, PROBE_JS, StealthSite

from browserfleet.browsers.geometry import TASKBAR_HEIGHT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/lib/chromium/chromium"
WHERE = ["first tab", "new tab", "new context", "iframe"]
Probes = dict[str, dict[str, Any]]


def chromium_version() -> str:
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"(\d+\.\d+\.\d+\.\d+)", out.stdout)
    assert found, out.stdout
    return found.group(1)


def probe_everywhere(cdp_url: str, site: StealthSite) -> Probes:
    """PROBE_JS in the first tab, a new tab, a page of a new context, and an OOPIF; each page
    is probed while it is its window's active tab (README: Stealth, honest limits)."""
    probes: Probes = {}
    with sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(cdp_url, timeout=30_000)
        try:
            context = browser.contexts[0]
            first = context.pages[0]
            first.goto(site.url("/probe"))
            probes["first tab"] = first.evaluate(PROBE_JS)
            tab = context.new_page()
            tab.goto(site.url("/probe"))
            probes["new tab"] = tab.evaluate(PROBE_JS)
            framed = browser.new_context().new_page()
            framed.goto(site.url("/frame"))
            probes["new context"] = framed.evaluate(PROBE_JS)
            element = framed.wait_for_selector("#f")
            frame = element.content_frame() if element else None
            assert frame is not None
            frame.wait_for_load_state()
            assert frame.url.startswith("http://127.0.0.2:")  # cross-site: its own target
            probes["iframe"] = frame.evaluate(PROBE_JS)
            return probes
        finally:
            browser.close()


def botd_verdict(cdp_url: str, site: StealthSite) -> dict[str, Any]:
    with sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(cdp_url, timeout=30_000)
        try:
            page = browser.contexts[0].pages[0]
            page.goto(site.url("/botd"))
            page.wait_for_function("window.botdResult !== undefined", timeout=20_000)
            verdict: dict[str, Any] = page.evaluate("window.botdResult")
            return verdict
        finally:
            browser.close()


@pytest.fixture(scope="module")
def site() -> Iterator[StealthSite]:
    with StealthSite() as pages:
        yield pages


@pytest.fixture(scope="module")
def cold(server: Server, site: StealthSite) -> Iterator[tuple[dict[str, Any], Probes]]:
    """A cold-launched session on the shared server (it has no warm pool), probed once."""
    janitor = Janitor()
    try:
        view = janitor.create(server, timeout=5)
        yield view, probe_everywhere(view["cdpUrl"], site)
    finally:
        janitor.stop_all()


@pytest.fixture(scope="module")
def pooled_de(
    suite_resources: Any, site: StealthSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, dict[str, Any]]]:
    """A server whose `de` pool is the loopback site (as an HTTP proxy), with a warm pool: the
    session is a pooled browser (launched for 1920x1080) that learns its region and its
    1280x720 screen at hand-over."""
    pools = tmp_path_factory.mktemp("stealth") / "pools.toml"
    pools.write_text(f'[countries]\nde = ["http://user-{{session}}:pw@127.0.0.1:{site.port}"]\n')
    de = start_server(
        suite_resources,
        BROWSERFLEET_EGRESS__POOLS_FILE=str(pools),
        BROWSERFLEET_BROWSER__POOL_SIZE="1",
    )
    janitor = Janitor()
    try:
        wait_for(lambda: _metric(de, "browserfleet_pool_ready") >= 1, 60, what="a pooled browser")
        view = janitor.create(
            de, timeout=5, proxyCountryCode="de", browserScreenWidth=1280, browserScreenHeight=720
        )
        assert _metric(de, 'browserfleet_session_create_seconds_count{source="pool"}') == 1
        yield de, view
    finally:
        janitor.stop_all()
        de.close()


@pytest.fixture(scope="module")
def de_probes(pooled_de: tuple[Server, dict[str, Any]], site: StealthSite) -> Probes:
    return probe_everywhere(pooled_de[1]["cdpUrl"], site)


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " ") or (line.startswith(name) and "{" in name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---- the classic headless checks, each in every kind of target -------------------------------


@pytest.fixture(scope="module", params=["cold", "pooled"])
def probes(request: pytest.FixtureRequest) -> Probes:
    """The classic checks run on both sessions: the cold one, and the pooled one (launched
    for the pool, then reshaped and routed through the `de` pool at hand-over)."""
    if request.param == "cold":
        found: Probes = request.getfixturevalue("cold")[1]
        return found
    pooled: Probes = request.getfixturevalue("de_probes")
    return pooled


@pytest.mark.parametrize("where", WHERE)
def test_navigator_webdriver_is_false(probes: Probes, where: str) -> None:
    probe = probes[where]
    assert probe["webdriver"] is False
    assert probe["iframe"]["webdriver"] is False


@pytest.mark.parametrize("where", WHERE)
def test_user_agent_and_app_version_name_chrome_with_the_real_version(
    probes: Probes, where: str
) -> None:
    probe = probes[where]
    major = chromium_version().split(".")[0]
    for value in (probe["userAgent"], probe["appVersion"], probe["iframe"]["userAgent"]):
        assert "Headless" not in value
        assert f"Chrome/{major}.0.0.0 Safari/537.36" in value


@pytest.mark.parametrize("where", WHERE)
def test_client_hints_name_no_headless_brand_and_keep_the_full_versions(
    probes: Probes, where: str
) -> None:
    probe = probes[where]
    assert "Chromium" in probe["brands"] and probe["mobile"] is False
    assert not [b for b in probe["brands"] if "Headless" in b]
    # An overridden user agent without metadata would leave these empty: a tell.
    assert f"Chromium/{chromium_version()}" in probe["fullVersionList"]


@pytest.mark.parametrize("where", WHERE)
def test_chrome_app_csi_and_load_times_are_there(probes: Probes, where: str) -> None:
    chrome = probes[where]["chrome"]
    assert (chrome["type"], chrome["app"], chrome["csi"], chrome["loadTimes"]) == (
        "object",
        "object",
        "function",
        "function",
    )


@pytest.mark.parametrize("where", WHERE)
def test_chrome_runtime_is_absent_as_in_a_desktop_chrome_without_extensions(
    probes: Probes, where: str
) -> None:
    # Chrome defines chrome.runtime on a page only for an installed extension that lets the
    # page talk to it (externally_connectable); a made-up one would be the tell.
    assert probes[where]["chrome"]["runtime"] == "undefined"


@pytest.mark.parametrize("where", WHERE)
def test_an_iframes_content_window_is_a_real_window(probes: Probes, where: str) -> None:
    frame = probes[where]["iframe"]
    assert frame["isWindow"] is True
    assert frame["chrome"] == "object"


@pytest.mark.parametrize("where", WHERE)
def test_media_codecs_are_a_desktop_chromes(probes: Probes, where: str) -> None:
    codecs = probes[where]["codecs"]
    assert codecs == {"h264": "probably", "vp9": "probably", "aac": "probably", "opus": "probably"}


@pytest.mark.parametrize("where", WHERE)
def test_hardware_concurrency_and_device_memory_are_the_hosts(probes: Probes, where: str) -> None:
    probe = probes[where]
    assert probe["hardwareConcurrency"] == os.cpu_count()
    assert probe["deviceMemory"] in (0.25, 0.5, 1, 2, 4, 8, 16, 32)


@pytest.mark.parametrize("where", WHERE)
def test_languages_are_set_and_match_the_accept_language_header(
    cold: Any, site: StealthSite, where: str
) -> None:
    probe = cold[1][where]
    assert probe["languages"] and probe["language"] == probe["languages"][0]
    (header, *_) = [h["accept-language"] for h in site.log.of("/probe")]
    assert header.split(",")[0] == probe["language"]


@pytest.mark.parametrize("where", WHERE)
def test_notification_permission_agrees_with_the_permissions_api(
    probes: Probes, where: str
) -> None:
    probe = probes[where]
    # Headless Chrome used to say "denied" here while the query said "prompt". A cross-origin
    # iframe may not ask at all, in any Chrome: "denied" both ways.
    expected = ("denied", "denied") if where == "iframe" else ("default", "prompt")
    assert (probe["notification"], probe["notificationQuery"]) == expected


@pytest.mark.parametrize("where", WHERE)
def test_plugins_and_mime_types_are_the_pdf_viewers(probes: Probes, where: str) -> None:
    probe = probes[where]
    assert probe["pluginArray"] is True
    assert "Chrome PDF Viewer" in probe["plugins"] and len(probe["plugins"]) == 5
    assert probe["mimeTypes"] == ["application/pdf", "text/pdf"]


@pytest.mark.parametrize("where", WHERE)
def test_webgl_vendor_and_renderer_are_the_truth_and_agree(probes: Probes, where: str) -> None:
    webgl = probes[where]["webgl"]
    assert (webgl["vendor"], webgl["renderer"]) == ("WebKit", "WebKit WebGL")
    # No GPU: SwiftShader, reported as such by Google's ANGLE (README: honest limits).
    assert webgl["unmaskedVendor"] == "Google Inc. (Google)"
    assert "SwiftShader" in webgl["unmaskedRenderer"]
    assert (webgl["unmaskedVendor"], webgl["unmaskedRenderer"]) != ("Brian Paul", "Mesa OffScreen")


@pytest.mark.parametrize("where", ["first tab", "new tab", "new context"])
def test_outer_size_fits_the_screen_above_its_taskbar(cold: Any, where: str) -> None:
    probe = cold[1][where]
    screen = probe["screen"]
    assert (screen["width"], screen["height"]) == (1920, 1080)
    assert (screen["availWidth"], screen["availHeight"]) == (1920, 1080 - TASKBAR_HEIGHT)
    assert probe["outer"] == [1920, 1080 - TASKBAR_HEIGHT]  # maximized
    assert probe["inner"][0] == 1920 and probe["inner"][1] < probe["outer"][1]


def test_an_iframe_has_the_screen_of_its_page(cold: Any) -> None:
    assert cold[1]["iframe"]["screen"] == cold[1]["first tab"]["screen"]
    assert cold[1]["iframe"]["outer"] == cold[1]["first tab"]["outer"]


def test_the_sec_ch_ua_header_names_no_headless_brand(cold: Any, site: StealthSite) -> None:
    seen = [h for h in site.log.of("/probe") + site.log.of("/inner") if "sec-ch-ua" in h]
    assert seen, "no request carried client hints"
    for headers in seen:
        assert "Headless" not in headers["sec-ch-ua"] and "Chromium" in headers["sec-ch-ua"]
        assert "Headless" not in headers["user-agent"]


def test_botd_says_not_a_bot_in_a_cold_session(cold: Any, site: StealthSite) -> None:
    needs_node()
    verdict = botd_verdict(cold[0]["cdpUrl"], site)
    assert verdict["bot"] is False, verdict


# ---- the region follows the egress -----------------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
def test_a_de_pool_session_is_in_berlin_and_speaks_german(de_probes: Probes, where: str) -> None:
    probe = de_probes[where]
    assert probe["timeZone"] == "Europe/Berlin"
    assert probe["intlLocale"] == "de-DE"
    assert probe["languages"] == ["de-DE", "de", "en-US", "en"]


@pytest.mark.parametrize("where", ["first tab", "new tab", "new context"])
def test_a_reshaped_pooled_sessions_windows_all_fit_its_screen(
    de_probes: Probes, where: str
) -> None:
    # A new context opens a new window: the primer gives it the session's geometry, not the
    # size the pooled browser was launched with.
    probe = de_probes[where]
    assert (probe["screen"]["width"], probe["screen"]["height"]) == (1280, 720)
    assert probe["outer"] == [1280, 720 - TASKBAR_HEIGHT]


def test_a_de_pool_session_sends_german_accept_language_through_its_proxy(
    de_probes: Probes, site: StealthSite
) -> None:
    assert de_probes  # the probes went through the de pool (the site is its proxy)
    headers = [h["accept-language"] for h in site.log.of("proxy /frame")]
    assert headers and all(h == "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7" for h in headers)


def test_a_page_granted_geolocation_finds_itself_in_berlin(
    pooled_de: tuple[Server, dict[str, Any]], site: StealthSite
) -> None:
    where = """new Promise((ok, no) => navigator.geolocation.getCurrentPosition(
        p => ok([p.coords.latitude, p.coords.longitude]), e => no(e.message)))"""
    state = "navigator.permissions.query({name: 'geolocation'}).then(s => s.state)"
    with sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(pooled_de[1]["cdpUrl"], timeout=30_000)
        try:
            context = browser.contexts[0]
            page = context.new_page()
            page.goto(site.url("/probe"))
            assert page.evaluate(state) == "prompt"  # a fresh profile's, until someone grants
            context.grant_permissions(["geolocation"], origin=site.url(""))
            assert page.evaluate(state) == "granted"
            assert page.evaluate(where) == [52.5, 13.367]  # Berlin, the zone's city
            page.close()
        finally:
            browser.close()


def test_botd_says_not_a_bot_in_a_pooled_session(
    pooled_de: tuple[Server, dict[str, Any]], site: StealthSite
) -> None:
    needs_node()
    verdict = botd_verdict(pooled_de[1]["cdpUrl"], site)
    assert verdict["bot"] is False, verdict


@pytest.mark.parametrize("which", ["cold", "pooled"])
def test_puppeteer_sees_no_tell_in_a_new_page_or_context(
    request: pytest.FixtureRequest, site: StealthSite, which: str
) -> None:
    """Puppeteer in a new tab and in a new browser context of the cold session (1920x1080) and
    of the pooled one (1280x720, routed through the `de` pool)."""
    needs_node()
    if which == "cold":
        view, screen, region = request.getfixturevalue("cold")[0], (1920, 1080), None
    else:
        view = request.getfixturevalue("pooled_de")[1]
        screen, region = (1280, 720), ("Europe/Berlin", "de-DE")
    version = httpx.get(view["cdpUrl"] + "/json/version", timeout=10).json()
    script = JS_DIR / "puppeteer_probe.mjs"
    done = subprocess.run(
        ["node", str(script), version["webSocketDebuggerUrl"], site.url("/probe")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=JS_DIR,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    major = chromium_version().split(".")[0]
    assert set(found) == {"new page", "new context"}
    for seen in found.values():
        assert seen["webdriver"] is False
        for value in (seen["userAgent"], seen["appVersion"]):
            assert "Headless" not in value and f"Chrome/{major}.0.0.0" in value
        assert not [b for b in seen["brands"] if "Headless" in b]
        assert seen["chrome"] == "object" and seen["plugins"] == 5
        assert seen["outer"] == seen["avail"] == [screen[0], screen[1] - TASKBAR_HEIGHT]
        assert seen["focus"] is True  # Puppeteer does not emulate focus; the session does
        if region is not None:
            assert (seen["timeZone"], seen["languages"][0]) == region


# ---- stealth off -----------------------------------------------------------------------------


def test_stealth_off_is_plain_chromium(suite_resources: Any, site: StealthSite) -> None:
    plain = start_server(suite_resources, BROWSERFLEET_STEALTH__ENABLED="false")
    janitor = Janitor()
    try:
        view = janitor.create(plain, timeout=5)
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(view["cdpUrl"], timeout=30_000)
            page = browser.contexts[0].pages[0]
            page.goto(site.url("/probe"))
            seen = page.evaluate("[navigator.webdriver, navigator.userAgent]")
            browser.close()
        assert seen[0] is True and "HeadlessChrome/" in seen[1]
    finally:
        janitor.stop_all()
        plain.close()
