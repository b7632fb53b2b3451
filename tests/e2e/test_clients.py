"""Every client connects the way it already knows, against a real server and Chromium.

Host-style CDP URLs (`--cdp-host-template '{token}.cdp.test'`): the SDK hands out the host
form, and Puppeteer's `browserURL`, chrome-remote-interface's {host, port} form (and its
protocol fetch) and Playwright find /json/* at the root of that host. The names resolve to
loopback inside each client's own process (node_clients.loopback_env), as a wildcard DNS name
would point them at the server.

Connect-on-demand (`/connect?apiKey=...`): Playwright's and Puppeteer's one-line connect create
a session (from the warm pool), and it is stopped and billed once its last client is gone for
the grace period; refusals are the REST create's, before the upgrade.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import websockets.sync.client
from api_checks import money
from fleet_server import TOO_MANY, Janitor, Server, creates, metric, start_server, wait_for
from node_clients import loopback_env, needs_node, run_client
from pages import PageServer
from playwright.sync_api import sync_playwright
from websockets.exceptions import InvalidStatus

from browserfleet.browsers.geometry import TASKBAR_HEIGHT

pytestmark = pytest.mark.e2e

SUFFIX = ".cdp.test"
GRACE_S = 1.0


@pytest.fixture(scope="module")
def hosted(suite_resources: Any) -> Iterator[Server]:
    """Host-style CDP URLs, a short connect grace, and a warm pool of one."""
    server = start_server(
        suite_resources,
        BROWSERFLEET_CDP_HOST_TEMPLATE="{token}" + SUFFIX,
        BROWSERFLEET_CDP__CONNECT_GRACE_S=str(GRACE_S),
        BROWSERFLEET_BROWSER__POOL_SIZE="1",
    )
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def resolving(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Playwright whose driver resolves *.cdp.test to loopback."""
    for name, value in loopback_env(SUFFIX).items():
        monkeypatch.setenv(name, value)
    with sync_playwright() as pw:
        yield pw


def sessions_tagged(server: Server, tag: str, key: str | None = None) -> list[dict[str, Any]]:
    with server.http(key) as client:
        items: list[dict[str, Any]] = client.get(
            "/browsers", params={"metadata": f"tag={tag}", "pageSize": 100}
        ).json()["items"]
    return items


def connect_url(server: Server, scheme: str = "ws", **params: str) -> str:
    return f"{scheme}://127.0.0.1:{server.port}/connect?{urlencode(params)}"


def stopped(server: Server, session_id: str, key: str | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        with server.http(key) as client:
            view: dict[str, Any] = client.get(f"/browsers/{session_id}").json()
        return view if view["status"] == "stopped" else None

    done: dict[str, Any] = wait_for(check, 30, what=f"session {session_id} to stop")
    return done


# ---- host-style CDP URLs ---------------------------------------------------------------------


def test_the_sdk_hands_out_a_host_and_playwright_connects_to_it(
    hosted: Server, janitor: Janitor, resolving: Any, pages: PageServer
) -> None:
    with hosted.sdk() as sdk:
        created = sdk.browsers.create(browser_screen_width=1280, browser_screen_height=720)
    janitor.track(hosted, hosted.key, str(created.id))
    cdp_url = created.cdp_url or ""
    parts = urlsplit(cdp_url)
    assert parts.path == "" and parts.port == hosted.port
    assert parts.hostname is not None and parts.hostname.endswith(SUFFIX)
    label = parts.hostname.removesuffix(SUFFIX)
    assert len(label) == 52 and label == label.lower()
    browser = resolving.chromium.connect_over_cdp(cdp_url)
    try:
        page = browser.contexts[0].pages[0]
        page.goto(pages.url("/"))
        assert page.title() == "browserfleet e2e index"
        assert page.evaluate("[screen.width, outerHeight]") == [1280, 720 - TASKBAR_HEIGHT]
    finally:
        browser.close()
    # The live view stays a page of the server itself, reaching the session by path.
    assert (created.live_url or "").startswith(hosted.url + "/live?")


def test_puppeteer_browser_url_and_chrome_remote_interface_find_json_at_the_hosts_root(
    hosted: Server, janitor: Janitor, pages: PageServer
) -> None:
    needs_node()
    view = janitor.create(hosted)
    cdp_url = view["cdpUrl"]
    host = urlsplit(cdp_url).hostname or ""
    seen = run_client("puppeteer-browser-url", cdp_url, pages.url("/second"), loopback=(SUFFIX,))
    assert seen["title"] == "second page"
    assert seen["endpoint"].startswith(f"ws://{host}:{hosted.port}/devtools/browser/")
    cri = run_client("cri", host, str(hosted.port), pages.url("/"), loopback=(SUFFIX,))
    assert cri["title"] == "browserfleet e2e index"
    assert cri["domains"] > 20 and "Chrome" in cri["browser"]
    assert cri["targetUrl"].startswith(f"ws://{host}:{hosted.port}/devtools/page/")


def test_a_host_names_only_its_own_open_session(hosted: Server, janitor: Janitor) -> None:
    view = janitor.create(hosted)
    host = urlsplit(view["cdpUrl"]).netloc
    root = f"{hosted.url}/json/version"
    answer = httpx.get(root, headers={"Host": host}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["webSocketDebuggerUrl"].startswith(f"ws://{host}/devtools/browser/")
    assert httpx.get(root, headers={"Host": host.upper()}, timeout=10).status_code == 200
    forged = base64.b32encode(bytes(32)).decode().rstrip("=").lower()
    for other in (f"{forged}{SUFFIX}", f"127.0.0.1:{hosted.port}", f"x.{host}", "cdp.test"):
        refused = httpx.get(root, headers={"Host": other}, timeout=10)
        assert refused.status_code == 404, other
    # A websocket to another host's label cannot reach the session's browser either.
    browser_path = urlsplit(answer.json()["webSocketDebuggerUrl"]).path
    with pytest.raises(InvalidStatus) as refused_ws:
        websockets.sync.client.connect(
            f"ws://127.0.0.1:{hosted.port}{browser_path}",
            additional_headers={"Host": f"{forged}{SUFFIX}"},
            open_timeout=10,
        )
    assert refused_ws.value.response.status_code == 404
    with hosted.http() as client:
        client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
    assert httpx.get(root, headers={"Host": host}, timeout=10).status_code == 404
    log = hosted.log_tail(2000)
    assert host.split(".")[0] not in log


# ---- connect-on-demand -----------------------------------------------------------------------


def test_playwrights_one_line_connect_creates_a_pooled_session_and_its_end_stops_it(
    hosted: Server, playwright: Any, pages: PageServer, tag: str
) -> None:
    wait_for(lambda: metric(hosted, "browserfleet_pool_ready") >= 1, 90, what="a pooled browser")
    pooled = creates(hosted, "pool")
    url = connect_url(
        hosted,
        apiKey=hosted.key,
        browserScreenWidth="1024",
        browserScreenHeight="768",
        proxyCountryCode="null",
        timeout="5",
        **{"metadata.tag": tag},
    )
    browser = playwright.chromium.connect_over_cdp(url)
    page = browser.contexts[0].pages[0]
    page.goto(pages.url("/"))
    assert page.title() == "browserfleet e2e index"
    assert page.evaluate("[screen.width, screen.height]") == [1024, 768]
    [session] = sessions_tagged(hosted, tag)
    assert session["status"] == "active"
    assert creates(hosted, "pool") == pooled + 1
    browser.close()
    done = stopped(hosted, session["id"])
    assert money(done["browserCost"]) > 0 and done["finishedAt"] is not None
    assert hosted.key not in hosted.log_tail(2000)


def test_a_session_lives_while_any_client_is_connected(
    hosted: Server, resolving: Any, tag: str
) -> None:
    url = connect_url(hosted, apiKey=hosted.key, **{"metadata.tag": tag})
    first = resolving.chromium.connect_over_cdp(url)
    [session] = sessions_tagged(hosted, tag)
    second = resolving.chromium.connect_over_cdp(session["cdpUrl"])
    first.close()
    time.sleep(3 * GRACE_S)  # a session that ended here would be a failure; none may happen
    assert sessions_tagged(hosted, tag)[0]["status"] == "active"
    assert second.contexts[0].pages[0].evaluate("1 + 1") == 2
    second.close()
    stopped(hosted, session["id"])


def test_http_first_connect_answers_the_sessions_own_url_without_the_key(
    hosted: Server, pages: PageServer, tag: str
) -> None:
    params = {"apiKey": hosted.key, "customProxy.host": "127.0.0.1"}
    params |= {"customProxy.port": str(pages.port), "customProxy.username": "u"}
    params |= {"customProxy.password": "pw-never-logged", "metadata.tag": tag}
    answer = httpx.get(f"{hosted.url}/connect/json/version", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    ws = answer.json()["webSocketDebuggerUrl"]
    assert hosted.key not in answer.text and "pw-never-logged" not in answer.text
    assert str(urlsplit(ws).hostname).endswith(SUFFIX)
    [session] = sessions_tagged(hosted, tag)
    # No client comes: the session ends after the grace period, billed as any other.
    done = stopped(hosted, session["id"])
    assert money(done["browserCost"]) > 0
    log = hosted.log_tail(2000)
    assert "pw-never-logged" not in log and hosted.key not in log


def test_an_http_first_client_can_reconnect_within_the_grace_period(
    server: Server, playwright: Any, pages: PageServer, tag: str
) -> None:
    """Playwright given the connect URL over http asks /connect/json/version/ (query kept)
    first. Its session outlives the client by the grace period (10 s by default), so the
    client can come back to its page; once no client has been back for that long, it stops."""
    url = connect_url(server, scheme="http", apiKey=server.key, **{"metadata.tag": tag})
    first = playwright.chromium.connect_over_cdp(url)
    first.contexts[0].pages[0].goto(pages.url("/second"))
    [session] = sessions_tagged(server, tag)
    first.close()  # the last client is gone: the grace period starts
    again = playwright.chromium.connect_over_cdp(session["cdpUrl"])
    assert again.contexts[0].pages[0].title() == "second page", "the same browser, as left"
    assert sessions_tagged(server, tag)[0]["status"] == "active"
    again.close()
    done = stopped(server, session["id"])
    assert money(done["browserCost"]) > 0
    assert server.key not in server.log_tail(2000)


def test_puppeteers_one_line_connect(hosted: Server, pages: PageServer, tag: str) -> None:
    url = connect_url(hosted, apiKey=hosted.key, **{"metadata.tag": tag})
    seen = run_client("puppeteer-ws", url, pages.url("/second"))
    assert seen["title"] == "second page" and "Chrome" in seen["version"]
    [session] = sessions_tagged(hosted, tag)
    stopped(hosted, session["id"])


def test_refusals_come_before_the_upgrade_as_the_rest_creates(hosted: Server, tag: str) -> None:
    _, key = hosted.new_project(concurrent_limit=1)

    def refused(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
        with pytest.raises(InvalidStatus) as caught:
            websockets.sync.client.connect(url, additional_headers=headers, open_timeout=30)
        response = caught.value.response
        return response.status_code, bytes(response.body or b""), response.headers

    assert refused(connect_url(hosted))[:2] == (401, b'{"detail": "Not authenticated"}')
    assert refused(connect_url(hosted, apiKey="bu_not_a_real_key_0000"))[0] == 401
    status, body, _ = refused(connect_url(hosted, apiKey=key, timeout="241"))
    assert status == 403 and b"240 minutes" in body
    status, body, _ = refused(connect_url(hosted, apiKey=key, browserScreenWidth="12"))
    assert status == 422 and b'"query", "browserScreenWidth"' in body
    # The key may come in the header; one session holds the project's only slot.
    with websockets.sync.client.connect(
        connect_url(hosted, **{"metadata.tag": tag}),
        additional_headers={"X-Browser-Use-API-Key": key},
        open_timeout=60,
    ):
        status, body, headers = refused(connect_url(hosted, apiKey=key))
        assert status == 429 and TOO_MANY.encode() in body and headers["Retry-After"]
    [session] = sessions_tagged(hosted, tag, key)
    stopped(hosted, session["id"], key)
    assert key not in hosted.log_tail(2000)
