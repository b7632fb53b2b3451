"""A tiny loopback web server for the e2e tests: a few fixed pages, and a forward-proxy mode.

Requests with an absolute URI (``GET http://host/path``) are what a browser sends to an HTTP
proxy; we answer them from the same page table and record the Proxy-Authorization header, so a
test can tell that a session's custom proxy carried the traffic and its credentials.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PAGES: dict[str, tuple[str, str]] = {
    "/": ("browserfleet e2e index", "<h1 id='greeting'>Hello from loopback</h1>"),
    "/second": ("second page", "<p id='marker'>second-page-marker</p>"),
    "/proxied": ("proxied page", "<p id='marker'>came-through-the-proxy</p>"),
}


def render(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body>{body}</body></html>"
    ).encode()


@dataclass
class ProxyLog:
    """Absolute-URI requests seen (the proxy role) and their Proxy-Authorization headers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, url: str, auth: str | None) -> None:
        with self.lock:
            self.requests.append((url, auth))

    def snapshot(self) -> list[tuple[str, str | None]]:
        with self.lock:
            return list(self.requests)


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        path = self.path
        if "://" in path:  # forward-proxy request
            self.server.proxy_log.add(path, self.headers.get("Proxy-Authorization"))
            path = urlsplit(path).path or "/"
        page = PAGES.get(path)
        if page is None:
            self.send_error(404)
            return
        body = render(*page)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class PageServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), PageHandler)
        self.proxy_log = ProxyLog()
        self._thread = threading.Thread(target=self.serve_forever, name="e2e-pages", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
