"""Recordings, the downloads API and the view-only live view on a real server and real Chromium.

One server serves every test here; each test has its own sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from api_checks import parse_time
from direct_cdp import DirectCdp
from fleet_server import Janitor, Server, wait_for
from loopback import RESOLVER_RULES
from pages import DATA_BIN, REPORT, HeldServer, PageServer
from video import ffprobe
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from browserfleet.auth.signing import load_or_create_secret
from browserfleet.media.links import Disposition, sign

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/lib/chromium/chromium"
RECORD_S = 10.0


def get(server: Server, session_id: str) -> dict[str, Any]:
    with server.http() as client:
        answer = client.get(f"/browsers/{session_id}")
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


def stop(server: Server, session_id: str) -> dict[str, Any]:
    with server.http() as client:
        answer = client.patch(f"/browsers/{session_id}", json={"action": "stop"})
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


def test_recording_is_an_h264_mp4_of_the_session_served_by_signed_range_requests(
    server: Server, janitor: Janitor, pages: PageServer, playwright: Any
) -> None:
    view = janitor.create(server, timeout=3, enableRecording=True)
    began = time.monotonic()  # startedAt is the request's time, before the browser launched
    assert view["recordingUrl"] is None
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        browser.contexts[0].pages[0].goto(pages.url("/animated"))
        # The session's length is what is measured: it runs for RECORD_S on the animated page.
        time.sleep(RECORD_S)
    finally:
        browser.close()
    session_s = time.monotonic() - began
    stopped = stop(server, view["id"])
    assert stopped["recordingUrl"] is None  # never in the stop response
    with server.http() as client:
        listed = client.get("/browsers").json()["items"]
    assert all(item["recordingUrl"] is None for item in listed)
    try:
        ready = wait_for(
            lambda: (v := get(server, view["id"]))["recordingUrl"] and v,
            timeout=30,
            what="the recording URL",
        )
    except BaseException:
        print(server.log_tail(150))
        raise
    assert ready["recordingAvailable"] is True
    url = ready["recordingUrl"]

    answer = httpx.get(url, timeout=60)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["x-content-type-options"] == "nosniff"
    video = answer.content
    probed = ffprobe(video)
    stream = probed["streams"][0]
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    assert session_s >= RECORD_S
    assert abs(float(probed["format"]["duration"]) - session_s) <= 0.1 * session_s
    # +faststart: the index (moov) comes before the media data (mdat).
    assert 0 <= video.find(b"moov") < video.find(b"mdat")

    ranged = httpx.get(url, headers={"Range": "bytes=100-1123"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 100-1123/{len(video)}"
    assert ranged.content == video[100:1124]
    tail = httpx.get(url, headers={"Range": "bytes=-10"}, timeout=30)
    assert (tail.status_code, tail.content) == (206, video[-10:])

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    tampered = [
        url.replace("signature=" + query["signature"], "signature=" + "A" * 43),
        url.replace(f"expires={query['expires']}", f"expires={int(query['expires']) + 3600}"),
        url.replace("disposition=inline", "disposition=attachment"),
        url.replace(parts.path, parts.path.replace(".mp4", "x.mp4")),
    ]
    for bad in tampered:
        assert httpx.get(bad, timeout=30).status_code == 403, bad
    # A link signed by this server's own secret, for this very file, but expired.
    secret = load_or_create_secret(server.data_dir)
    key = parts.path.removeprefix("/files/")
    expired = sign(
        secret,
        key,
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
        disposition=Disposition.INLINE,
    )
    assert httpx.get(expired.url(server.url), timeout=30).status_code == 403
    fresh = sign(
        secret,
        key,
        expires_at=datetime.now(UTC) + timedelta(minutes=1),
        disposition=Disposition.INLINE,
    )
    assert httpx.get(fresh.url(server.url), timeout=30).status_code == 200


def test_a_session_without_recording_has_none_and_says_so(server: Server, janitor: Janitor) -> None:
    view = janitor.create(server, timeout=3)
    assert get(server, view["id"])["recordingAvailable"] is False
    stop(server, view["id"])
    final = get(server, view["id"])
    assert (final["recordingUrl"], final["recordingAvailable"]) == (None, False)
    assert not list((server.data_dir / "recording-work").glob(f"{view['id']}*"))


def downloads(server: Server, session_id: str, **params: Any) -> dict[str, Any]:
    with server.http() as client:
        answer = client.get(f"/browsers/{session_id}/downloads", params=params)
    assert answer.status_code == 200, answer.text
    listing: dict[str, Any] = answer.json()
    return listing


async def click_downloads(cdp_url: str, pages: PageServer) -> None:
    """One download through a link with `download`, one by navigating to a response with
    `Content-Disposition: attachment` (in a tab of its own: Chrome holds back a page's second
    download without a user gesture)."""
    async with DirectCdp.via_gateway(cdp_url) as cdp:
        page = await cdp.page()
        await cdp.navigate(page, pages.url("/downloads"))
        await cdp.evaluate(page, "document.getElementById('link').click()")
        other = await cdp.page()
        await cdp.call("Page.navigate", {"url": pages.url("/attachment")}, other)


def test_downloads_are_listed_paged_and_served_while_running_and_after_stop(
    server: Server, janitor: Janitor, pages: PageServer
) -> None:
    view = janitor.create(server, timeout=3)
    sid = view["id"]
    assert downloads(server, sid) == {"files": [], "nextCursor": None, "hasMore": False}
    expected = {"data.bin": DATA_BIN, "report.csv": REPORT.encode()}
    # Raw CDP, no download behavior of its own: the server's default (Playwright: below).
    asyncio.run(click_downloads(view["cdpUrl"], pages))
    wait_for(
        lambda: {f["path"] for f in downloads(server, sid)["files"]} == set(expected),
        timeout=30,
        what="both downloads listed",
    )

    def check_listing() -> None:
        listing = downloads(server, sid, includeUrls="true")
        assert [(f["path"], f["size"]) for f in listing["files"]] == [
            (name, len(data)) for name, data in sorted(expected.items())
        ]
        assert (listing["hasMore"], listing["nextCursor"]) == (False, None)
        for item in listing["files"]:
            parse_time(item["lastModified"])
            answer = httpx.get(item["url"], timeout=30)
            assert answer.status_code == 200
            assert answer.content == expected[item["path"]]
            assert answer.headers["content-disposition"].startswith("attachment;")
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert all(f["url"] is None for f in downloads(server, sid)["files"])
        first = downloads(server, sid, limit=1)
        assert [f["path"] for f in first["files"]] == ["data.bin"]
        assert first["hasMore"] is True
        second = downloads(server, sid, limit=1, cursor=first["nextCursor"])
        assert [f["path"] for f in second["files"]] == ["report.csv"]
        assert (second["hasMore"], second["nextCursor"]) == (False, None)

    check_listing()  # while the session runs: from its downloads directory
    stop(server, sid)
    check_listing()  # after the stop: from the store
    with server.http() as client:
        bad = client.get(f"/browsers/{sid}/downloads", params={"cursor": "%%%"})
        assert bad.status_code == 422
        assert client.get(f"/browsers/{sid}/downloads", params={"limit": 0}).status_code == 422
        other = "00000000-0000-4000-8000-000000000000"
        assert client.get(f"/browsers/{other}/downloads").status_code == 404


class FileServer(HeldServer):
    """Downloads for Playwright: named by `download`, by Content-Disposition (a hostile name and
    a very long one), twice under one name with different bytes, and one held half-sent until
    the test lets it finish."""

    def __init__(self) -> None:
        super().__init__(FileHandler)
        self.bodies = {
            "/one": ("dup.txt", b"first " * 1000),
            "/two": ("dup.txt", b"second " * 3000),
            "/evil": ("../../etc/evil\x01.sh", b"#!/bin/sh\n"),
            "/long": ("L" * 300 + ".txt", b"long"),
        }


SLOW = bytes(range(256)) * 1024  # 256 KiB, half of it held back


class FileHandler(BaseHTTPRequestHandler):
    server: FileServer
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        if self.path == "/":
            links = "".join(f"<a id='{p[1:]}' href='{p}'>{p}</a> " for p in self.server.bodies)
            body = (links + "<a id='slow' href='/slow' download='slow.bin'>slow</a>").encode()
            self._head("text/html", len(body))
            self.wfile.write(body)
            return
        if self.path == "/slow":
            self._head("application/octet-stream", len(SLOW))
            self.wfile.write(SLOW[: len(SLOW) // 2])
            self.wfile.flush()
            self.server.release.wait(60)
            self.wfile.write(SLOW[len(SLOW) // 2 :])
            return
        name, body = self.server.bodies[self.path]
        disposition = "attachment; filename*=UTF-8''" + quote(name, safe="")
        self._head("application/octet-stream", len(body), disposition)
        self.wfile.write(body)

    def _head(self, content_type: str, length: int, disposition: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        if disposition is not None:
            self.send_header("Content-Disposition", disposition)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


# Before the viewer tests: their module-wide Playwright must not run next to this one's.
def test_playwright_downloads_are_listed_by_their_real_names_never_as_guids(
    server: Server, janitor: Janitor, playwright: Any
) -> None:
    view = janitor.create(server, timeout=3)
    sid = view["id"]
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    with FileServer() as files:
        try:
            page = browser.contexts[0].pages[0]
            page.goto(files.url + "/")
            suggested = []
            for link in files.bodies:
                with page.expect_download() as event:
                    page.click(f"#{link[1:]}")
                download = event.value
                assert download.failure() is None  # Playwright saw it complete
                suggested.append(download.suggested_filename)
            assert suggested[:2] == ["dup.txt", "dup.txt"]

            with page.expect_download() as event:
                page.click("#slow")
            slow = event.value
            # Half of it is in the browser's directory now; it is not listed, not as a GUID
            # either, until the rest arrives.
            wait_for(
                lambda: any(n.endswith(".crdownload") for n in downloaded_names(server, sid)),
                what="the slow download in progress",
            )
            listed = {f["path"] for f in downloads(server, sid)["files"]}
            assert "slow.bin" not in listed and not any(len(n) == 36 for n in listed)
            files.release.set()
            assert slow.failure() is None
            # A context of the client's own (its download behavior set by Playwright, with
            # events on its own connection): the server still hears of it and names it.
            other = browser.new_context().new_page()
            other.goto(files.url + "/")
            with other.expect_download() as event:
                other.click("#one")
            assert event.value.failure() is None
            final = wait_for(
                lambda: (
                    (got := downloads(server, sid, includeUrls="true")["files"])
                    and len(got) == 6
                    and got
                ),
                timeout=30,
                what="every download listed",
            )
        finally:
            browser.close()
    by_name = {f["path"]: f for f in final}
    first, second = files.bodies["/one"][1], files.bodies["/two"][1]
    expected = {"dup.txt": first, "dup (1).txt": second, "dup (2).txt": first, "slow.bin": SLOW}
    for name, data in expected.items():
        assert by_name[name]["size"] == len(data)
        assert httpx.get(by_name[name]["url"], timeout=30).content == data
    others = sorted(set(by_name) - set(expected))
    evil, long = sorted(others, key=len)
    for name in others:  # hostile names became one plain segment each
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        assert all(ord(ch) >= 0x20 for ch in name) and len(name.encode()) <= 255
    assert evil.endswith(".sh") and "evil" in evil
    assert long.startswith("LLLL") and long.endswith(".txt")
    assert httpx.get(by_name[long]["url"], timeout=30).content == b"long"
    assert not [n for n in downloaded_names(server, sid) if len(n) == 36]


def test_downloads_after_a_client_that_set_a_behavior_left_still_land_and_are_listed(
    server: Server, janitor: Janitor, pages: PageServer, playwright: Any
) -> None:
    """A client that set the download behavior and disconnected makes Chrome reset it to its
    default: the sandbox's managed policy points that default at the session's downloads."""
    view = janitor.create(server, timeout=3)
    sid = view["id"]
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    browser.contexts[0].pages[0].goto(pages.url("/"))
    browser.close()  # Playwright had set allowAndName on its own connection; Chrome resets it
    # Raw CDP, no download behavior of its own (a thread: Playwright's loop runs in this one).
    clicker = threading.Thread(target=asyncio.run, args=(click_downloads(view["cdpUrl"], pages),))
    clicker.start()
    clicker.join(60)
    assert not clicker.is_alive()
    wait_for(
        lambda: {f["path"] for f in downloads(server, sid)["files"]} == {"data.bin", "report.csv"},
        timeout=30,
        what="both downloads listed",
    )
    listing = downloads(server, sid, includeUrls="true")["files"]
    by_name = {f["path"]: f for f in listing}
    assert httpx.get(by_name["data.bin"]["url"], timeout=30).content == DATA_BIN
    assert httpx.get(by_name["report.csv"]["url"], timeout=30).content == REPORT.encode()


def downloaded_names(server: Server, session_id: str) -> list[str]:
    """What is in the session's downloads directory on the host right now."""
    directory = server.data_dir / "sessions" / session_id / "downloads"
    return [p.name for p in directory.iterdir()] if directory.is_dir() else []


@pytest.fixture(scope="module")
def viewer_browser() -> Iterator[Any]:
    """A second Chromium, the one people watching the session use."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", RESOLVER_RULES, "--disable-quic"]
        )
        try:
            yield browser
        finally:
            browser.close()


def wait_live(frame: Any) -> None:
    """The page's state once it has drawn a frame (a selector: its CSP forbids eval)."""
    frame.locator("html[data-state='live']").wait_for(state="attached", timeout=30_000)


def test_view_only_viewers_watch_together_and_cannot_touch_the_page(
    server: Server, janitor: Janitor, pages: PageServer, viewer_browser: Any
) -> None:
    view = janitor.create(server, timeout=3)
    view_url = view["viewOnlyLiveUrl"]
    assert view_url.startswith(f"{server.url}/live?view={view['id']}.")
    token = view["cdpUrl"].rsplit("/", 1)[-1]
    assert token not in view_url  # the view-only link carries no CDP credential

    with LoopThread() as loop:
        cdp = loop.enter(DirectCdp.via_gateway(view["cdpUrl"]))
        page = loop.run(cdp.page())  # the automation's tab: the one the view follows
        loop.run(cdp.navigate(page, pages.url("/clicks")))
        count = "document.getElementById('count').textContent"
        watch_and_click(view, pages, viewer_browser)
        assert loop.run(cdp.evaluate(page, count)) == "0"
        # Input through the frames websocket is never read as anything.
        send_input_to_frames(server, view_url)
        assert loop.run(cdp.evaluate(page, count)) == "0"
        # The same click through the interactive live view does reach the page.
        clicked = lambda: loop.run(cdp.evaluate(page, count)) != "0"  # noqa: E731
        click_interactive(view, viewer_browser, clicked)


class LoopThread:
    """An event loop in a thread of its own, for async CDP next to sync Playwright."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def enter(self, manager: Any) -> Any:
        return self.run(self._stack.enter_async_context(manager))

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


def watch_and_click(view: dict[str, Any], pages: PageServer, browser: Any) -> None:
    contexts = [browser.new_context(viewport={"width": 900, "height": 600}) for _ in range(2)]
    try:
        watchers = [context.new_page() for context in contexts]
        for watcher in watchers:
            watcher.goto(view["viewOnlyLiveUrl"])
        for watcher in watchers:  # two viewers at once, both drawing frames
            wait_live(watcher)
        for _ in range(3):
            watchers[0].mouse.click(450, 300)
            watchers[0].keyboard.type("x")
        # Framed by a page of another origin (the page server's), it still shows the session.
        embed = watchers[1]
        embed.goto(pages.url("/embed?src=" + quote(view["viewOnlyLiveUrl"], safe="")))
        wait_live(embed.frame_locator("iframe"))
    finally:
        for context in contexts:
            context.close()


def send_input_to_frames(server: Server, view_url: str) -> None:
    frames_url = server.url.replace("http://", "ws://") + "/live/frames?" + view_url.split("?")[1]
    attack = {
        "id": 1,
        "method": "Runtime.evaluate",
        "params": {"expression": "document.getElementById('count').textContent = 'pwned'"},
    }
    with connect(frames_url, open_timeout=10) as ws:
        assert isinstance(ws.recv(timeout=20), bytes)  # a JPEG frame
        ws.send(json.dumps(attack))
        ws.send(b"\x00" * 1024)
        ws.ping().wait(10)  # the socket is still served: the input was dropped, not fatal
    forged = frames_url.rsplit(".", 1)[0] + "." + "A" * 43
    with connect(forged, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


def click_interactive(view: dict[str, Any], browser: Any, clicked: Any) -> None:
    """Click the clicks page through the interactive live view (on its tab), until it counts."""
    context = browser.new_context(viewport={"width": 900, "height": 600})
    try:
        page = context.new_page()
        page.goto(view["liveUrl"])
        wait_live(page)
        page.get_by_role("tab", name="clicks page").click()
        wait_live(page)
        box = page.locator("#screen").bounding_box()

        def click() -> bool:
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            return bool(clicked())

        wait_for(click, what="a click through the interactive view")
    finally:
        context.close()
