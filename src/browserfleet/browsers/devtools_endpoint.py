"""Waiting for a starting Chromium's DevTools endpoint: port file, /json/version, first page.

Every wait polls quickly and gives up as soon as the process exits; the caller bounds the
whole sequence with its launch timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from browserfleet.cdp.dial import DevtoolsDialer, get_json
from browserfleet.errors import BrowserLaunchFailed

POLL_INTERVAL_S = 0.02
PORT_FILE = "DevToolsActivePort"


@dataclass(frozen=True, slots=True)
class DevtoolsEndpoint:
    dialer: DevtoolsDialer
    browser_ws_url: str
    first_page_id: str

    @property
    def port(self) -> int:
        return self.dialer.port


async def wait_for_endpoint(
    user_data_dir: Path,
    proc: asyncio.subprocess.Process,
    dial: Callable[[int], DevtoolsDialer],
) -> DevtoolsEndpoint:
    """Wait until the browser announces its port (in user_data_dir, a host path), answers over
    HTTP through `dial(port)` and shows its first page."""
    dialer = dial(await _wait_for_port(user_data_dir / PORT_FILE, proc))
    version = await _poll_json(dialer, "/json/version", proc)
    while True:
        pages = [t for t in _objects(await _poll_json(dialer, "/json/list", proc)) if _is_page(t)]
        if pages:
            break
        await asyncio.sleep(POLL_INTERVAL_S)
    if len(pages) != 1:
        raise BrowserLaunchFailed(f"expected one page at start, found {len(pages)}")
    ws_url = version.get("webSocketDebuggerUrl") if isinstance(version, dict) else None
    if not isinstance(ws_url, str):
        raise BrowserLaunchFailed(f"/json/version has no webSocketDebuggerUrl: {version}")
    return DevtoolsEndpoint(dialer, ws_url, str(pages[0]["id"]))


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


async def _poll_json(dialer: DevtoolsDialer, path: str, proc: asyncio.subprocess.Process) -> object:
    while True:
        _check_alive(proc)
        try:
            return await get_json(dialer, path)
        except (OSError, ValueError):
            pass  # not listening yet, or not answering in full yet
        await asyncio.sleep(POLL_INTERVAL_S)


def _objects(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_page(target: dict[str, object]) -> bool:
    # headless=new also lists "browser_ui" targets (its hidden omnibox popups).
    return target.get("type") == "page"


def _check_alive(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        raise BrowserLaunchFailed(f"chromium exited with code {proc.returncode} while starting")
