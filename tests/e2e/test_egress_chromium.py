"""Real Chromium behind the egress proxy: pages load through it, are metered, blocked, or fail
with the proxy error Chromium shows for each upstream failure.

Every Chromium here runs with `chromium_proxy_args`, so even loopback pages pass the proxy. The
direct route's resolver knows loopback names only, so nothing is ever looked up outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Error, async_playwright
from polling import until
from upstream_proxy import proxy_py

from browserfleet.proxy import (
    DirectRoute,
    EgressGuard,
    EgressProxy,
    HttpUpstream,
    Route,
    chromium_proxy_args,
)
from browserfleet.proxy.guard import IPAddress

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/lib/chromium/chromium"
USER, PASSWORD = "fleet-user", "s3cret-pass"
FIVE_MB = 5_000_000
BASE_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=AutofillServerCommunication,NetworkTimeServiceQuerying,OptimizationHints",
    "--gaia-url=http://127.0.0.1:9",
    "--google-apis-url=http://127.0.0.1:9",
    "--component-updater=url-source=http://127.0.0.1:9/",
    "--remote-debugging-port=0",
]


async def loopback_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve only loopback names: the tests must never look anything up outside."""
    if host in ("localhost", "origin.test"):
        return [ipaddress.ip_address("127.0.0.1")]
    raise OSError(-2, "Name or service not known (test resolver)")


LOOPBACK_ALLOWED = DirectRoute(
    EgressGuard(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), resolver=loopback_resolver)
)
GUARDED = DirectRoute(EgressGuard(resolver=loopback_resolver))


class Origin(ThreadingHTTPServer):
    """A loopback origin (HTTP, or HTTPS with a throwaway cert) that logs paths and bytes."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.paths: list[str] = []
        self.body_bytes = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}{path}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class OriginHandler(BaseHTTPRequestHandler):
    server: Origin

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.path == "/big":
            # A comment: parsed, never laid out, so the test measures bytes and not rendering.
            body = b"<!doctype html><title>big</title><!--" + b"x" * (FIVE_MB - 37) + b"-->"
        elif self.path == "/":
            body = b"<!doctype html><title>origin</title><p id='marker'>through-the-proxy</p>"
        else:
            self.send_error(404)
            return
        self.server.body_bytes += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def origin_server(context: ssl.SSLContext | None = None) -> Iterator[Origin]:
    server = Origin(context)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI is needed to make a throwaway certificate")
    workdir = tmp_path_factory.mktemp("tls")
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """proxy.py with Basic auth: (port, its log, where it records each request)."""
    with proxy_py(USER, PASSWORD, tmp_path_factory.mktemp("upstream")) as found:
        yield found


@contextlib.asynccontextmanager
async def browser_behind(
    route: Route, data_dir: Path, *extra: str
) -> AsyncIterator[tuple[EgressProxy, Browser]]:
    """An EgressProxy on `route` and a Chromium using it, driven over CDP by Playwright."""
    async with EgressProxy(route, connect_timeout_s=5) as proxy:
        args = [*BASE_ARGS, *chromium_proxy_args(proxy.port), *extra]
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *args,
            f"--user-data-dir={data_dir}",
            "about:blank",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            cdp_port = await _devtools_port(data_dir / "DevToolsActivePort")
            async with async_playwright() as playwright:
                browser = await playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{cdp_port}")
                try:
                    yield proxy, browser
                finally:
                    await browser.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _devtools_port(path: Path) -> int:
    async with asyncio.timeout(20):
        while True:
            text = await asyncio.to_thread(_read_if_exists, path)
            if text.strip():
                return int(text.split()[0])
            await asyncio.sleep(0.05)


def _read_if_exists(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def goto(browser: Browser, url: str) -> tuple[int | None, str]:
    """Navigate a new page: (status, body text), or (None, the net::ERR_ name) on failure."""
    page = await browser.contexts[0].new_page()
    try:
        response = await page.goto(url, timeout=15_000)
        return (response.status if response else None), await page.inner_text("body")
    except Error as exc:
        return None, next(w for w in str(exc).split() if w.startswith("net::ERR_"))
    finally:
        await page.close()


@pytest.fixture
def data_dir(suite_resources: Any) -> Path:
    path: Path = suite_resources.new_data_dir()
    return path


async def test_a_loopback_page_loads_through_the_proxy_and_is_metered(data_dir: Path) -> None:
    with origin_server() as origin:
        async with browser_behind(LOOPBACK_ALLOWED, data_dir) as (proxy, browser):
            status, text = await goto(browser, origin.url("/"))
            assert (status, text) == (200, "through-the-proxy")
            assert proxy.meter.to_browser > origin.body_bytes
            assert proxy.meter.from_browser > 0
    assert "/" in origin.paths


async def test_a_5mb_page_is_metered_within_1_percent_separately_per_browser(
    suite_resources: Any,
) -> None:
    with origin_server() as origin:
        async with (
            browser_behind(LOOPBACK_ALLOWED, suite_resources.new_data_dir()) as (big, browser_a),
            browser_behind(LOOPBACK_ALLOWED, suite_resources.new_data_dir()) as (small, browser_b),
        ):
            assert (await goto(browser_a, origin.url("/big")))[0] == 200
            assert (await goto(browser_b, origin.url("/")))[0] == 200
            await asyncio.sleep(0.5)  # let favicon requests finish
            assert abs(big.meter.total - FIVE_MB) / FIVE_MB < 0.01
            assert small.meter.total < 20_000


async def test_loopback_and_metadata_are_blocked_by_default_with_the_block_page(
    data_dir: Path,
) -> None:
    with origin_server() as origin:
        async with browser_behind(GUARDED, data_dir) as (proxy, browser):
            status, text = await goto(browser, origin.url("/"))
            assert status == 403
            assert "Blocked by browserfleet egress policy" in text
            status, text = await goto(browser, "http://169.254.169.254/latest/meta-data/")
            assert (status, "cloud metadata" in text) == (403, True)
            # A blocked tunnel is a failed tunnel: Chromium shows no proxy-supplied page for it.
            assert await goto(browser, "https://localhost:8443/") == (
                None,
                "net::ERR_TUNNEL_CONNECTION_FAILED",
            )
            assert proxy.meter.blocked >= 3
    assert origin.paths == []


async def test_http_and_https_pages_load_through_the_authenticated_upstream(
    data_dir: Path, upstream: tuple[int, Path], tls_context: ssl.SSLContext
) -> None:
    port, log = upstream
    route = HttpUpstream("127.0.0.1", port, USER, PASSWORD)
    with origin_server() as plain, origin_server(tls_context) as secure:
        async with browser_behind(route, data_dir, "--ignore-certificate-errors") as (_, browser):
            assert await goto(browser, plain.url("/")) == (200, "through-the-proxy")
            assert await goto(browser, secure.url("/")) == (200, "through-the-proxy")
    # proxy.py writes its access log when a connection closes: poll for both lines.
    lines = (
        f"GET 127.0.0.1:{plain.server_address[1]}/",
        f"CONNECT 127.0.0.1:{secure.server_address[1]}",
    )
    await until(
        lambda: all(line in log.read_text() for line in lines),
        timeout=10,
        what=f"{lines} in the upstream's access log",
    )


async def test_a_wrong_upstream_password_fails_with_invalid_auth_credentials(
    data_dir: Path, upstream: tuple[int, Path], tls_context: ssl.SSLContext
) -> None:
    route = HttpUpstream("127.0.0.1", upstream[0], USER, "wrong-password")
    with origin_server() as plain, origin_server(tls_context) as secure:
        async with browser_behind(route, data_dir, "--ignore-certificate-errors") as (_, browser):
            expected = (None, "net::ERR_INVALID_AUTH_CREDENTIALS")
            assert await goto(browser, plain.url("/")) == expected
            assert await goto(browser, secure.url("/")) == expected
    assert plain.paths == secure.paths == []


async def test_an_unreachable_upstream_fails_fast_and_nothing_reaches_the_origin(
    data_dir: Path, tls_context: ssl.SSLContext
) -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # bound, never listening: connections are refused
        route = HttpUpstream("127.0.0.1", dead_port, USER, PASSWORD)
        with origin_server() as plain, origin_server(tls_context) as secure:
            async with browser_behind(route, data_dir, "--ignore-certificate-errors") as (
                _,
                browser,
            ):
                started = time.monotonic()
                assert await goto(browser, secure.url("/")) == (
                    None,
                    "net::ERR_TUNNEL_CONNECTION_FAILED",
                )
                status, text = await goto(browser, plain.url("/"))
                assert time.monotonic() - started < 5
                assert (status, "upstream proxy is unreachable" in text) == (502, True)
        assert plain.paths == secure.paths == []
