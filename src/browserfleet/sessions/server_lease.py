"""This server's lease on its sessions: its last heartbeat that reached the database.

Pure state, on the event loop's clock. The reaper renews it with each heartbeat and fences the
server (ends its browsers) once it has run out; the service starts no session while it is not
held. A server that wakes from a freeze has an expired lease until its next heartbeat lands:
another server may be settling its sessions as of that old heartbeat, and would settle a
session started meanwhile just the same.
"""

from __future__ import annotations

from datetime import datetime


class ServerLease:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._began = 0.0  # when the last heartbeat that reached the database began
        self._at: datetime | None = None  # the time that heartbeat wrote
        self._fenced_at: float | None = None  # when the server last fenced itself

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
