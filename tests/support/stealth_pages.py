"""Loopback pages for the stealth tests: a fingerprint probe, the botd detector, a cross-site
iframe, and a log of the headers each request came with.

Two servers share one handler: 127.0.0.1 and 127.0.0.2 are different sites, so a page of one
framing the other gets an out-of-process iframe (its own target). Absolute-URI requests (what
a browser sends to an HTTP proxy) are answered too, so the page server can be a country pool's
upstream proxy.
"""

from __future__ import annotations

from pathlib import Path

from pages import HeaderLog, Page, PageServer

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


class StealthPages(PageServer):
    """One of the two sites: a probe page at every path, the botd detector, and a page framing
    the other site. Every response asks for the high-entropy client hints, as many sites do."""

    def __init__(self, host: str, log: HeaderLog, port: int = 0) -> None:
        super().__init__({}, host=host, port=port)
        self.headers_log = log
        self.other_port = 0

    def page(self, path: str) -> Page:
        hints = (("Accept-CH", "Sec-CH-UA-Full-Version-List, Sec-CH-UA-Platform-Version"),)
        if path == "/botd.js":
            return Page(BOTD.read_bytes(), "text/javascript", hints)
        if path == "/botd":
            return Page(BOTD_PAGE, headers=hints)
        if path == "/frame":
            inner = f"http://127.0.0.2:{self.other_port}/inner"
            return Page(page(f"<iframe id='f' src='{inner}'></iframe>"), headers=hints)
        return Page(page("<p>probe</p>"), headers=hints)


class StealthSite:
    """Both servers (same port on 127.0.0.1 and 127.0.0.2), started and stopped together."""

    def __init__(self) -> None:
        self.log = HeaderLog()
        self.main = StealthPages("127.0.0.1", self.log)
        self.other = StealthPages("127.0.0.2", self.log, self.main.port)
        self.main.other_port = self.other.port

    @property
    def port(self) -> int:
        return self.main.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> StealthSite:
        self.main.__enter__()
        try:
            self.other.__enter__()
        except BaseException:
            self.main.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.other.__exit__()
        self.main.__exit__()
