"""The warm pool: never-used browsers, launched ahead, handed out once and never returned.

Refill runs in the background one launch at a time, resting between launches for as long as
the last one took, so launching never takes more than about half a core from live sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from browserfleet.browsers.launch_spec import LaunchSpec, pool_key
from browserfleet.errors import BrowserLaunchFailed, HostAtCapacity
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

# Re-check for room at least this often while the pool is short (capacity frees up silently).
ROOM_POLL_S = 0.5
FAILURE_BACKOFF_S = 2.0
# A launch right after a take would compete for the CPU with the session being handed out: its
# reshape, the client's connect and first commands, often its whole first page. So refill waits
# this long after the last take while a ready browser is left for the next create, and only
# EMPTY_AFTER_TAKE_S once none is.
AFTER_TAKE_S = 1.0
EMPTY_AFTER_TAKE_S = 0.3


class PooledBrowser(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def workdir(self) -> Path: ...

    async def wait_closed(self) -> int: ...

    async def close(self) -> None: ...


B = TypeVar("B", bound=PooledBrowser)
B_co = TypeVar("B_co", bound=PooledBrowser, covariant=True)


class PoolLauncher(Protocol[B_co]):
    async def launch(self, spec: LaunchSpec, workdir: Path) -> B_co: ...


class WarmPool(Generic[B]):
    def __init__(
        self,
        launcher: PoolLauncher[B],
        spec: LaunchSpec,
        *,
        size: int,
        root: Path,
        has_room: Callable[[], bool],
        on_change: Callable[[int, int], None] = lambda ready, launching: None,
        on_launch: Callable[[bool], None] = lambda succeeded: None,
    ) -> None:
        self._on_launch = on_launch
        self._launcher = launcher
        self._spec = spec
        self._key = pool_key(spec)
        self._size = size
        self._root = root
        self._has_room = has_room
        self._on_change = on_change
        self._ready: deque[B] = deque()
        self._lent: dict[int, B] = {}  # taken and still alive: may come back unused
        self._last_take = 0.0
        self._launching = 0
        self._wake = asyncio.Event()
        self._tasks = TaskSet("pool")
        self._started = self._refilling = False
        self._closers = TaskSet("pool-evictions")  # drained, never cancelled, at aclose
        self.launches = 0
        self.failures = 0

    @property
    def spec(self) -> LaunchSpec:
        return self._spec

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def total(self) -> int:
        """Browsers the pool holds or is launching: they count against host capacity."""
        return len(self._ready) + self._launching

    def serves(self, spec: LaunchSpec) -> bool:
        return pool_key(spec) == self._key

    def start(self) -> None:
        self._started = True
        if self._size > 0:
            self._refilling = True
            self._tasks.spawn(self._refill(), name="refill")

    @property
    def size(self) -> int:
        return self._size

    def resize(self, size: int) -> None:
        """A new target size (a cluster's nodes came or went): the refill grows the pool to
        it; ready browsers past it are closed."""
        if size == self._size:
            return
        log.info("warm pool: %d browsers (was %d)", size, self._size)
        self._size = size
        while self.total > size and self.evict():
            pass
        if self._started and size > 0 and not self._refilling:
            self._refilling = True
            self._tasks.spawn(self._refill(), name="refill")
        self._changed()

    def take(self, spec: LaunchSpec) -> B | None:
        """A ready browser launched for an equal key, or None (launch cold)."""
        if not self.serves(spec) or not self._ready:
            return None
        browser = self._ready.popleft()
        self._last_take = time.monotonic()
        self._lent[id(browser)] = browser
        self._changed()
        return browser

    def give_back(self, browser: object) -> None:
        """A browser taken but never handed to a client goes back to the front of the line."""
        mine = self._lent.pop(id(browser), None)
        if mine is None:
            raise ValueError("give_back() takes only a browser this pool lent")
        self._ready.appendleft(mine)
        if self.total > self._size:  # refill replaced it meanwhile: the newest one goes
            self.evict()
        self._changed()

    def evict(self) -> bool:
        """Give one pooled browser's room back to sessions; True if one was closed."""
        if not self._ready:
            return False
        browser = self._ready.pop()
        self._closers.spawn(browser.close(), name=f"evict-{browser.pid}")
        self._changed()
        return True

    async def release_one(self) -> bool:
        """Close one pooled browser and wait until it is gone (its room is free then, for a
        launcher that counts room itself); True if there was one."""
        if not self._ready:
            return False
        browser = self._ready.pop()
        self._changed()
        await browser.close()
        return True

    def _changed(self) -> None:
        self._wake.set()
        self._on_change(len(self._ready), self._launching)

    async def _refill(self) -> None:
        while True:
            await self._wait_for_need()
            elapsed = await self._launch_one()
            await asyncio.sleep(elapsed)  # rest as long as we worked: ~50% duty at most

    async def _wait_for_need(self) -> None:
        while True:
            while self.total >= self._size or not self._has_room():
                self._wake.clear()
                try:
                    async with asyncio.timeout(ROOM_POLL_S):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            wait = AFTER_TAKE_S if self._ready else EMPTY_AFTER_TAKE_S
            quiet_for = time.monotonic() - self._last_take
            if quiet_for >= wait:
                return
            self._wake.clear()  # a take or a give-back meanwhile decides again
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait - quiet_for):
                    await self._wake.wait()

    async def _launch_one(self) -> float:
        self._launching += 1
        started = time.monotonic()
        try:
            browser = await self._launcher.launch(self._spec, self._root / str(uuid.uuid4()))
        except BrowserLaunchFailed as error:
            self.failures += 1
            self._on_launch(False)
            log.error("pool launch failed: %s", error)
            return FAILURE_BACKOFF_S
        except HostAtCapacity as error:
            # A launcher that counts its own room (a cluster's slots) has none now.
            log.info("pool launch deferred: %s", error)
            return FAILURE_BACKOFF_S
        finally:
            self._launching -= 1
        self.launches += 1
        self._on_launch(True)
        self._ready.append(browser)
        self._tasks.spawn(self._watch(browser), name=f"watch-{browser.pid}")
        self._changed()
        return time.monotonic() - started

    async def _watch(self, browser: B) -> None:
        """A pooled browser that dies while waiting leaves the pool (and gets replaced)."""
        await browser.wait_closed()
        self._lent.pop(id(browser), None)
        if browser in self._ready:
            log.warning("pooled browser pid %d died while waiting", browser.pid)
            self._ready.remove(browser)
            await browser.close()
            self._changed()

    async def aclose(self) -> None:
        """Stop refilling and close every pooled browser."""
        await self._tasks.close()
        await self._closers.drain()
        browsers = list(self._ready)
        self._ready.clear()
        await asyncio.gather(*(b.close() for b in browsers), return_exceptions=True)
