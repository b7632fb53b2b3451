"""Waiting for a starting Chromium's DevTools endpoint: port file, /json/version, first page.

Every wait polls quickly and gives up as soon as the process exits; the caller bounds the
whole sequence with its launch timeout.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from browserfleet.errors import BrowserLaunchFailed

POLL_INTERVAL_S = 0.02
PORT_FILE = "DevToolsActivePort"


@dataclass(frozen=True, slots=True)
class DevtoolsEndpoint:
    port: int
    browser_ws_url: str
    first_page_id: str


async def wait_for_endpoint(
    user_data_dir: Path, proc: asyncio.subprocess.Process
) -> DevtoolsEndpoint:
    """Wait until the browser announces its port, answers over HTTP and shows its first page."""
    port = await _wait_for_port(user_data_dir / PORT_FILE, proc)
    version = await _poll_json(port, "/json/version", proc)
    while True:
        pages = [t for t in _objects(await _poll_json(port, "/json/list", proc)) if _is_page(t)]
        if pages:
            break
        await asyncio.sleep(POLL_INTERVAL_S)
    if len(pages) != 1:
        raise BrowserLaunchFailed(f"expected one page at start, found {len(pages)}")
    ws_url = version.get("webSocketDebuggerUrl") if isinstance(version, dict) else None
    if not isinstance(ws_url, str):
        raise BrowserLaunchFailed(f"/json/version has no webSocketDebuggerUrl: {version}")
    return DevtoolsEndpoint(port, ws_url, str(pages[0]["id"]))


async def _wait_for_port(port_file: Path, proc: asyncio.subprocess.Process) -> int:
    while True:
        _check_alive(proc)
        if (port := _read_port(port_file)) is not None:
            return port
        await asyncio.sleep(POLL_INTERVAL_S)


def _read_port(port_file: Path) -> int | None:
    # Chromium writes "<port>\n<browser ws path>"; a half-written file has one line. The file
    # is tiny and on local disk: reading it inline is cheaper than a thread hop.
    try:
        lines = port_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    return int(lines[0]) if len(lines) >= 2 and lines[0].isdigit() else None


async def _poll_json(port: int, path: str, proc: asyncio.subprocess.Process) -> object:
    while True:
        _check_alive(proc)
        try:
            return await _get_json(port, path)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass  # not listening yet, or not answering in full yet
        await asyncio.sleep(POLL_INTERVAL_S)


async def _get_json(port: int, path: str) -> object:
    """One HTTP GET on loopback. Not httpx: building its client (an SSL context with the CA
    bundle) costs more than the whole wait, and this must also ignore HTTP(S)_PROXY."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # Chromium's DevTools server speaks HTTP/1.1 only (it rejects HTTP/1.0).
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status, *fields = head.split("\r\n")
        if status.split(" ")[1:2] != ["200"]:
            raise ValueError(f"GET {path}: {status}")
        length = next(
            int(f.split(":", 1)[1]) for f in fields if f.lower().startswith("content-length:")
        )
        return json.loads(await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()


def _objects(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_page(target: dict[str, object]) -> bool:
    # headless=new also lists "browser_ui" targets (its hidden omnibox popups).
    return target.get("type") == "page"


def _check_alive(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        raise BrowserLaunchFailed(f"chromium exited with code {proc.returncode} while starting")
