"""Idleness of a proxied connection: it is idle when neither direction moved a byte for `idle_s`.

One direction waiting on the other (a long download with nothing to upload) is not idle. Both
relays (the zero-copy one and the Python one) and the head-reading phase share these rules.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

Read = Callable[[], Awaitable[bytes]]


class IdleTimeout(Exception):
    """No byte moved in either direction for the idle timeout."""


class Activity:
    """When a byte last moved on a connection, shared by both of its pumps."""

    def __init__(self, idle_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.idle_s = idle_s
        self.last = self._loop.time()

    async def read(self, read: Read) -> bytes:
        """read() unless the whole connection stays idle for idle_s; then raise IdleTimeout."""
        while True:
            remaining = self.last + self.idle_s - self._loop.time()
            if remaining <= 0:
                raise IdleTimeout
            try:
                async with asyncio.timeout(remaining):
                    data = await read()
            except TimeoutError:
                continue  # the other direction may have moved meanwhile: re-check
            self.last = self._loop.time()
            return data

    async def drain(self, writer: asyncio.StreamWriter) -> None:
        """Backpressure: wait for the peer to take our bytes, at most idle_s."""
        try:
            async with asyncio.timeout(self.idle_s):
                await writer.drain()
        except TimeoutError:
            raise IdleTimeout from None


async def until_done_or_idle(
    done: asyncio.Future[None], last_moved: Callable[[], float], idle_s: float
) -> None:
    """Wait for `done`, or until `last_moved()` falls idle_s behind, whichever comes first.

    A relay driven by loop callbacks only stamps `last_moved`; this one timer per connection
    (re-armed when it fires early) replaces a timeout per read.
    """
    loop = asyncio.get_running_loop()
    while not done.done():
        remaining = last_moved() + idle_s - loop.time()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await asyncio.shield(done)
