"""This server's lease on its sessions: its last heartbeat that reached the database.

State on the event loop's clock. The reaper renews it with each heartbeat and fences the
server (ends its browsers) once it has run out; the service starts no session while it is not
held. A server that wakes from a freeze has an expired lease until a heartbeat lands again:
another server may be settling its sessions as of the old one, and would settle a session
started meanwhile just the same. So a create that finds it lapsed first renews it itself (one
heartbeat, shared by the creates waiting): refused only while the database does not answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

log = logging.getLogger(__name__)


class ServerLease:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._began = 0.0  # when the last heartbeat that reached the database began
        self._at: datetime | None = None  # the time that heartbeat wrote
        self._fenced_at: float | None = None  # when the server last fenced itself
        self._renew: Callable[[], Awaitable[None]] | None = None
        self._renewing = asyncio.Lock()

    def renew_with(self, renew: Callable[[], Awaitable[None]]) -> None:
        """How to renew it on demand: a heartbeat (which calls `renewed` when it lands)."""
        self._renew = renew

    async def ensure_held(self) -> bool:
        """Whether it is held, after a heartbeat of its own when it had lapsed (one at a time:
        the callers waiting meanwhile take its outcome)."""
        loop = asyncio.get_running_loop()
        if self.held(loop.time()):
            return True
        if self._renew is None:
            return False
        async with self._renewing:
            if not self.held(loop.time()):
                try:
                    await self._renew()
                except Exception as error:  # the database does not answer: still lapsed
                    log.warning("the lease could not be renewed: %r", error)
        return self.held(loop.time())

    @property
    def last_written(self) -> datetime | None:
        """The time the last renewing heartbeat wrote (what fenced sessions are billed to)."""
        return self._at

    def age(self, now: float) -> float:
        return now - self._began

    def renewed(self, began: float, at: datetime) -> None:
        """A heartbeat that began at `began` wrote `at`; one that began before the last fence
        renews nothing (the browsers it vouched for are gone)."""
        if self._fenced_at is None or began > self._fenced_at:
            self._began, self._at, self._fenced_at = began, at, None

    def held(self, now: float) -> bool:
        """Whether this server may start a session: renewed within the TTL, not fenced since."""
        return self._at is not None and self._fenced_at is None and not self._expired(now)

    def due_to_fence(self, now: float) -> bool:
        """Expired once held, and not fenced since: the server must end its browsers now."""
        return self._fenced_at is None and self._at is not None and self._expired(now)

    def fenced(self, now: float) -> None:
        self._fenced_at = now

    def _expired(self, now: float) -> bool:
        return now - self._began > self._ttl_s
