"""The CDP gateway in front of a real Chromium, served by a real uvicorn, driven by Playwright
and by a raw websocket CDP client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from local_uvicorn import LocalUvicorn
from loopback import RESOLVER_RULES
from pages import Page, PageServer
from playwright.async_api import async_playwright
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from browserfleet.api.routes.cdp import build_cdp_router
from browserfleet.browsers.chromium_args import chromium_args
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.cdp import CdpGatewayServer, ClientPeer, GatewayLimits, RelayLimits
from browserfleet.cdp.dial import LoopbackDialer
from browserfleet.cdp.policy import REVIEWED, RULES
from browserfleet.errors import SessionNotFound
from browserfleet.tasks import TaskSet

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/lib/chromium/chromium"
# The switches browserfleet itself launches with (only loopback resolvable).
SPEC = LaunchSpec(
    mode=HeadlessMode.NEW,
    screen_width=1280,
    screen_height=720,
    extra_args=(RESOLVER_RULES,),
)
TOKEN = "tok-" + "a1" * 16
PAGE_HTML = b"<html><head><title>fleet</title></head><body><p id=msg>hello from loopback</p></body>"
TWENTY_MB = 20 * 1024 * 1024


NOWHERE = PurePosixPath("/nonexistent")


@dataclass(frozen=True, slots=True)
class Route:
    token: str
    devtools: LoopbackDialer
    allow_resizing: bool
    downloads: PurePosixPath = NOWHERE / "downloads"
    uploads: PurePosixPath = NOWHERE / "uploads"


@dataclass(frozen=True, slots=True)
class Chromium:
    process: subprocess.Popen[bytes]
    port: int


@dataclass(frozen=True, slots=True)
class Served:
    gateway: CdpGatewayServer
    base: str
    http: httpx.AsyncClient
    chromium: Chromium
    files: Path

    @property
    def cdp_url(self) -> str:
        return f"{self.base}/cdp/{TOKEN}"

    @property
    def ws_prefix(self) -> str:
        return self.cdp_url.replace("http://", "ws://", 1)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    profile = tmp_path_factory.mktemp("chromium")
    process = subprocess.Popen(
        [CHROMIUM, *chromium_args(SPEC, user_data_dir=profile, no_sandbox=True)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield Chromium(process, _devtools_port(profile / "DevToolsActivePort", process))
    finally:
        _kill_group(process)


def _devtools_port(path: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("chromium exited during startup")
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= 2:
            return int(lines[0])
        time.sleep(0.05)
    raise TimeoutError("chromium wrote no DevToolsActivePort")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


class GatewayPages(PageServer):
    """The test page at every path, and a download at /report.bin."""

    def page(self, path: str) -> Page:
        if path == "/report.bin":
            disposition = ("Content-Disposition", 'attachment; filename="report.bin"')
            return Page(b"bytes", "application/octet-stream", (disposition,))
        return Page(PAGE_HTML, "text/html")


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    with GatewayPages({}) as server:
        yield server.url("/page.html")


LIMITS = GatewayLimits(
    max_websockets=6,
    max_browser_contexts=2,
    max_targets=4,
    relay=RelayLimits(max_message_bytes=32 * 1024 * 1024, max_fragments=64),
)


def route(port: int, files: Path, *, allow_resizing: bool = False) -> Route:
    return Route(
        TOKEN,
        LoopbackDialer(port),
        allow_resizing,
        PurePosixPath(files / "downloads"),
        PurePosixPath(files / "uploads"),
    )


@pytest.fixture
async def served(chromium: Chromium, tmp_path: Path) -> AsyncIterator[Served]:
    for name in ("downloads", "uploads"):
        (tmp_path / name).mkdir()
    async with (
        CdpGatewayServer(limits=LIMITS) as gateway,
        httpx.AsyncClient(timeout=10, trust_env=False) as http,
    ):
        gateway.open(route(chromium.port, tmp_path))
        app = FastAPI()
        app.include_router(build_cdp_router(gateway))
        app.add_api_websocket_route("/echo", _echo)
        app.state.services = SimpleNamespace(public_url=None)  # as app.py's ApiServices
        async with LocalUvicorn(app, gateway) as base:
            yield Served(gateway, base, http, chromium, tmp_path)


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"echo: {await websocket.receive_text()}")
    await websocket.close()


# --- a raw CDP client -------------------------------------------------------------------------


async def cdp(
    ws: ClientConnection, method: str, params: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """Send one command and return its answer, skipping events and other answers."""
    command_id = int(time.monotonic_ns() % 1_000_000_000)
    await ws.send(json.dumps({"id": command_id, "method": method, "params": params or {}, **extra}))
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if answer.get("id") == command_id:
            return answer


async def first_page_ws_url(served: Served) -> str:
    targets = (await served.http.get(f"{served.cdp_url}/json/list")).json()
    return str(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"))


async def evaluate(ws: ClientConnection, expression: str) -> Any:
    answer = await cdp(ws, "Runtime.evaluate", {"expression": expression, "returnByValue": True})
    return answer["result"]["result"]["value"]


# --- discovery --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["json/version", "json/version/"])
async def test_json_version_points_the_debugger_url_at_the_gateway(
    served: Served, path: str
) -> None:
    response = await served.http.get(f"{served.cdp_url}/{path}")
    assert response.status_code == 200
    version = response.json()
    assert version["Browser"].startswith("Chrome/")
    assert version["webSocketDebuggerUrl"].startswith(f"{served.ws_prefix}/devtools/browser/")


@pytest.mark.parametrize("path", ["json", "json/", "json/list", "json/list/"])
async def test_json_list_rewrites_every_target(served: Served, path: str) -> None:
    response = await served.http.get(f"{served.cdp_url}/{path}")
    assert response.status_code == 200
    targets = response.json()
    assert any(t["type"] == "page" for t in targets)
    for target in targets:
        assert target["webSocketDebuggerUrl"].startswith(f"{served.ws_prefix}/devtools/")
        assert f"127.0.0.1:{served.chromium.port}" not in target["devtoolsFrontendUrl"]


@pytest.mark.parametrize("path", ["json/protocol", "json/protocol/"])
async def test_json_protocol_is_served(served: Served, path: str) -> None:
    response = await served.http.get(f"{served.cdp_url}/{path}")
    assert response.status_code == 200
    assert any(d["domain"] == "Page" for d in response.json()["domains"])


async def test_unknown_token_is_not_found(served: Served) -> None:
    response = await served.http.get(f"{served.base}/cdp/nope/json/version")
    assert (response.status_code, response.json()) == (404, {"detail": "Session not found"})
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{served.base.replace('http', 'ws')}/cdp/nope/devtools/browser/x")
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body or b"") == {"detail": "Session not found"}


async def test_unknown_target_is_not_found(served: Served) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{served.ws_prefix}/devtools/page/NOSUCHTARGET")
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body or b"") == {"detail": "Target not found"}


async def test_a_malformed_upgrade_gets_400_with_a_reason(served: Served) -> None:
    port = int(served.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /cdp/{TOKEN}/devtools/browser/x HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(), 5)  # the server hangs up after it
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert "Sec-WebSocket-Key" in json.loads(body)["detail"]


async def test_other_websockets_still_go_to_the_app(served: Served) -> None:
    async with connect(f"{served.base.replace('http', 'ws')}/echo") as ws:
        await ws.send("ping?")
        assert await asyncio.wait_for(ws.recv(), 5) == "echo: ping?"


# --- relay ------------------------------------------------------------------------------------


async def test_playwright_and_a_raw_client_drive_the_browser_together(
    served: Served, page_url: str
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(served.cdp_url)
        try:
            page = browser.contexts[0].pages[0]
            await page.goto(page_url)
            assert await page.text_content("#msg") == "hello from loopback"
            async with connect(await first_page_ws_url(served), max_size=None) as raw:
                assert await evaluate(raw, "document.title") == "fleet"
                assert await evaluate(raw, "1 + 1") == 2
            assert await page.title() == "fleet"
        finally:
            await browser.close()


async def test_browser_close_from_a_client_keeps_the_browser_running(served: Served) -> None:
    version = (await served.http.get(f"{served.cdp_url}/json/version")).json()
    async with connect(version["webSocketDebuggerUrl"], max_size=None) as ws:
        assert (await cdp(ws, "Browser.close"))["result"] == {}
        assert "product" in (await cdp(ws, "Browser.getVersion"))["result"]
    await asyncio.sleep(0.3)
    assert served.chromium.process.poll() is None
    async with connect(version["webSocketDebuggerUrl"], max_size=None) as ws:
        assert "product" in (await cdp(ws, "Browser.getVersion"))["result"]


async def test_a_fragmented_browser_close_is_answered_too(served: Served) -> None:
    version = (await served.http.get(f"{served.cdp_url}/json/version")).json()
    command = json.dumps({"id": 77, "method": "Browser.close", "params": {}})
    async with connect(version["webSocketDebuggerUrl"], max_size=None) as ws:
        await ws.send([command[:9], command[9:20], command[20:]])  # three frames
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer == {"id": 77, "result": {}}
        assert "product" in (await cdp(ws, "Browser.getVersion"))["result"]
    assert served.chromium.process.poll() is None


async def test_a_server_shutdown_closes_cdp_sockets_with_1001(served: Served) -> None:
    app = FastAPI()
    async with LocalUvicorn(app, served.gateway) as base:
        version_path = f"/cdp/{TOKEN}/devtools/browser/"
        browser_id = (
            (await served.http.get(f"{served.cdp_url}/json/version"))
            .json()["webSocketDebuggerUrl"]
            .rsplit("/", 1)[1]
        )
        ws = await connect(f"{base.replace('http', 'ws')}{version_path}{browser_id}")
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    assert served.chromium.process.poll() is None


@pytest.mark.parametrize("allow_resizing", [False, True])
async def test_viewport_changes_only_when_resizing_is_allowed(
    served: Served, allow_resizing: bool
) -> None:
    await served.gateway.close(TOKEN)
    served.gateway.open(route(served.chromium.port, served.files, allow_resizing=allow_resizing))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(served.cdp_url)
        try:
            page = await browser.contexts[0].new_page()
            before = await page.evaluate("window.innerWidth")
            await page.set_viewport_size({"width": before - 123, "height": 321})
            after = await page.evaluate("window.innerWidth")
            assert after == (before - 123 if allow_resizing else before)
            await page.close()
        finally:
            await browser.close()


async def test_device_metrics_override_is_a_no_op_without_resizing(served: Served) -> None:
    async with connect(await first_page_ws_url(served), max_size=None) as ws:
        before = await evaluate(ws, "window.innerWidth")
        metrics = {"width": 333, "height": 222, "deviceScaleFactor": 1, "mobile": False}
        assert (await cdp(ws, "Emulation.setDeviceMetricsOverride", metrics))["result"] == {}
        assert await evaluate(ws, "window.innerWidth") == before


async def test_twenty_megabyte_messages_cross_both_ways(served: Served) -> None:
    async with connect(await first_page_ws_url(served), max_size=None) as ws:
        assert await evaluate(ws, f"'{'y' * TWENTY_MB}'.length") == TWENTY_MB
        big = await evaluate(ws, f"'x'.repeat({TWENTY_MB})")
        assert len(big) == TWENTY_MB
    counters = served.gateway.counters(TOKEN)
    assert counters is not None
    assert counters.bytes_to_browser > TWENTY_MB
    assert counters.bytes_to_client > TWENTY_MB


async def test_counters_track_open_connections(served: Served) -> None:
    url = await first_page_ws_url(served)
    async with connect(url) as first, connect(url) as second:
        await evaluate(first, "1")
        await evaluate(second, "2")
        counters = served.gateway.counters(TOKEN)
        assert counters is not None
        assert counters.open_connections == 2
    for _ in range(100):
        counters = served.gateway.counters(TOKEN)
        if counters is not None and counters.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert counters is not None
    assert counters.open_connections == 0


# --- close(token) -----------------------------------------------------------------------------


async def test_close_ends_every_socket_and_the_token_then_answers_404(served: Served) -> None:
    version = (await served.http.get(f"{served.cdp_url}/json/version")).json()
    page_ws = await first_page_ws_url(served)
    async with (
        async_playwright() as playwright,
        connect(version["webSocketDebuggerUrl"]) as raw_browser,
        connect(page_ws) as raw_page,
    ):
        browser = await playwright.chromium.connect_over_cdp(served.cdp_url)
        disconnected = asyncio.Event()
        browser.on("disconnected", lambda _: disconnected.set())
        started = time.monotonic()
        await served.gateway.close(TOKEN)
        for raw in (raw_browser, raw_page):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(raw.recv(), 2)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
        await asyncio.wait_for(disconnected.wait(), 2)
        assert time.monotonic() - started < 2
        await served.gateway.close(TOKEN)  # a second close is harmless
    assert (await served.http.get(f"{served.cdp_url}/json/version")).status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        await connect(version["webSocketDebuggerUrl"])
    assert refused.value.response.status_code == 404
    assert served.chromium.process.poll() is None


async def test_a_connection_finishing_its_upgrade_after_close_is_refused(served: Served) -> None:
    version = (await served.http.get(f"{served.cdp_url}/json/version")).json()
    browser_id = version["webSocketDebuggerUrl"].rsplit("/", 1)[1]
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=ours)
    tasks = TaskSet("test-race")
    try:
        peer = ClientPeer(transport)  # a socket transport
        serving = tasks.spawn(
            served.gateway.relay(TOKEN, "browser", browser_id, "dGhlIHNhbXBsZSBub25jZQ==", peer),
            name="relay",
        )
        await asyncio.sleep(0)  # relay() is now connecting to Chrome
        await served.gateway.close(TOKEN)
        with pytest.raises(SessionNotFound):
            await serving
        assert peer.relay is None  # never upgraded
    finally:
        await tasks.close()
        transport.close()
        theirs.close()


# --- the policy, attacked through the real gateway and Chromium ----------------------------


# Puts a command past the gateway's off-loop threshold (1 MiB): judged on a worker thread.
BIG_PADDING = "x" * (2 * 1024 * 1024)


async def browser_ws(served: Served) -> ClientConnection:
    version = (await served.http.get(f"{served.cdp_url}/json/version")).json()
    return await connect(version["webSocketDebuggerUrl"], max_size=None)


async def raw_answer(ws: ClientConnection, text: str, command_id: int) -> dict[str, Any]:
    await ws.send(text)
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if answer.get("id") == command_id:
            return answer


@pytest.mark.parametrize(
    "attack",
    [
        '{"id": 1.0, "method": "Browser.close"}',
        '{"id": 1e0, "method": "Browser.close"}',
        '{"id": 2, "method": "Browser.crash"}',
        '{"id": 2, "method": "Browser.crashGpuProcess"}',
        '{"id": 2, "method": "Browser.\\u0063lose"}',
        '{"id": 2, "method": "Runtime.evaluate", "method": "Browser.close"}',
        '[{"id": 2, "method": "Browser.close"}]',
        # Over the size judged on a worker thread: the same policy, off the loop.
        pytest.param(
            '{"id": 2, "method": "Browser.close", "params": {"pad": "' + BIG_PADDING + '"}}',
            id="big-browser-close",
        ),
        pytest.param(
            '{"id": 2, "method": "Runtime.evaluate", "method": "Browser.close", "p": "'
            + BIG_PADDING
            + '"}',
            id="big-duplicate-method",
        ),
    ],
)
async def test_no_spelling_of_ending_the_browser_ends_it(served: Served, attack: str) -> None:
    async with await browser_ws(served) as ws:
        await ws.send(attack)
        json.loads(await asyncio.wait_for(ws.recv(), 5))  # an answer (a result or an error)
        assert "product" in (await cdp(ws, "Browser.getVersion"))["result"]
    await asyncio.sleep(0.5)  # a crash would take a moment to show
    assert served.chromium.process.poll() is None
    async with await browser_ws(served) as ws:
        assert "product" in (await cdp(ws, "Browser.getVersion"))["result"]


async def test_page_javascript_gets_no_cdp_binding(served: Served) -> None:
    async with connect(await first_page_ws_url(served), max_size=None) as page:
        target_id = (await cdp(page, "Target.getTargetInfo"))["result"]["targetInfo"]["targetId"]
        async with await browser_ws(served) as ws:
            answer = await cdp(ws, "Target.exposeDevToolsProtocol", {"targetId": target_id})
        assert "not allowed" in answer["error"]["message"]
        assert await evaluate(page, "typeof window.cdp") == "undefined"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("Page.navigate", {"url": "file:///etc/passwd"}),
        ("Page.navigate", {"url": " FILE:///etc/hostname"}),
        ("Page.navigate", {"url": "view-source:file:///etc/passwd"}),
        ("Page.navigate", {"url": "chrome://version"}),
        ("Page.navigate", {"url": "file:///etc/passwd", "referrer": "https://a/" + BIG_PADDING}),
        (
            "Network.loadNetworkResource",
            {
                "url": "file:///etc/passwd",
                "frameId": "F",
                "options": {"disableCache": True, "includeCredentials": False},
            },
        ),
    ],
)
async def test_local_and_privileged_urls_are_refused(
    served: Served, method: str, params: dict[str, Any]
) -> None:
    async with connect(await first_page_ws_url(served), max_size=None) as page:
        answer = await cdp(page, method, params)
        assert "blocked" in answer["error"]["message"]
        assert not str(await evaluate(page, "location.href")).startswith(("file:", "chrome:"))
    async with await browser_ws(served) as ws:
        answer = await cdp(ws, "Target.createTarget", {"url": "file:///etc/passwd"})
        assert "blocked" in answer["error"]["message"]


async def test_downloads_land_in_the_sessions_directory_whatever_path_is_asked(
    served: Served, page_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    async with await browser_ws(served) as ws:
        answer = await cdp(
            ws,
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(elsewhere), "eventsEnabled": True},
        )
        assert answer["result"] == {}
        async with connect(await first_page_ws_url(served), max_size=None) as page:
            await cdp(page, "Page.navigate", {"url": page_url.replace("page.html", "report.bin")})
        # Saved under its GUID (allowAndName): naming it is the media service's, not here.
        directory = served.files / "downloads"
        for _ in range(200):
            landed = [p for p in directory.iterdir() if p.read_bytes() == b"bytes"]
            if landed:
                break
            await asyncio.sleep(0.05)
        assert [len(p.name) for p in landed] == [36]
        assert not any(elsewhere.iterdir())


async def test_only_uploaded_files_can_be_set_on_a_file_input(served: Served) -> None:
    (served.files / "uploads" / "cv.txt").write_text("mine")
    async with connect(await first_page_ws_url(served), max_size=None) as page:
        await evaluate(page, "document.body.innerHTML = '<input type=file id=f>'; 1")
        document = (await cdp(page, "DOM.getDocument"))["result"]["root"]["nodeId"]
        node = await cdp(page, "DOM.querySelector", {"nodeId": document, "selector": "#f"})
        node_id = node["result"]["nodeId"]
        refused = await cdp(
            page, "DOM.setFileInputFiles", {"files": ["/etc/passwd"], "nodeId": node_id}
        )
        assert "uploads" in refused["error"]["message"]
        traversal = str(served.files / "uploads" / ".." / "downloads" / "x")
        refused = await cdp(
            page, "DOM.setFileInputFiles", {"files": [traversal], "nodeId": node_id}
        )
        assert "error" in refused
        ours = str(served.files / "uploads" / "cv.txt")
        ok = await cdp(page, "DOM.setFileInputFiles", {"files": [ours], "nodeId": node_id})
        assert ok["result"] == {}
        assert await evaluate(page, "document.getElementById('f').files[0].name") == "cv.txt"


async def test_a_context_with_its_own_proxy_is_refused(served: Served) -> None:
    async with await browser_ws(served) as ws:
        answer = await cdp(ws, "Target.createBrowserContext", {"proxyServer": "http://127.0.0.1:9"})
        assert "proxyServer" in answer["error"]["message"]
        contexts = (await cdp(ws, "Target.getBrowserContexts"))["result"]["browserContextIds"]
        assert contexts == []


async def test_contexts_and_targets_stop_at_their_caps(served: Served) -> None:
    async with await browser_ws(served) as ws:
        made = [
            await cdp(ws, "Target.createBrowserContext", {"disposeOnDetach": True})
            for _ in range(LIMITS.max_browser_contexts + 1)
        ]
        assert [("result" in m) for m in made] == [True] * LIMITS.max_browser_contexts + [False]
        assert "maximum of 2 browser contexts" in made[-1]["error"]["message"]
        targets = [
            await cdp(ws, "Target.createTarget", {"url": "about:blank"})
            for _ in range(LIMITS.max_targets + 1)
        ]
        refused = [t for t in targets if "error" in t]
        assert refused and "targets" in refused[0]["error"]["message"]
        pages = [
            t
            for t in (await cdp(ws, "Target.getTargets"))["result"]["targetInfos"]
            if t["type"] == "page"
        ]
        assert len(pages) == LIMITS.max_targets
        for target in targets:
            if "result" in target:
                await cdp(ws, "Target.closeTarget", {"targetId": target["result"]["targetId"]})


async def test_the_websocket_after_the_cap_is_refused_cleanly(served: Served) -> None:
    version = (await served.http.get(f"{served.cdp_url}/json/version")).json()
    url = version["webSocketDebuggerUrl"]
    opened = [await connect(url) for _ in range(LIMITS.max_websockets)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        assert refused.value.response.status_code == 429
        assert (
            "Too many CDP connections" in json.loads(refused.value.response.body or b"")["detail"]
        )
    finally:
        for ws in opened:
            await ws.close()
    for _ in range(200):  # a slot frees up once a socket is gone
        counters = served.gateway.counters(TOKEN)
        if counters is not None and counters.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    async with connect(url) as again:
        assert "product" in (await cdp(again, "Browser.getVersion"))["result"]


async def test_an_oversized_message_and_an_endless_fragment_stream_close_with_1009(
    served: Served,
) -> None:
    async with await browser_ws(served) as ws:
        await ws.send("x" * (LIMITS.relay.max_message_bytes + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    async def endless() -> AsyncIterator[str]:
        for _ in range(10_000):
            yield "{"

    async with await browser_ws(served) as ws:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(endless())
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert served.chromium.process.poll() is None


PATHISH = re.compile(r"(?i)url|path|file|dir|folder|origin|proxy|host|port|location|address")


def _path_like(
    params: list[dict[str, Any]], types: dict[str, dict[str, Any]], seen: set[str]
) -> bool:
    for param in params:
        if PATHISH.search(param["name"]):
            return True
        ref = param.get("$ref") or param.get("items", {}).get("$ref")
        if ref and ref not in seen and ref in types:
            seen.add(ref)
            if _path_like(types[ref].get("properties", []), types, seen):
                return True
    return False


async def test_every_command_taking_a_path_or_url_is_classified(served: Served) -> None:
    """Fails when Chromium's protocol has a command with a path-, URL-, host- or port-like
    parameter that the policy table neither rules on nor lists as reviewed."""
    protocol = (await served.http.get(f"{served.cdp_url}/json/protocol")).json()
    types = {f"{d['domain']}.{t['id']}": t for d in protocol["domains"] for t in d.get("types", [])}
    unclassified = []
    for domain in protocol["domains"]:
        local = {**types, **{t["id"]: t for t in domain.get("types", [])}}
        for command in domain.get("commands", []):
            method = f"{domain['domain']}.{command['name']}"
            taken = _path_like(command.get("parameters", []), local, set())
            if taken and method not in RULES and method not in REVIEWED:
                unclassified.append(method)
    assert unclassified == []


# --- idle_for (connect-on-demand) -------------------------------------------------------------


async def test_idle_for_waits_while_a_client_is_connected_then_for_the_grace(
    served: Served,
) -> None:
    url = await first_page_ws_url(served)
    tasks = TaskSet("test")
    try:
        async with connect(url) as ws:
            await evaluate(ws, "1")
            watch = tasks.spawn(served.gateway.idle_for(TOKEN, 0.05), name="watch")
            # Many grace periods pass with the client connected: the session is not idle.
            done, _ = await asyncio.wait({watch}, timeout=0.5)
            assert not done
            await evaluate(ws, "2")
        assert await asyncio.wait_for(watch, 10) is True
    finally:
        await tasks.close()


async def test_idle_for_answers_false_at_once_when_the_token_closes(served: Served) -> None:
    tasks = TaskSet("test")
    try:
        watch = tasks.spawn(served.gateway.idle_for(TOKEN, 60.0), name="watch")
        done, _ = await asyncio.wait({watch}, timeout=0.2)
        assert not done  # waiting out its grace period
        await served.gateway.close(TOKEN)
        assert await asyncio.wait_for(watch, 5) is False
    finally:
        await tasks.close()
    assert await served.gateway.idle_for(TOKEN, 60.0) is False
