"""The supervisor loop: timeouts, stops requested elsewhere, heartbeats and orphan recovery.

Everything it acts on is read from the store each sweep, so a restarted or second instance
reaches the same decisions; nothing depends on in-process state alone. A sweep is one query; the
next one comes at the earliest timeout it saw, or after the sweep interval (which bounds how
late a stop asked on another instance, or a session created since, is noticed).

Every intermediate status has a deadline, after which the row is a fault to repair, never
something to skip: STARTING ends when its create is gone (a crash) or past STARTING_DEADLINE
(the create is cancelled); STOPPING is retried every sweep until it is STOPPED; the live
sessions of a dead instance are settled as of its last heartbeat.

Fencing, two ways. An instance's heartbeat is its lease on its sessions. One that cannot renew
it (cut off from the database) for FENCE_HEARTBEATS intervals ends its browsers itself, a full
interval before any other instance may judge it dead (STALE_HEARTBEATS): a tenant never keeps
a browser whose session another instance has stopped and billed. When the database answers
again, it settles those sessions as of its last heartbeat, unless another instance already
has. An instance that could not fence itself (frozen) finds at its next sweep that its
sessions belong to another instance now, stopped and billed; it closes their browsers without
touching their rows. Both assume the instances' clocks agree to well within an interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from browserfleet.clock import Clock
from browserfleet.ids import SessionId
from browserfleet.sessions.model import Session, SessionStatus, StopReason
from browserfleet.sessions.ports import BrowserLauncher, SessionStore
from browserfleet.sessions.server_lease import ServerLease
from browserfleet.sessions.service import SessionService
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

# An instance whose heartbeat is older than this many intervals is presumed dead.
STALE_HEARTBEATS = 3
# An instance none of whose heartbeats has reached the database for this many intervals ends
# its browsers (it has lost its lease): one interval before others may presume it dead.
FENCE_HEARTBEATS = STALE_HEARTBEATS - 1
# A create still starting after this long is stuck, whatever it waits for (launches queue for
# a slot, then have their own timeout; clients gave up long before).
STARTING_DEADLINE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What one sweep does: sessions to stop (and why, and as of when), STARTING rows to
    repair (no create in flight) or whose create to cancel (past the deadline), and when to
    look again."""

    stops: tuple[tuple[Session, StopReason, datetime], ...]
    next_timeout: datetime | None  # the earliest timeout still to come; None: no active session
    stuck: tuple[Session, ...] = ()
    overdue: tuple[Session, ...] = ()


def plan_sweep(
    live: Sequence[Session],
    now: datetime,
    creating: frozenset[SessionId] = frozenset(),
    fenced: Mapping[SessionId, datetime] | None = None,
) -> SweepPlan:
    """Pure: from this instance's live sessions, the creates it has in flight and the
    sessions it fenced (each with the time it is billed up to), the stops and repairs due at
    `now` and the next deadline."""
    stops: list[tuple[Session, StopReason, datetime]] = []
    upcoming: list[datetime] = []
    stuck: list[Session] = []
    overdue: list[Session] = []
    fenced = fenced or {}
    for session in live:
        if session.status is SessionStatus.STOPPING:
            stops.append((session, session.stop_reason or StopReason.USER, now))
        elif session.status is SessionStatus.ACTIVE:
            if (lease_end := fenced.get(session.id)) is not None:
                stops.append((session, StopReason.FENCED, session.ended_by(lease_end)))
            elif session.timeout_at <= now:
                stops.append((session, StopReason.TIMEOUT, session.timeout_at))
            else:
                upcoming.append(session.timeout_at)
        elif session.status is SessionStatus.STARTING:
            if session.id not in creating:
                stuck.append(session)
            elif now - session.created_at > STARTING_DEADLINE:
                overdue.append(session)
    return SweepPlan(tuple(stops), min(upcoming, default=None), tuple(stuck), tuple(overdue))


@dataclass(frozen=True, slots=True)
class ReaperConfig:
    sweep_interval_s: float
    heartbeat_interval_s: float
    sessions_dir: Path
    public_url: str | None = None  # written with each heartbeat, for the other servers


class Reaper:
    def __init__(
        self,
        service: SessionService,
        store: SessionStore,
        launcher: BrowserLauncher,
        config: ReaperConfig,
        clock: Clock,
        lease: ServerLease | None = None,
    ) -> None:
        self._service = service
        self._store = store
        self._launcher = launcher
        self._config = config
        self._clock = clock
        self._tasks = TaskSet("reaper")
        self._host = socket.gethostname()
        self._lease = lease or ServerLease(config.heartbeat_interval_s * FENCE_HEARTBEATS)
        self._lease.renew_with(self.heartbeat)

    async def start(self) -> None:
        """Register this instance, recover what a crashed predecessor left, start the loops."""
        await self.heartbeat()
        await self.recover_orphans()
        keep = await self._store.live_pids(self._host) | self._service.local_pids()
        killed = self._launcher.kill_strays(
            self._config.sessions_dir, keep, self._service.orphan_workdirs()
        )
        if killed:
            log.warning("killed %d leftover browser(s) from an earlier run", killed)
        await self._remove_leftover_dirs()
        self._tasks.spawn(self._sweep_loop(), name="sweep")
        self._tasks.spawn(self._heartbeat_loop(), name="heartbeat")
        self._tasks.spawn(self._lease_loop(), name="lease")

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
            if self._service.is_tearing_down(session_id):
                continue  # its end (steps, then removal) is running: an adopted orphan's
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

    async def heartbeat(self) -> None:
        """Tell other instances this one is alive (a database write: readiness uses it too),
        which renews its lease, unless it began before this instance last fenced itself."""
        began, at = asyncio.get_running_loop().time(), self._clock()
        await self._store.heartbeat(
            self._service.instance, self._host, os.getpid(), at, self._config.public_url
        )
        self._lease.renewed(began, at)

    async def check_lease(self) -> int:
        """Fence this instance if its lease has run out (see the module's doc): returns how
        many browsers that ended."""
        now = asyncio.get_running_loop().time()
        lease = self._lease
        if not lease.due_to_fence(now) or (billed_to := lease.last_written) is None:
            return 0
        lease.fenced(now)
        ended = await self._service.fence(billed_to)
        log.error(
            "no heartbeat reached the database for %.1fs: ended this server's %d browser(s); "
            "their sessions are settled when it answers again",
            lease.age(now),
            ended,
        )
        return ended

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s / 4)
            try:
                await self.check_lease()
            except Exception:
                log.exception("fencing failed")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s)
            try:
                await self.heartbeat()
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
        """Stop expired sessions and finish stops other instances asked of us, close the
        browsers of sessions taken from us; return the earliest timeout still to come."""
        now = self._clock()
        # In-flight creates first: one that finishes after the query is then still "in
        # flight" here, never mistaken for a stuck row; likewise the browsers running here
        # are noted before the query, so a session created meanwhile is never "taken".
        creating = self._service.creating()
        running = self._service.running_settled()
        fenced = self._service.fenced()
        live = await self._store.live_owned_by(self._service.instance)
        live_ids = {session.id for session in live}
        taken = running - live_ids
        if taken:
            await self._service.release_taken_over(taken)
        if settled_elsewhere := fenced.keys() - live_ids:
            self._service.forget_fenced(frozenset(settled_elsewhere))
        plan = plan_sweep(live, now, creating, fenced)
        for session, reason, at in plan.stops:
            self._stop_soon(session.id, reason, at)
        for session in plan.overdue:
            log.error("create outlived its deadline", extra={"session_id": str(session.id)})
            self._service.cancel_create(session.id)
        for session in plan.stuck:
            await self._service.repair_starting(session)
        return plan.next_timeout

    def _stop_soon(self, session_id: SessionId, reason: StopReason, at: datetime) -> None:
        if self._service.is_tearing_down(session_id):
            return
        self._tasks.spawn(
            self._service.stop_local(session_id, reason, at), name=f"stop-{session_id}"
        )

    async def recover_orphans(self) -> None:
        """Settle the live sessions of instances that are gone, as of their last heartbeat.

        An instance is gone when its heartbeat is stale, or at once when it ran on this host
        and its process no longer exists (a restart after kill -9 need not wait). Its session
        files on this host are removed, and a dead neighbour is forgotten once it owns nothing.
        """
        now = self._clock()
        stale_before = now - timedelta(seconds=self._config.heartbeat_interval_s * STALE_HEARTBEATS)
        others = {i.id: i for i in await self._store.instances() if i.id != self._service.instance}
        self._service.note_instances(others.values())
        dead = frozenset(
            i.id for i in others.values() if i.host == self._host and not _is_server_process(i.pid)
        )
        for session in await self._store.orphaned(stale_before, self._service.instance, dead):
            owner = others.get(session.owner) if session.owner is not None else None
            last_seen = owner.heartbeat_at if owner is not None else now
            log.warning("settling an orphaned session", extra={"session_id": str(session.id)})
            try:
                settled = await self._service.stop_abandoned(
                    session,
                    last_seen,
                    dead_owner=session.owner if owner and owner.id in dead else None,
                )
            except Exception:
                log.exception("could not settle orphan", extra={"session_id": str(session.id)})
                continue
            # A stopped one's files are the service's to read and remove (its end steps);
            # a create caught halfway left files nobody wants.
            if settled is not None and settled.status is not SessionStatus.STOPPED:
                await self._remove_files(settled)
        for instance_id in dead:
            if not await self._store.live_owned_by(instance_id):
                await self._store.forget_instance(instance_id)

    async def _remove_files(self, session: Session) -> None:
        """Kill what may be left of an orphan's browser on this host and delete its files."""
        if session.session_dir:
            await asyncio.to_thread(self._clear_workdir, Path(session.session_dir))

    def _clear_workdir(self, workdir: Path) -> None:
        if workdir.exists():
            self._launcher.kill_strays(workdir, frozenset(), self._service.orphan_workdirs())
            self._launcher.remove_workdir(workdir)


def _is_server_process(pid: int) -> bool:
    """True if pid runs a browserfleet server (a recycled pid of another program is not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"browserfleet" in cmdline
