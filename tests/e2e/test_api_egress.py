"""Per-session egress through the real API: custom upstream proxies with credentials, exact
metering and cost through the SDK, and the guard protecting the host."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fleet_server import Janitor, Server, money, wait_for
from pages import PageServer
from upstream_proxy import proxy_py

pytestmark = pytest.mark.e2e

USER, PASSWORD = "fleet", "s3cret-pass"
BIG = 5_000_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Origin

    def do_GET(self) -> None:
        body = b"x" * BIG if self.path == "/big" else b"<title>origin</title><p>hello</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.server.lock:
            self.server.served.append((self.path, len(body)))

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.served: list[tuple[str, int]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture(scope="module")
def origin() -> Iterator[_Origin]:
    server = _Origin()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """proxy.py with Basic auth: (port, its log, where it records each request)."""
    with proxy_py(USER, PASSWORD, tmp_path_factory.mktemp("upstream")) as found:
        yield found


def test_custom_proxy_with_credentials_carries_the_traffic_and_is_billed(
    server: Server,
    janitor: Janitor,
    playwright: Any,
    origin: _Origin,
    upstream: tuple[int, Path],
) -> None:
    port, log_path = upstream
    proxy = {"host": "127.0.0.1", "port": port, "username": USER, "password": PASSWORD}
    view = janitor.create(server, customProxy=proxy)
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"])
    page = browser.contexts[0].pages[0]
    page.goto(f"http://127.0.0.1:{origin.port}/via-upstream")
    assert page.title() == "origin"
    browser.close()
    wait_for(
        lambda: "via-upstream" in log_path.read_text(errors="replace"),
        10,
        what="upstream saw the request",
    )
    with server.sdk() as sdk:
        live = sdk.browsers.get(view["id"])
        assert money(live.proxy_used_mb or "0") > 0
        stopped = sdk.browsers.stop(view["id"])
    mb = money(stopped.proxy_used_mb or "0")
    assert mb > 0
    # Like the cloud, traffic through the user's own proxy costs nothing by default.
    assert money(stopped.proxy_cost or "0") == 0
    assert PASSWORD not in server.log_tail(400)


def test_a_wrong_proxy_password_fails_in_the_page_and_nothing_goes_direct(
    server: Server,
    janitor: Janitor,
    playwright: Any,
    origin: _Origin,
    upstream: tuple[int, Path],
) -> None:
    port, _ = upstream
    proxy = {"host": "127.0.0.1", "port": port, "username": USER, "password": "wrong"}
    view = janitor.create(server, customProxy=proxy)
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"])
    page = browser.contexts[0].pages[0]
    before = len(origin.served)
    with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):
        page.goto(f"http://127.0.0.1:{origin.port}/never-direct")
    browser.close()
    assert not any(path == "/never-direct" for path, _ in origin.served[before:])


def test_metering_matches_the_bytes_served_per_session(
    server: Server, janitor: Janitor, playwright: Any, origin: _Origin
) -> None:
    views = [janitor.create(server, proxyCountryCode=None) for _ in range(2)]
    for index, view in enumerate(views):
        browser = playwright.chromium.connect_over_cdp(view["cdpUrl"])
        page = browser.contexts[0].pages[0]
        for _ in range(index + 1):  # the second session downloads twice as much
            page.goto(f"http://127.0.0.1:{origin.port}/big", wait_until="load")
            page.goto("about:blank")
        browser.close()
    with server.sdk() as sdk:
        used = [money(sdk.browsers.stop(v["id"]).proxy_used_mb or "0") * 1_000_000 for v in views]
    for index, measured in enumerate(used):
        served = BIG * (index + 1)
        assert abs(measured - served) / served < Decimal("0.01"), (measured, served)


def test_the_guard_blocks_loopback_and_metadata_by_default(
    make_server: Callable[..., Server], janitor: Janitor, playwright: Any, origin: _Origin
) -> None:
    strict = make_server(BROWSERFLEET_EGRESS__ALLOW_NETWORKS="[]")
    view = janitor.create(strict, proxyCountryCode=None)
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"])
    page = browser.contexts[0].pages[0]
    before = len(origin.served)
    page.goto(f"http://127.0.0.1:{origin.port}/private")
    assert "Blocked by browserfleet egress policy" in page.content()
    page.goto("http://169.254.169.254/latest/meta-data/")
    assert "Blocked by browserfleet egress policy" in page.content()
    browser.close()
    assert origin.served[before:] == []
    assert "blocked" in strict.log_tail(200).lower()


def _proxy_user(auth: str | None) -> str:
    assert auth is not None and auth.startswith("Basic ")
    return base64.b64decode(auth.split(" ", 1)[1]).decode().split(":", 1)[0]


def test_a_country_pool_gives_each_session_its_own_sticky_username(
    make_server: Callable[..., Server],
    janitor: Janitor,
    playwright: Any,
    pages: PageServer,
    tmp_path: Path,
) -> None:
    pools = tmp_path / "pools.toml"
    pools.write_text(
        "[countries]\n"
        f'de = ["http://user-{{session}}:pw@127.0.0.1:{pages.port}"]\n'
        '[rates]\nmanaged = "4.25"\n'
    )
    pooled = make_server(BROWSERFLEET_EGRESS__POOLS_FILE=str(pools))
    users = []
    for _ in range(2):
        view = janitor.create(pooled, proxyCountryCode="DE")
        browser = playwright.chromium.connect_over_cdp(view["cdpUrl"])
        page = browser.contexts[0].pages[0]
        before = len(pages.proxy_log.snapshot())
        for _ in range(2):
            page.goto(f"http://127.0.0.1:{pages.port}/proxied")
            assert page.text_content("#marker") == "came-through-the-proxy"
        browser.close()
        seen = {_proxy_user(auth) for _, auth in pages.proxy_log.snapshot()[before:]}
        assert len(seen) == 1  # sticky within the session
        users.append(seen.pop())
        with pooled.sdk() as sdk:
            stopped = sdk.browsers.stop(view["id"])
        mb = money(stopped.proxy_used_mb or "0")
        assert mb > 0
        managed = (mb / 1000 * Decimal("4.25")).quantize(Decimal("0.000001"))
        assert money(stopped.proxy_cost or "0") == managed
    assert users[0] != users[1] and all(u.startswith("user-") for u in users)
    assert "pw@" not in pooled.log_tail(400)


def test_strict_countries_refuse_a_country_without_a_pool(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    pools = tmp_path / "strict.toml"
    pools.write_text('strict_countries = true\n[countries]\nde = ["http://127.0.0.1:9"]\n')
    strict = make_server(BROWSERFLEET_EGRESS__POOLS_FILE=str(pools))
    with strict.http() as client:
        refused = client.post("/browsers", json={"proxyCountryCode": "fr"})
        assert refused.status_code == 422
        detail = refused.json()["detail"]
        assert detail[0]["loc"] == ["body", "proxyCountryCode"]
        assert client.get("/browsers").json()["totalItems"] == 0
