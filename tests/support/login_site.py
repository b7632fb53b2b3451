"""A loopback site with a login flow for profile tests: cookies (HttpOnly, persistent and
session), localStorage and IndexedDB set by /login?v=VALUE, read back by /check."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fleet_server import Server

LOGIN_PAGE = """<!doctype html><html><body><p id="state">working</p><script>
const value = new URLSearchParams(location.search).get("v");
localStorage.setItem("who", value);
const open = indexedDB.open("vault", 1);
open.onupgradeneeded = () => open.result.createObjectStore("kv");
open.onsuccess = () => {
  const tx = open.result.transaction("kv", "readwrite");
  tx.objectStore("kv").put(value, "who");
  tx.oncomplete = () => { document.getElementById("state").textContent = "done"; };
};
</script></body></html>"""

CHECK_PAGE = """<!doctype html><html><body><pre id="cookies">%s</pre><script>
window.readState = () => new Promise((resolve) => {
  const open = indexedDB.open("vault", 1);
  open.onupgradeneeded = () => open.result.createObjectStore("kv");
  open.onsuccess = () => {
    const get = open.result.transaction("kv").objectStore("kv").get("who");
    get.onsuccess = () => resolve({local: localStorage.getItem("who"), idb: get.result ?? null});
  };
});
</script></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        value = query.partition("v=")[2] or "none"
        if path == "/login":
            body = LOGIN_PAGE.encode()
            headers = [
                ("Set-Cookie", f"keep={value}; Path=/; Max-Age=86400; HttpOnly"),
                ("Set-Cookie", f"sess={value}; Path=/; HttpOnly"),
            ]
        elif path == "/check":
            cookie = self.headers.get("Cookie", "")
            body = (CHECK_PAGE % cookie.replace("<", "")).encode()
            headers = []
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        for name, header in headers:
            self.send_header(name, header)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def login_site() -> Iterator[str]:
    """The site's base URL, served from a thread while entered."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class State:
    cookies: dict[str, str]
    local: str | None
    idb: str | None


def new_profile(server: Server, key: str | None = None) -> str:
    with server.http(key) as client:
        answer = client.post("/profiles", json={"name": "e2e", "userId": uuid.uuid4().hex})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def log_in(playwright: Any, view: dict[str, Any], site: str, value: str) -> None:
    """The login flow in the session's browser: cookies (HttpOnly persistent and session),
    localStorage and IndexedDB on the loopback origin."""
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        page = browser.contexts[0].pages[0]
        page.goto(f"{site}/login?v={value}")
        page.wait_for_function("document.getElementById('state').textContent === 'done'")
    finally:
        browser.close()


def read_state(playwright: Any, view: dict[str, Any], site: str) -> State:
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    try:
        page = browser.contexts[0].pages[0]
        page.goto(f"{site}/check")
        header = page.inner_text("#cookies")
        found = page.evaluate("window.readState()")
    finally:
        browser.close()
    cookies = dict(p.strip().split("=", 1) for p in header.split(";") if "=" in p)
    return State(cookies, found["local"], found["idb"])


def assert_logged_in(state: State, value: str) -> None:
    assert state.cookies.get("keep") == value, state
    assert state.cookies.get("sess") == value, state
    assert (state.local, state.idb) == (value, value), state
