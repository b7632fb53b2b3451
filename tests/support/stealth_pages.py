"""Loopback pages for the stealth tests: a fingerprint probe, the botd detector, a cross-site
iframe, and a log of the headers each request came with.

Two servers share one handler: 127.0.0.1 and 127.0.0.2 are different sites, so a page of one
framing the other gets an out-of-process iframe (its own target). Absolute-URI requests (what
a browser sends to an HTTP proxy) are answered too, so the page server can be a country pool's
upstream proxy.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

JS_DIR = Path(__file__).resolve().parent / "js"
BOTD = JS_DIR / "node_modules" / "@fingerprintjs" / "botd" / "dist" / "botd.esm.js"

# What the classic headless checks look at (puppeteer-extra-plugin-stealth's evasions).
PROBE_JS = """async () => {
  const n = navigator, c = window.chrome;
  const v = document.createElement('video'), a = document.createElement('audio');
  const f = document.createElement('iframe');
  f.srcdoc = '<p>x</p>';
  document.body.appendChild(f);
  const w = f.contentWindow;
  const iframe = {isWindow: !!w && w !== window && w.self === w,
    chrome: typeof (w && w.chrome), webdriver: w && w.navigator.webdriver,
    userAgent: w && w.navigator.userAgent};
  f.remove();
  let gl = null;
  const ctx = document.createElement('canvas').getContext('webgl');
  if (ctx) {
    const ext = ctx.getExtension('WEBGL_debug_renderer_info');
    gl = {vendor: ctx.getParameter(ctx.VENDOR), renderer: ctx.getParameter(ctx.RENDERER),
      unmaskedVendor: ext && ctx.getParameter(ext.UNMASKED_VENDOR_WEBGL),
      unmaskedRenderer: ext && ctx.getParameter(ext.UNMASKED_RENDERER_WEBGL)};
  }
  const d = n.userAgentData;
  const high = d ? await d.getHighEntropyValues(['fullVersionList', 'uaFullVersion']) : null;
  return {
    userAgent: n.userAgent, appVersion: n.appVersion, webdriver: n.webdriver,
    languages: Array.from(n.languages), language: n.language,
    hardwareConcurrency: n.hardwareConcurrency, deviceMemory: n.deviceMemory,
    plugins: Array.from(n.plugins).map(p => p.name), pluginArray: n.plugins instanceof PluginArray,
    mimeTypes: Array.from(n.mimeTypes).map(m => m.type),
    brands: d ? d.brands.map(b => b.brand) : null, mobile: d ? d.mobile : null,
    fullVersionList: high ? high.fullVersionList.map(b => b.brand + '/' + b.version) : null,
    chrome: {type: typeof c, app: typeof (c && c.app), csi: typeof (c && c.csi),
      loadTimes: typeof (c && c.loadTimes), runtime: typeof (c && c.runtime)},
    notification: Notification.permission,
    notificationQuery: (await n.permissions.query({name: 'notifications'})).state,
    geolocationQuery: (await n.permissions.query({name: 'geolocation'})).state,
    codecs: {h264: v.canPlayType('video/mp4; codecs="avc1.42E01E"'),
      vp9: v.canPlayType('video/webm; codecs="vp9"'),
      aac: a.canPlayType('audio/mp4; codecs="mp4a.40.2"'),
      opus: a.canPlayType('audio/ogg; codecs="opus"')},
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    intlLocale: Intl.DateTimeFormat().resolvedOptions().locale,
    screen: {width: screen.width, height: screen.height, availWidth: screen.availWidth,
      availHeight: screen.availHeight},
    outer: [outerWidth, outerHeight], inner: [innerWidth, innerHeight],
    webgl: gl, iframe,
  };
}"""

BOTD_PAGE = b"""<!doctype html><html><head><title>botd</title></head><body><script type="module">
import { load } from '/botd.js';
const botd = await load();
const result = botd.detect();
const detections = Object.entries(botd.getDetections())
  .filter(([, d]) => d.bot).map(([name, d]) => name + ':' + d.botKind);
window.botdResult = {...result, detections};
</script></body></html>"""


def page(body: str) -> bytes:
    return f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>".encode()


class HeaderLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[tuple[str, dict[str, str]]] = []

    def add(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._seen.append((path, headers))

    def of(self, path: str) -> list[dict[str, str]]:
        with self._lock:
            return [h for p, h in self._seen if p == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: StealthPages  # type: ignore[assignment]

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path or "/"
        # "proxy /path": the request came as a proxy's (a country pool's upstream is this site).
        seen_as = f"proxy {path}" if "://" in self.path else path
        self.server.log.add(seen_as, {k.lower(): v for k, v in self.headers.items()})
        content_type, body = "text/html; charset=utf-8", page("<p>probe</p>")
        if path == "/botd.js":
            content_type, body = "text/javascript", BOTD.read_bytes()
        elif path == "/botd":
            body = BOTD_PAGE
        elif path == "/frame":
            inner = f"http://127.0.0.2:{self.server.other_port}/inner"
            body = page(f"<iframe id='f' src='{inner}'></iframe>")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Ask for the high-entropy client hints too, as many sites do.
        self.send_header("Accept-CH", "Sec-CH-UA-Full-Version-List, Sec-CH-UA-Platform-Version")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class StealthPages(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, log: HeaderLog, port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.log = log
        self.other_port = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class StealthSite:
    """Both servers (same port on 127.0.0.1 and 127.0.0.2), started and stopped together."""

    def __init__(self) -> None:
        self.log = HeaderLog()
        self.main = StealthPages("127.0.0.1", self.log)
        self.other = StealthPages("127.0.0.2", self.log, self.main.port)
        self.main.other_port = self.other.port
        self._threads = [
            threading.Thread(target=s.serve_forever, daemon=True) for s in (self.main, self.other)
        ]

    @property
    def port(self) -> int:
        return self.main.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> StealthSite:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.main, self.other):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
