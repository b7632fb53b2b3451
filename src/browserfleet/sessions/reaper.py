"""The supervisor loop: timeouts, stops requested elsewhere, heartbeats and orphan recovery.

Everything it acts on is read from the store each sweep, so a restarted or second instance
reaches the same decisions; nothing depends on in-process state alone. A sweep is one query; the
next one comes at the earliest timeout it saw, or after the sweep interval (which bounds how
late a stop asked on another instance, or a session created since, is noticed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from browserfleet.ids import SessionId
from browserfleet.sessions.model import Session, SessionStatus, StopReason
from browserfleet.sessions.ports import BrowserLauncher, SessionStore
from browserfleet.sessions.service import Clock, SessionService
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

# An instance whose heartbeat is older than this many intervals is presumed dead.
STALE_HEARTBEATS = 3


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What one sweep does: sessions to stop (and why, and as of when), and when to look again."""

    stops: tuple[tuple[Session, StopReason, datetime], ...]
    next_timeout: datetime | None  # the earliest timeout still to come; None: no active session


def plan_sweep(live: Sequence[Session], now: datetime) -> SweepPlan:
    """Pure: from this instance's live sessions, the stops due at `now` and the next deadline."""
    stops: list[tuple[Session, StopReason, datetime]] = []
    upcoming: list[datetime] = []
    for session in live:
        if session.status is SessionStatus.STOPPING:
            stops.append((session, session.stop_reason or StopReason.USER, now))
        elif session.status is SessionStatus.ACTIVE:
            if session.timeout_at <= now:
                stops.append((session, StopReason.TIMEOUT, session.timeout_at))
            else:
                upcoming.append(session.timeout_at)
    return SweepPlan(tuple(stops), min(upcoming, default=None))


@dataclass(frozen=True, slots=True)
class ReaperConfig:
    sweep_interval_s: float
    heartbeat_interval_s: float
    sessions_dir: Path


class Reaper:
    def __init__(
        self,
        service: SessionService,
        store: SessionStore,
        launcher: BrowserLauncher,
        config: ReaperConfig,
        clock: Clock,
    ) -> None:
        self._service = service
        self._store = store
        self._launcher = launcher
        self._config = config
        self._clock = clock
        self._tasks = TaskSet("reaper")
        self._host = socket.gethostname()

    async def start(self) -> None:
        """Register this instance, recover what a crashed predecessor left, start the loops."""
        await self._heartbeat()
        await self.recover_orphans()
        keep = await self._store.live_pids() | self._service.local_pids()
        killed = self._launcher.kill_strays(self._config.sessions_dir, keep)
        if killed:
            log.warning("killed %d leftover browser(s) from an earlier run", killed)
        await self._remove_leftover_dirs()
        self._tasks.spawn(self._sweep_loop(), name="sweep")
        self._tasks.spawn(self._heartbeat_loop(), name="heartbeat")

    async def _remove_leftover_dirs(self) -> None:
        """Session dirs of sessions that are no longer live (a crash left them) are deleted."""
        root = self._config.sessions_dir
        if not root.is_dir():
            return
        for entry in root.iterdir():
            try:
                session_id = SessionId(uuid.UUID(entry.name))
            except ValueError:
                continue
            session = await self._store.get_any(session_id)
            if session is None or not session.is_live:
                log.info("removing leftover session dir", extra={"session_id": entry.name})
                await asyncio.to_thread(self._launcher.remove_workdir, entry)

    async def stop_loops(self) -> None:
        """First step of shutdown: no new stops are started after this."""
        await self._tasks.close()

    async def deregister(self) -> None:
        """Last step of shutdown, once every session of this instance is stopped."""
        await self._store.forget_instance(self._service.instance)

    async def _heartbeat(self) -> None:
        await self._store.heartbeat(self._service.instance, self._host, os.getpid(), self._clock())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s)
            try:
                await self._heartbeat()
                await self.recover_orphans()
            except Exception:
                log.exception("heartbeat failed")

    async def _sweep_loop(self) -> None:
        while True:
            delay = self._config.sweep_interval_s
            try:
                next_timeout = await self.sweep()
            except Exception:
                log.exception("sweep failed")
            else:
                if next_timeout is not None:
                    until = (next_timeout - self._clock()).total_seconds()
                    delay = min(delay, max(until, 0.0))
            await asyncio.sleep(delay)

    async def sweep(self) -> datetime | None:
        """Stop expired sessions and finish stops other instances asked of us; return the
        earliest timeout still to come."""
        now = self._clock()
        plan = plan_sweep(await self._store.live_owned_by(self._service.instance), now)
        for session, reason, at in plan.stops:
            self._stop_soon(session.id, reason, at)
        return plan.next_timeout

    def _stop_soon(self, session_id: SessionId, reason: StopReason, at: datetime) -> None:
        if self._service.is_tearing_down(session_id):
            return
        self._tasks.spawn(
            self._service.stop_local(session_id, reason, at), name=f"stop-{session_id}"
        )

    async def _forget_dead_neighbours(self) -> None:
        """An instance on this host whose process is gone is dead now, heartbeat or not."""
        for instance in await self._store.instances():
            if instance.id == self._service.instance or instance.host != self._host:
                continue
            if not _is_server_process(instance.pid):
                await self._store.forget_instance(instance.id)

    async def recover_orphans(self) -> None:
        """Stop and bill live sessions whose owning instance is gone."""
        await self._forget_dead_neighbours()
        now = self._clock()
        stale_before = now - timedelta(seconds=self._config.heartbeat_interval_s * STALE_HEARTBEATS)
        for session in await self._store.orphaned(stale_before, self._service.instance):
            log.warning("stopping orphaned session", extra={"session_id": str(session.id)})
            try:
                await self._service.stop_abandoned(session, now)
            except Exception:
                log.exception("could not stop orphan", extra={"session_id": str(session.id)})


def _is_server_process(pid: int) -> bool:
    """True if pid runs a browserfleet server (a recycled pid of another program is not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"browserfleet" in cmdline
