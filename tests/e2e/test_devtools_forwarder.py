"""The DevTools forwarder between the CDP gateway and a real Chromium, all on loopback.

Playwright drives a page through the real gateway, whose route dials with a `RemoteDialer`, to a
forwarder listening on 127.0.0.3 (a loopback alias: another address, as a node's would be),
which dials the browser. Whoever lacks the forwarder's token never reaches the browser: the
browser's own dialer, wrapped to count, shows it was never dialed for them. A sandboxed browser,
whose DevTools server exists only inside its network namespace, is reached the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from local_uvicorn import LocalUvicorn
from loopback import RESOLVER_RULES, free_port
from pages import PageServer
from playwright.async_api import async_playwright
from polling import until
from sandboxes import make_runner
from websockets.asyncio.client import connect

from browserfleet.api.routes.cdp import build_cdp_router
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.cdp import CdpGatewayServer
from browserfleet.cdp.dial import DevtoolsDialer, LoopbackDialer, get_json
from browserfleet.cluster.forward import DevtoolsForwarder, ForwarderLimits, RemoteDialer
from browserfleet.cluster.preface import MAGIC, PREFACE_BYTES
from browserfleet.sandbox.netns import NetnsDialer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = Path("/usr/lib/chromium/chromium")
HEADLESS_SHELL = Path("/usr/lib/chromium/chromium-headless-shell")
SPEC = LaunchSpec(HeadlessMode.NEW, 1280, 720, extra_args=(RESOLVER_RULES,))
NODE_IP = "127.0.0.3"
TOKEN = "tok-" + "f0" * 16  # the gateway's session token (not the forwarder's)
NOWHERE = PurePosixPath("/nonexistent")
CAP = ForwarderLimits().max_connections


class CountingDialer:
    """The browser's own dialer, counting how often the forwarder dialed the browser."""

    def __init__(self, inner: DevtoolsDialer) -> None:
        self._inner = inner
        self.dials = 0

    @property
    def port(self) -> int:
        return self._inner.port

    async def connect(self) -> socket.socket:
        self.dials += 1
        return await self._inner.connect()


@dataclass(frozen=True, slots=True)
class Route:
    token: str
    devtools: DevtoolsDialer
    allow_resizing: bool = False
    downloads: PurePosixPath = NOWHERE / "downloads"
    uploads: PurePosixPath = NOWHERE / "uploads"


@dataclass(frozen=True, slots=True)
class Forwarded:
    forwarder: DevtoolsForwarder
    browser: CountingDialer
    remote: RemoteDialer


# --- fixtures ---------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium(suite_resources: Any) -> AsyncIterator[ChromiumProcess]:
    launcher = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, launch_timeout_s=30.0)
    root: Path = suite_resources.new_data_dir()
    async with await launcher.launch(SPEC, root / "forwarded") as browser:
        yield browser


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandboxed(suite_resources: Any) -> AsyncIterator[ChromiumProcess]:
    runner = make_runner()
    try:
        launcher = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, enclosures=runner)
        root: Path = suite_resources.new_data_dir()
        async with await launcher.launch(SPEC, root / "sandboxed") as browser:
            yield browser
    finally:
        runner.close()


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    with PageServer() as pages:
        yield pages.url("/")


@contextlib.asynccontextmanager
async def forwarding(dialer: DevtoolsDialer) -> AsyncIterator[Forwarded]:
    browser = CountingDialer(dialer)
    async with DevtoolsForwarder(browser, NODE_IP) as forwarder:
        remote = RemoteDialer(NODE_IP, forwarder.port, forwarder.token, browser.port)
        yield Forwarded(forwarder, browser, remote)


@pytest_asyncio.fixture(loop_scope="module")
async def forwarded(chromium: ChromiumProcess) -> AsyncIterator[Forwarded]:
    async with forwarding(chromium.devtools) as forwarded:
        yield forwarded
    assert not _forwarder_tasks(), "a forwarder task outlived aclose()"


@contextlib.asynccontextmanager
async def gateway_for(dialer: DevtoolsDialer) -> AsyncIterator[str]:
    """The real CDP gateway, served by uvicorn, with one route that dials `dialer`: its CDP
    URL."""
    async with CdpGatewayServer() as gateway:
        gateway.open(Route(TOKEN, dialer))
        app = FastAPI()
        app.include_router(build_cdp_router(gateway))
        app.state.services = SimpleNamespace(public_url=None)  # as app.py's ApiServices
        async with LocalUvicorn(app, gateway) as base:
            yield f"{base}/cdp/{TOKEN}"


@pytest_asyncio.fixture(loop_scope="module")
async def cdp_url(forwarded: Forwarded) -> AsyncIterator[str]:
    async with gateway_for(forwarded.remote) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        yield client


def _forwarder_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("devtools-forwarder:")]


async def _raw(forwarded: Forwarded) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(NODE_IP, forwarded.forwarder.port)


async def _all_it_sends(reader: asyncio.StreamReader) -> bytes:
    """Every byte until the forwarder closes (a reset counts as a close)."""
    received = b""
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


def _assert_never_dialed(forwarded: Forwarded) -> None:
    counters = forwarded.forwarder.counters
    assert (counters.rejected, counters.dialed, forwarded.browser.dials) == (1, 0, 0)


# --- through the gateway ----------------------------------------------------------------------


async def test_playwright_drives_a_page_through_the_gateway_and_the_forwarder(
    forwarded: Forwarded, cdp_url: str, page_url: str
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(cdp_url)
        try:
            page = await browser.contexts[0].new_page()
            await page.goto(page_url)
            assert await page.text_content("#greeting") == "Hello from loopback"
            assert await page.evaluate("1 + 1") == 2
            await page.close()
        finally:
            await browser.close()
    counters = forwarded.forwarder.counters
    assert counters.dialed == forwarded.browser.dials > 0  # every one went through it
    assert (counters.rejected, counters.refused, counters.unreachable) == (0, 0, 0)
    assert counters.bytes_to_browser > 0
    assert counters.bytes_to_client > counters.dialed  # more than the status bytes


async def test_a_sandboxed_browser_is_driven_through_the_forwarder(
    sandboxed: ChromiumProcess,
) -> None:
    assert isinstance(sandboxed.devtools, NetnsDialer)  # reachable only inside its namespace
    async with (
        forwarding(sandboxed.devtools) as forwarded,
        gateway_for(forwarded.remote) as url,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.connect_over_cdp(url)
        try:
            page = await browser.contexts[0].new_page()
            assert await page.evaluate("navigator.userAgent.includes('Chrome/')")
            await page.close()
        finally:
            await browser.close()
        counters = forwarded.forwarder.counters
        assert counters.dialed == forwarded.browser.dials > 0
        assert (counters.rejected, counters.unreachable) == (0, 0)


async def test_json_version_through_the_gateway(
    forwarded: Forwarded, cdp_url: str, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{cdp_url}/json/version")
    assert response.status_code == 200
    version = response.json()
    assert version["Browser"].startswith("Chrome/")
    ws_base = cdp_url.replace("http://", "ws://", 1)
    assert version["webSocketDebuggerUrl"].startswith(f"{ws_base}/devtools/browser/")
    assert forwarded.forwarder.counters.dialed == 1


async def test_an_unreachable_browser_is_answered_so_and_the_gateway_says_so(
    http: httpx.AsyncClient,
) -> None:
    async with (
        forwarding(LoopbackDialer(free_port())) as forwarded,
        gateway_for(forwarded.remote) as url,
    ):
        with pytest.raises(ConnectionRefusedError, match="unreachable"):
            await forwarded.remote.connect()
        response = await http.get(f"{url}/json/version")
        assert (response.status_code, response.json()) == (502, {"detail": "Browser not reachable"})
        counters = forwarded.forwarder.counters
        assert counters.dialed == counters.unreachable == forwarded.browser.dials == 2


# --- who may reach the browser ----------------------------------------------------------------


async def test_a_wrong_token_is_closed_without_a_byte(forwarded: Forwarded) -> None:
    reader, writer = await _raw(forwarded)
    try:
        wrong = bytes(b ^ 0xFF for b in forwarded.forwarder.token)
        writer.write(MAGIC + wrong + b"GET /json/version HTTP/1.1\r\n\r\n")
        assert await _all_it_sends(reader) == b""
    finally:
        writer.close()
    _assert_never_dialed(forwarded)


async def test_another_protocol_is_closed_without_a_byte(forwarded: Forwarded) -> None:
    reader, writer = await _raw(forwarded)
    try:
        writer.write(b"GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await _all_it_sends(reader) == b""
    finally:
        writer.close()
    _assert_never_dialed(forwarded)


async def test_a_short_preface_is_closed_without_a_byte(forwarded: Forwarded) -> None:
    reader, writer = await _raw(forwarded)
    try:
        writer.write((MAGIC + forwarded.forwarder.token)[:-1])
        writer.write_eof()
        assert await _all_it_sends(reader) == b""
    finally:
        writer.close()
    _assert_never_dialed(forwarded)


async def test_a_preface_that_comes_too_late_is_closed_without_a_byte(
    forwarded: Forwarded,
) -> None:
    reader, writer = await _raw(forwarded)
    try:
        preface = MAGIC + forwarded.forwarder.token
        writer.write(preface[:-1])  # all but its last byte, which never comes in time
        started = time.monotonic()
        assert await _all_it_sends(reader) == b""
        assert time.monotonic() - started >= ForwarderLimits().preface_timeout_s - 0.1
    finally:
        writer.close()
    _assert_never_dialed(forwarded)


async def test_the_token_holder_reaches_the_browser_after_strangers_were_refused(
    forwarded: Forwarded,
) -> None:
    reader, writer = await _raw(forwarded)
    writer.write(b"x" * PREFACE_BYTES)
    assert await _all_it_sends(reader) == b""
    writer.close()
    version = await get_json(forwarded.remote, "/json/version")
    assert isinstance(version, dict)
    assert str(version["webSocketDebuggerUrl"]).startswith(
        f"ws://127.0.0.1:{forwarded.remote.port}/devtools/browser/"
    )  # the browser saw its own Host
    counters = forwarded.forwarder.counters
    assert (counters.rejected, counters.dialed, forwarded.browser.dials) == (1, 1, 1)


async def test_bytes_sent_with_the_preface_reach_the_browser_after_it(
    forwarded: Forwarded,
) -> None:
    reader, writer = await _raw(forwarded)
    try:
        request = f"GET /json/version HTTP/1.1\r\nHost: 127.0.0.1:{forwarded.remote.port}\r\n\r\n"
        writer.write(MAGIC + forwarded.forwarder.token + request.encode())  # one write
        async with asyncio.timeout(10):
            assert await reader.readexactly(1) == b"\x00"
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            length = re.search(rb"Content-Length:\s*(\d+)", head, re.IGNORECASE)
            assert length is not None
            body = json.loads(await reader.readexactly(int(length[1])))
    finally:
        writer.close()
    assert body["Browser"].startswith("Chrome/")


# --- the connection cap -----------------------------------------------------------------------


async def test_the_connection_past_the_cap_is_refused_and_the_next_after_one_ends_is_not(
    forwarded: Forwarded,
) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(CAP):
            held.append(await forwarded.remote.connect())
        assert forwarded.forwarder.counters.open == CAP
        with pytest.raises(ConnectionRefusedError, match="forwarder"):
            await forwarded.remote.connect()
        counters = forwarded.forwarder.counters
        assert (counters.refused, counters.dialed, forwarded.browser.dials) == (1, CAP, CAP)
        held.pop().close()
        await until(lambda: forwarded.forwarder.counters.open < CAP, what="a relay to end")
        assert isinstance(await get_json(forwarded.remote, "/json/version"), dict)
    finally:
        for sock in held:
            sock.close()
    await until(lambda: forwarded.forwarder.counters.open == 0, what="every relay to end")


# --- closing ----------------------------------------------------------------------------------


async def test_aclose_ends_live_relays_promptly_and_leaves_no_task(
    chromium: ChromiumProcess,
) -> None:
    async with forwarding(chromium.devtools) as forwarded, gateway_for(forwarded.remote) as url:
        version = await get_json(forwarded.remote, "/json/version")
        assert isinstance(version, dict)
        browser_path = str(version["webSocketDebuggerUrl"]).split("/devtools/", 1)[1]
        ws_url = f"{url.replace('http://', 'ws://', 1)}/devtools/{browser_path}"
        async with connect(ws_url, max_size=None, proxy=None) as ws:
            await ws.send(json.dumps({"id": 1, "method": "Target.getTargets"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["id"] == 1
            raw = await forwarded.remote.connect()
            try:
                # The websocket's relay and the raw one (discovery's has ended or is ending).
                await until(lambda: forwarded.forwarder.counters.open == 2, what="two relays")
                started = time.monotonic()
                await asyncio.wait_for(forwarded.forwarder.aclose(), 10)
                assert time.monotonic() - started < 2.0
                assert not _forwarder_tasks()
                assert forwarded.forwarder.counters.open == 0
                # The raw relay is over: its socket reads the end at once.
                loop = asyncio.get_running_loop()
                with contextlib.suppress(ConnectionResetError):
                    assert await asyncio.wait_for(loop.sock_recv(raw, 1024), 5) == b""
            finally:
                raw.close()
            # The gateway's websocket lost its browser: it is closed too.
            await asyncio.wait_for(ws.wait_closed(), 10)
        with pytest.raises(ConnectionRefusedError):
            await forwarded.remote.connect()  # nothing listens any more
