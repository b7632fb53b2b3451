"""A tiny loopback web server for the e2e tests: a few fixed pages, and a forward-proxy mode.

Requests with an absolute URI (``GET http://host/path``) are what a browser sends to an HTTP
proxy; we answer them from the same page table and record the Proxy-Authorization header, so a
test can tell that a session's custom proxy carried the traffic and its credentials.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
# Files served as downloads: (path, content type, Content-Disposition or None, bytes).
DATA_BIN = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit, every byte value
REPORT = "name,value\n" + "".join(f"row{i},{i * i}\n" for i in range(2000))
FILES: dict[str, tuple[str, str | None, bytes]] = {
    "/files/data.bin": ("application/octet-stream", None, DATA_BIN),
    "/attachment": ("text/plain", 'attachment; filename="report.csv"', REPORT.encode()),
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
        if path.startswith("/embed?"):  # another origin framing a URL given in `src`
            src = parse_qs(urlsplit(path).query).get("src", [""])[0]
            body = render(
                "embedding page",
                f"<iframe src='{html.escape(src, quote=True)}' width='800' height='500'></iframe>",
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path in FILES:
            kind, disposition, data = FILES[path]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            if disposition is not None:
                self.send_header("Content-Disposition", disposition)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
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
