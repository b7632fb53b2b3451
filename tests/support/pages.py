"""The loopback page server of the tests and benchmarks: a table of pages, and a forward-proxy mode.

Requests with an absolute URI (``GET http://host/path``) are what a browser sends to an HTTP
proxy; we answer them from the same page table and record the Proxy-Authorization header, so a
test can tell that a session's custom proxy carried the traffic and its credentials. Every
request's headers are logged too (``requests``), for tests that check what a browser sent.

A test with pages of its own passes a table (``PageServer({"/": Page(b"...")})``) or subclasses
and overrides ``page()`` for pages computed per request; with no table it serves ``PAGES``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

PAGES: dict[str, tuple[str, str]] = {
    "/": ("browserfleet e2e index", "<h1 id='greeting'>Hello from loopback</h1>"),
    "/second": ("second page", "<p id='marker'>second-page-marker</p>"),
    "/proxied": ("proxied page", "<p id='marker'>came-through-the-proxy</p>"),
    # Repaints every animation frame: the screencast sends frames as fast as it is paced.
    "/animated": (
        "animated page",
        "<div id='box' style='width:200px;height:200px;background:#c33;"
        "animation:spin 1s linear infinite'></div>"
        "<style>@keyframes spin{to{transform:rotate(360deg)}}</style>",
    ),
    "/downloads": (
        "downloads page",
        "<a id='link' href='/files/data.bin' download>data</a>"
        "<a id='attach' href='/attachment'>report</a>",
    ),
    # Counts clicks anywhere: a view-only viewer's clicks must never reach it.
    "/clicks": (
        "clicks page",
        "<p id='count'>0</p><script>let n=0;addEventListener('mousedown',()=>{"
        "document.getElementById('count').textContent=String(++n)})</script>",
    ),
}
HTML = "text/html; charset=utf-8"
# Files served as downloads by the default table.
DATA_BIN = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit, every byte value
REPORT = "name,value\n" + "".join(f"row{i},{i * i}\n" for i in range(2000))


def render(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body>{body}</body></html>"
    ).encode()


@dataclass(frozen=True, slots=True)
class Page:
    """One response: its body, content type and any extra headers."""

    body: bytes
    content_type: str = HTML
    headers: tuple[tuple[str, str], ...] = ()


def embedding(src: str) -> Page:
    """A page that frames `src`."""
    frame = f"<iframe src='{html.escape(src, quote=True)}' width='800' height='500'></iframe>"
    return Page(render("embedding page", frame))


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


class HeaderLog:
    """The headers (lower-cased names) of every request, by path; a request that came as a
    proxy's (absolute URI) is logged as ``"proxy <path>"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[tuple[str, dict[str, str]]] = []

    def add(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._seen.append((path, headers))

    def of(self, path: str) -> list[dict[str, str]]:
        with self._lock:
            return [h for p, h in self._seen if p == path]


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        absolute = "://" in self.path  # a forward-proxy request
        path = (urlsplit(self.path).path or "/") if absolute else self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.headers_log.add(f"proxy {path}" if absolute else path, headers)
        if absolute:
            self.server.proxy_log.add(self.path, self.headers.get("Proxy-Authorization"))
        page = self.server.page(path)
        if path == "/embed" and not absolute:  # another origin framing the URL given in `src`
            page = embedding(parse_qs(urlsplit(self.path).query).get("src", [""])[0])
        if page is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in page.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(page.body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class PageServer(ThreadingHTTPServer):
    """Serves its page table on ``host`` (127.0.0.1 unless told) from a thread while entered."""

    daemon_threads = True
    block_on_close = True

    def __init__(
        self,
        pages: Mapping[str, Page | bytes] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__((host, port), PageHandler)
        self.host = host
        if pages is None:
            self.pages = {path: Page(render(*page)) for path, page in PAGES.items()}
            self.pages["/files/data.bin"] = Page(DATA_BIN, "application/octet-stream")
            self.pages["/attachment"] = Page(
                REPORT.encode(),
                "text/plain",
                (("Content-Disposition", 'attachment; filename="report.csv"'),),
            )
        else:
            self.pages = {p: v if isinstance(v, Page) else Page(v) for p, v in pages.items()}
        self.proxy_log = ProxyLog()
        self.headers_log = HeaderLog()
        self._thread = threading.Thread(target=self.serve_forever, name="pages", daemon=True)

    def page(self, path: str) -> Page | None:
        """The page at `path` (no query), or None for a 404."""
        return self.pages.get(path)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        """The server's URL without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class HeldServer(ThreadingHTTPServer):
    """A loopback server of a test's own handler, run from a thread while entered, with a
    `release` event its handler may wait on to hold a response half-sent; leaving sets it."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, name="held", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)
