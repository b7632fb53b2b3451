"""Waiting for a condition in async tests: poll it with a deadline, never sleep and hope.

(The sync twin, for tests that drive a server process, is fleet_server.wait_for.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


async def until(
    check: Callable[[], object], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> None:
    """Return once check() is truthy; fail the test if it is not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(interval)


async def settled(
    read: Callable[[], int], quiet_s: float = 0.3, timeout: float = 10.0, what: str = ""
) -> int:
    """read()'s value once it has not changed for `quiet_s` (a writer blocked by full buffers,
    say); fail the test if it still moves after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            pytest.fail(f"{what or read} still changing after {timeout}s")
        await asyncio.sleep(0.01)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last
