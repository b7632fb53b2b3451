"""The session service: create, read, stop. Orchestrates store, browser launcher and CDP gateway.

Correctness lives in the store's atomic, conditional updates; the in-process maps here only
hold this instance's own browser handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from browserfleet.auth.model import Principal
from browserfleet.auth.signing import ServerSecret
from browserfleet.billing import pricing
from browserfleet.browsers.files import DOWNLOADS_DIR
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.clock import Clock
from browserfleet.errors import (
    BrowserLaunchFailed,
    DatabaseUnavailable,
    DomainError,
    HostAtCapacity,
    NotOnCluster,
    ProfileNotFound,
    SessionNotRunningHere,
    TimeoutLimitExceeded,
)
from browserfleet.ids import InstanceId, SessionId
from browserfleet.sessions.ending import (
    EndPhase,
    EndStep,
    SessionEnd,
    run_steps,
    wants_graceful_close,
)
from browserfleet.sessions.model import (
    MAX_TIMEOUT_MINUTES,
    Session,
    SessionPage,
    SessionQuery,
    SessionRequest,
    SessionStatus,
    StopReason,
)
from browserfleet.sessions.ports import (
    BrowserHandle,
    BrowserLauncher,
    BrowserPool,
    CdpGateway,
    EgressPlan,
    EgressPlanner,
    GatewayRoute,
    HostCapacity,
    InstanceRecord,
    NoMetrics,
    ProfileLoad,
    ProfileLoader,
    Received,
    RemoteFiles,
    SessionMetrics,
    SessionStarts,
    SessionStore,
)
from browserfleet.sessions.server_lease import ServerLease
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)
# A browser on a cluster node that cannot take files (never one of cluster.handle's).
CLUSTER_UPLOADS = "this browser's node cannot take uploads"

# How long a stop waits for another instance to tear down a browser it owns.
_REMOTE_STOP_WAIT_S = 30.0
# A stop asked through the API starts the session's end ANSWER_SETTLE_S after its answer is
# sent, or ANSWER_WAIT_S after the stop at most (the answer could not be sent): the browser's
# teardown (a process tree killed, its memory and tmpfs freed) would otherwise compete for the
# CPU with the answer and with the client reading it. Nothing reaches the browser meanwhile:
# its CDP token is revoked and its egress closed before the answer.
ANSWER_WAIT_S = 1.0
ANSWER_SETTLE_S = 0.1


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    instance: InstanceId
    sessions_dir: Path
    mode: HeadlessMode
    extra_args: tuple[str, ...]
    default_concurrent_limit: int
    host_max_browsers: int
    # At shutdown, creates in flight get this long to finish before they are cancelled, and
    # the cancelled ones as long again to settle their rows (a database that does not answer
    # by then is left to the next start's repair).
    shutdown_grace_s: float = 10.0
    stealth: bool = True
    # A browser asked to close gracefully (so it writes its state to disk) gets this long.
    quit_grace_s: float = 5.0
    # At shutdown, the sessions' ends (steps, graceful closes, teardowns) get this long together.
    end_grace_s: float = 60.0
    # The browsers run on cluster nodes: their files (profiles, recordings, downloads,
    # uploads) are never on this host, and a session's directory is the node's path.
    remote_browsers: bool = False
    # A remote browser's downloads fetched at its end, all together at most (its node kept
    # them within the same limit while it ran).
    downloads_max_bytes: int = 512 * 1024 * 1024


@dataclass(slots=True)
class _Running:
    handle: BrowserHandle
    session: Session


@dataclass(frozen=True, slots=True)
class Fenced:
    """A session whose browser this server ended without the database (SessionService.fence):
    what its settlement, once the database answers again, bills."""

    at: datetime  # billed up to here: the last heartbeat of this server the database took
    proxy_bytes: int  # its egress, metered to the end


@dataclass(slots=True)
class Reservation:
    """One create in flight, from before its STARTING row is written until the row is ACTIVE
    or FAILED. A STARTING row of this instance without a reservation is therefore stuck."""

    session: Session  # as reserved: STARTING, charged, holding a project slot
    spec: LaunchSpec
    plan: EgressPlan | None
    began: float  # monotonic time of the request, for the create-latency metric
    task: asyncio.Task[Any] | None  # the create itself, cancelled if it outlives its deadline
    pooled: BrowserHandle | None = None  # a warm browser taken for it, until the session owns it
    reshaping: asyncio.Task[None] | None = None
    profile: ProfileLoad | None = None  # a stored profile to start from (never a pooled browser)


def launch_spec_for(request: SessionRequest, config: RuntimeConfig) -> LaunchSpec:
    """The launch spec a request needs (the warm pool compares these by equality)."""
    return LaunchSpec(
        mode=config.mode,
        screen_width=request.screen_width,
        screen_height=request.screen_height,
        ignore_cert_errors=bool(request.custom_proxy and request.custom_proxy.ignore_cert_errors),
        pdf_viewer=request.pdf_viewer,
        stealth=config.stealth,
        extra_args=config.extra_args,
    )


class SessionService:
    def __init__(
        self,
        store: SessionStore,
        launcher: BrowserLauncher,
        gateway: CdpGateway,
        config: RuntimeConfig,
        clock: Clock,
        pool: BrowserPool | None = None,
        capacity: HostCapacity | None = None,
        metrics: SessionMetrics | None = None,
        planner: EgressPlanner | None = None,
        *,
        secret: ServerSecret,
        end_steps: Sequence[EndStep] = (),
        profiles: ProfileLoader | None = None,
        starts: SessionStarts | None = None,
        lease: ServerLease | None = None,
    ) -> None:
        self._secret = secret
        self._lease = lease
        self._profiles = profiles
        self._end_steps = tuple(end_steps)
        self._starts = starts
        self._planner = planner
        self._pool = pool
        self._capacity = capacity or CountedCapacity(config.host_max_browsers)
        self._metrics = metrics or NoMetrics()
        self._store = store
        self._launcher = launcher
        self._gateway = gateway
        self._config = config
        self._clock = clock
        self._running: dict[SessionId, _Running] = {}
        self._launching = 0
        self._teardowns: dict[SessionId, asyncio.Task[Session]] = {}
        self._endings: dict[SessionId, asyncio.Task[None]] = {}
        # Stopped sessions whose browser still runs (its end steps, its graceful close): it
        # holds the host's memory until its teardown, so admission counts it.
        self._ending_browsers: set[SessionId] = set()
        # Workdirs of sessions ended here without a browser of ours (orphans of a dead server
        # on this host): sandbox sweeps keep their files until their end steps have read them.
        self._orphan_workdirs: dict[SessionId, Path] = {}
        # Ends run after their stop answered; shutdown waits for them (bounded), never drops one.
        self._ending = TaskSet("sessions-ending")
        self._creating: dict[SessionId, Reservation] = {}
        # The other servers' public URLs (from their heartbeats): the URLs of their sessions.
        self._owner_urls: dict[InstanceId, str] = {}
        # Sessions fenced while the database was out of reach: settled by the next sweep.
        self._fenced: dict[SessionId, Fenced] = {}
        self._closing = False
        self._tasks = TaskSet("sessions")
        # Settling a failed create is never cancelled: shutdown drains it.
        self._settling = TaskSet("sessions-settling")

    @property
    def instance(self) -> InstanceId:
        return self._config.instance

    def local_browser_count(self) -> int:
        """Browsers of this server on this host: running, launching, or ending."""
        return len(self._running) + self._launching + len(self._ending_browsers)

    def local_pids(self) -> frozenset[int]:
        return frozenset(r.handle.pid for r in self._running.values())

    # -- create ---------------------------------------------------------------------------
    async def create(self, principal: Principal, request: SessionRequest) -> Session:
        """Validate, reserve (credits, concurrency), admit on this host, start, go active.

        A pooled browser, when one fits, is taken first and gives the session its id, so a
        session's files always live in sessions/<id>; if the reservation is refused it goes
        back to the pool unused. Whatever interrupts a create (an error, a cancellation, a
        shutdown), its row ends FAILED with a full refund before the reservation is dropped.
        """
        if request.timeout_minutes > MAX_TIMEOUT_MINUTES:
            raise TimeoutLimitExceeded(request.timeout_minutes)
        if self._closing:
            raise HostAtCapacity("this server is shutting down")
        if self._lease is not None and not await self._lease.ensure_held():
            # No heartbeat of ours reaches the database (cut off, or frozen until just now):
            # another server may be settling our sessions, and would this one too.
            raise DatabaseUnavailable("this server's lease on its sessions has lapsed")
        profile = await self._load_profile(principal, request)
        try:
            return await self._create(principal, request, profile)
        finally:
            if profile is not None:
                await asyncio.shield(profile.discard())

    async def _load_profile(
        self, principal: Principal, request: SessionRequest
    ) -> ProfileLoad | None:
        if request.profile_id is None:
            return None
        if self._profiles is None:
            raise ProfileNotFound(request.profile_id)
        return await self._profiles.load(principal.project_id, request.profile_id)

    async def _create(
        self, principal: Principal, request: SessionRequest, profile: ProfileLoad | None
    ) -> Session:
        reservation = self._open_reservation(principal, request, profile)
        self._creating[reservation.session.id] = reservation
        await self._reserve(reservation)
        # Host admission and taking the slot with no await between: nothing can slip in.
        try:
            refusal = None if reservation.pooled is not None else self._host_refusal()
        except BaseException:
            await self._settle_failed(reservation, None)
            raise
        self._launching += 1
        try:
            return await self._start(reservation, refusal)
        finally:
            self._launching -= 1

    def _open_reservation(
        self, principal: Principal, request: SessionRequest, profile: ProfileLoad | None
    ) -> Reservation:
        """The create's state: its STARTING session, launch spec, egress plan, pooled browser
        (none for a stored profile: it must be in place before Chromium starts)."""
        spec = launch_spec_for(request, self._config)
        pooled = self._pool.take(spec) if self._pool and profile is None else None
        session_id = (
            SessionId(uuid.UUID(pooled.workdir.name)) if pooled else SessionId(uuid.uuid4())
        )
        try:
            plan = self._planner.plan(request, str(session_id)) if self._planner else None
        except BaseException:
            if pooled is not None and self._pool is not None:
                self._pool.give_back(pooled)
            raise
        now = self._clock()
        session = Session(
            id=session_id,
            project_id=principal.project_id,
            status=SessionStatus.STARTING,
            token=self._secret.cdp_token(str(session_id)),
            request=request,
            created_at=now,
            started_at=now,
            timeout_at=now + timedelta(minutes=request.timeout_minutes),
            upfront_micros=pricing.upfront_micros(request.timeout_minutes),
            owner=self._config.instance,
            proxy_route=plan.kind if plan else None,
            proxy_rate_micros_per_gb=plan.micros_per_gb if plan else 0,
            api_key_id=principal.api_key_id,
            # Known before the launch, so whoever repairs a crashed create can remove it.
            session_dir=str(self._config.sessions_dir / str(session_id)),
        )
        return Reservation(
            session=session,
            spec=spec,
            plan=plan,
            began=time.monotonic(),
            task=asyncio.current_task(),
            pooled=pooled,
            profile=profile,
            # Reshaping a pooled browser overlaps the reservation's database work.
            reshaping=self._reshape_soon(pooled, spec),
        )

    def _reshape_soon(
        self, pooled: BrowserHandle | None, spec: LaunchSpec
    ) -> asyncio.Task[None] | None:
        if pooled is None or _screen(spec) == _screen(self._pool_spec()):
            return None
        return self._tasks.spawn(
            pooled.reshape(spec.screen_width, spec.screen_height), name=f"reshape-{pooled.pid}"
        )

    async def _reserve(self, reservation: Reservation) -> None:
        """The STARTING row, charged and holding a project slot. A refusal writes nothing;
        anything else (a cancellation, a database error) may have, so the row is settled."""
        try:
            await self._store.reserve(reservation.session, self._config.default_concurrent_limit)
        except DomainError:
            self._creating.pop(reservation.session.id, None)
            await asyncio.shield(self._return_unused(reservation))
            raise
        except BaseException:
            await self._settle_failed(reservation, None)
            raise

    async def _return_unused(self, reservation: Reservation) -> None:
        """A pooled browser whose session was refused: back to the pool if still pristine."""
        pooled, reshaping = reservation.pooled, reservation.reshaping
        reservation.pooled = None
        if pooled is None or self._pool is None:
            return
        if reshaping is None:
            self._pool.give_back(pooled)
            return
        reshaping.cancel()
        await asyncio.gather(reshaping, return_exceptions=True)
        await pooled.close()  # reshaped for someone else: no longer what the pool holds

    async def _start(self, reservation: Reservation, refusal: str | None) -> Session:
        session = reservation.session
        try:
            if refusal is not None:
                raise HostAtCapacity(refusal)
            handle, from_pool = await self._obtain_browser(reservation)
        except BaseException:
            await self._settle_failed(reservation, None)
            raise
        try:
            if reservation.profile is not None:
                await reservation.profile.apply(handle)
            if reservation.plan is not None:
                handle.route_egress(reservation.plan.route)
                await handle.localize(reservation.plan.region)
            files = handle.files
            self._gateway.open(
                GatewayRoute(
                    session.token,
                    handle.devtools,
                    session.request.allow_resizing,
                    downloads=files.downloads,
                    uploads=files.uploads,
                )
            )
            self._running[session.id] = _Running(handle, session)
            active = await self._store.mark_active(
                session.id, pid=handle.pid, session_dir=str(handle.workdir)
            )
        except BaseException:
            await self._settle_failed(reservation, handle)
            raise
        self._creating.pop(session.id, None)
        if self._starts is not None:
            self._starts.session_active(active, handle)
        self._tasks.spawn(self._watch(session.id, handle), name=f"watch-{session.id}")
        self._metrics.session_started(
            session.project_id, from_pool=from_pool, seconds=time.monotonic() - reservation.began
        )
        log.info("session started", extra={"session_id": str(session.id), "pid": handle.pid})
        return self.with_token(active)

    async def _settle_failed(self, reservation: Reservation, handle: BrowserHandle | None) -> None:
        """End a create that did not make it: browser closed, row FAILED and refunded, slot
        freed. Runs to its end even if the create is cancelled; shutdown waits for it."""
        work = self._settling.spawn(
            self._fail_reservation(reservation, handle), name=f"fail-{reservation.session.id}"
        )
        await asyncio.shield(work)

    async def _fail_reservation(
        self, reservation: Reservation, handle: BrowserHandle | None
    ) -> None:
        session = reservation.session
        try:
            await self._return_unused(reservation)
            if handle is not None:
                self._running.pop(session.id, None)
                await self._gateway.close(session.token)
                await handle.close()
            # If this fails too (the database is down), the row stays STARTING with no
            # reservation: the next sweep sees it is stuck and fails it.
            await self._store.fail_if_starting(session.id)
        finally:
            self._creating.pop(session.id, None)

    def creating(self) -> frozenset[SessionId]:
        """Sessions whose create is in flight here (their rows may be STARTING legitimately)."""
        return frozenset(self._creating)

    def cancel_create(self, session_id: SessionId) -> bool:
        """Cancel a create that is taking too long (its own cleanup settles the row)."""
        reservation = self._creating.get(session_id)
        if reservation is None:
            return False
        if reservation.task is None or reservation.task.done():
            # Nothing left to cancel: drop it, and the next sweep repairs the row as stuck.
            self._creating.pop(session_id, None)
            return False
        reservation.task.cancel()
        return True

    async def repair_starting(self, session: Session) -> bool:
        """A STARTING row of this instance with no create in flight: a create that crashed or
        was lost. Fail and refund it, and remove whatever files it left. True if repaired."""
        if session.id in self._creating:
            return False
        failed = await self._store.fail_if_starting(session.id)
        if failed is None:
            return False
        log.warning("failed a stuck starting session", extra={"session_id": str(session.id)})
        if failed.session_dir:
            await asyncio.to_thread(self._launcher.remove_workdir, Path(failed.session_dir))
        return True

    def _host_refusal(self) -> str | None:
        return self._capacity.session_refusal(self.local_browser_count())

    async def _obtain_browser(self, reservation: Reservation) -> tuple[BrowserHandle, bool]:
        """The pooled browser reshaped for this session, else a cold launch."""
        session_id, spec = reservation.session.id, reservation.spec
        pooled, reshaping = reservation.pooled, reservation.reshaping
        if pooled is not None:
            try:
                if reshaping is not None:
                    await reshaping
                log.info("browser from the pool", extra={"session_id": str(session_id)})
                reservation.pooled = None  # the session's own now
                return pooled, True
            except BrowserLaunchFailed as error:
                log.warning(
                    "pooled browser unusable (%s): launching cold",
                    error,
                    extra={"session_id": str(session_id)},
                )
                reservation.pooled = None
                await pooled.close()
            except BaseException:
                reservation.pooled = None
                if reshaping is not None:
                    reshaping.cancel()
                await asyncio.shield(pooled.close())
                raise
        else:
            self._log_cold_reason(session_id, spec, reservation.profile is not None)
        self._make_room()
        seed = reservation.profile.seed if reservation.profile is not None else None
        workdir = self._config.sessions_dir / str(session_id)
        try:
            try:
                handle = await self._launcher.launch(spec, workdir, seed=seed)
            except HostAtCapacity:
                # A launcher that counts its own room (a cluster's slots) found none: a
                # pooled browser's room is the sessions' first.
                if self._pool is None or not await self._pool.release_one():
                    raise
                log.info("a pooled browser gave up its room", extra={"session_id": str(session_id)})
                handle = await self._launcher.launch(spec, workdir, seed=seed)
        except BrowserLaunchFailed as error:
            self._metrics.launch_failed()
            log.error("launch failed: %s", error, extra={"session_id": str(session_id)})
            raise
        self._metrics.browser_launched()
        return handle, False

    def _pool_spec(self) -> LaunchSpec:
        assert self._pool is not None
        return self._pool.spec

    def _log_cold_reason(
        self, session_id: SessionId, spec: LaunchSpec, reservation_has_profile: bool
    ) -> None:
        if self._pool is None:
            return
        if reservation_has_profile:
            reason = "a stored profile loads into a fresh browser only"
        elif self._pool.serves(spec):
            reason = "the pool is empty"
        else:
            reason = "no pooled browser fits"
        log.info("cold launch: %s", reason, extra={"session_id": str(session_id)})

    def _make_room(self) -> None:
        """Pooled browsers are the first to go when sessions need their room."""
        if self._pool is None:
            return
        while self.local_browser_count() + self._pool.total > self._config.host_max_browsers:
            if not self._pool.evict():
                break

    def pool_has_room(self, pool_total: int) -> bool:
        """Whether the pool may launch one more browser without crowding out sessions."""
        return self._capacity.pool_may_grow(self.local_browser_count() + pool_total)

    async def _watch(self, session_id: SessionId, handle: BrowserHandle) -> None:
        """A browser that dies by itself ends its session, billed up to that moment."""
        code = await handle.wait_closed()
        if session_id in self._running and session_id not in self._teardowns:
            log.warning(
                "browser exited by itself (code %s)", code, extra={"session_id": str(session_id)}
            )
            await self.stop_local(session_id, StopReason.CRASH, self._clock())

    # -- read -----------------------------------------------------------------------------
    async def get(self, principal: Principal, session_id: SessionId) -> Session:
        session = await self._store.get(principal.project_id, session_id)
        fenced = self._fenced.get(session_id)
        if (
            fenced is not None
            and session.status is SessionStatus.ACTIVE
            and session.owner == self.instance
        ):
            # Its browser is gone: never shown active, it is settled now, not at the sweep.
            session = await self.stop_local(
                session_id, StopReason.FENCED, session.ended_by(fenced.at)
            )
        return self._live(session)

    async def list(self, principal: Principal, query: SessionQuery) -> SessionPage:
        page = await self._store.list(principal.project_id, query)
        return replace(page, items=tuple(self._live(s) for s in page.items))

    def note_instances(self, others: Iterable[InstanceRecord]) -> None:
        """The other servers on this database, as their heartbeats last described them."""
        self._owner_urls = {i.id: i.public_url for i in others if i.public_url}

    def owner_url(self, session: Session) -> str | None:
        """The public URL of the server that runs this session, when that is another server
        with one configured: only the owner serves its CDP and live URLs."""
        if session.owner is None or session.owner == self.instance:
            return None
        return self._owner_urls.get(session.owner)

    def with_token(self, session: Session) -> Session:
        """The session with its CDP token, derived again from its id (it is never stored)."""
        return replace(session, token=self._secret.cdp_token(str(session.id)))

    def _live(self, session: Session) -> Session:
        """A session this instance runs shows its egress traffic up to this moment."""
        session = self.with_token(session)
        running = self._running.get(session.id)
        if running is None or session.status is SessionStatus.STOPPED:
            return session
        return replace(session, proxy_bytes=running.handle.egress_bytes)

    async def upload(
        self,
        principal: Principal,
        session_id: SessionId,
        receive: Callable[[Path], Awaitable[Sequence[Received]]],
    ) -> tuple[PurePosixPath, Sequence[tuple[str, int]]]:
        """Files for this session's browser, only while it is active, on this server: `receive`
        saves the request's files into the directory it is given. Returns the upload area as
        the browser sees it, and each file's final name and size there."""
        session = await self._store.get(principal.project_id, session_id)
        running = self._running.get(session_id)
        if session.status is not SessionStatus.ACTIVE or running is None:
            raise SessionNotRunningHere(str(session_id))
        handle = running.handle
        if not self._config.remote_browsers:
            saved = await receive(handle.files.host_uploads)
            return handle.files.uploads, [(r.name, r.size) for r in saved]
        if not isinstance(handle, RemoteFiles):
            raise NotOnCluster(CLUSTER_UPLOADS)
        # Received here first (the body's limits and errors as on a single host), then sent
        # to the browser's node, which names each file in its own upload area.
        scratch = self._config.sessions_dir / f".uploads-{uuid.uuid4()}"
        await asyncio.to_thread(_new_dir, scratch)
        try:
            saved = await receive(scratch)
            stored = [(await handle.store_upload(r.name, r.path), r.size) for r in saved]
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
        return handle.files.uploads, stored

    def _local_dir(self, session: Session) -> Path | None:
        """The session's directory, if it is on this host (never a cluster node's path, even
        one that happens to exist here)."""
        if not session.session_dir or self._config.remote_browsers:
            return None
        path = Path(session.session_dir)
        return path if path.exists() else None

    # -- stop -----------------------------------------------------------------------------
    async def stop(
        self,
        principal: Principal,
        session_id: SessionId,
        *,
        answered: asyncio.Event | None = None,
    ) -> Session:
        """Stop a session of the caller's project. `answered`: set once the caller has its
        answer; the end this stop starts waits for it (at most ANSWER_WAIT_S)."""
        running = self._running.get(session_id)
        if (
            running is not None
            and running.session.project_id == principal.project_id
            and session_id not in self._creating
        ):
            # Ours, running, the caller's: no read first; the stop's own conditional update
            # decides (and returns the session as it is if someone else stopped it already).
            return self.with_token(
                await self.stop_local(session_id, StopReason.USER, self._clock(), answered=answered)
            )
        session = await self._store.get(principal.project_id, session_id)
        if session.status is SessionStatus.STOPPED:
            return self.with_token(session)
        if session.owner == self._config.instance:
            stopped = await self.stop_local(
                session_id, StopReason.USER, self._clock(), answered=answered
            )
        else:
            stopped = await self._stop_remote(session)
        return self.with_token(stopped)

    async def stop_local(
        self,
        session_id: SessionId,
        reason: StopReason,
        at: datetime,
        *,
        answered: asyncio.Event | None = None,
    ) -> Session:
        """Stop a session whose browser this instance owns; concurrent calls share one teardown
        (the first one's `answered`, if any, is what its end waits for)."""
        existing = self._teardowns.get(session_id)
        if existing is None:
            existing = self._tasks.spawn(
                self._teardown(session_id, reason, at, answered), name=f"stop-{session_id}"
            )
            self._teardowns[session_id] = existing
            existing.add_done_callback(lambda _t: self._teardowns.pop(session_id, None))
        return await asyncio.shield(existing)

    async def _teardown(
        self,
        session_id: SessionId,
        reason: StopReason,
        at: datetime,
        answered: asyncio.Event | None = None,
    ) -> Session:
        """Mark the session stopped and bill it; its end (steps, then the browser's teardown)
        is handed to a task of its own, started whatever happens here, so the stop answers
        without waiting for the browser to go (and, given `answered`, the end waits for the
        answer to be sent)."""
        session = await self._store.request_stop(session_id, reason, at)
        if session.status is SessionStatus.STOPPED:
            return session
        running = self._running.pop(session_id, None)
        handle = running.handle if running is not None else None
        try:
            # Nothing more reaches the browser; the clients' sockets finish closing in _end.
            self._gateway.revoke(self._secret.cdp_token(str(session_id)))
            proxy_bytes = session.proxy_bytes
            if handle is not None:
                await handle.end_egress()
                proxy_bytes = handle.egress_bytes  # final: the proxy is closed
            elif (fenced := self._fenced.get(session_id)) is not None:
                proxy_bytes = max(proxy_bytes, fenced.proxy_bytes)
            finished = session.finished_at or at
            bill = pricing.bill(session.started_at, finished, session.request.timeout_minutes)
            stopped = await self._store.finalize(
                session_id,
                cost_micros=bill.cost_micros,
                proxy_bytes=proxy_bytes,
                proxy_cost_micros=pricing.egress_cost_micros(
                    proxy_bytes, session.proxy_rate_micros_per_gb
                ),
            )
        except BaseException:
            # The row stays STOPPING (the reaper finalizes it later); the browser goes now.
            self._end_soon(session, handle)
            raise
        self._fenced.pop(session_id, None)
        self._end_soon(stopped, handle, answered)
        self._metrics.session_stopped(session.project_id, session.stop_reason or reason)
        log.info(
            "session stopped (%s), billed %s min",
            session.stop_reason or reason,
            bill.billed_minutes,
            extra={"session_id": str(session_id)},
        )
        return stopped

    def _end_soon(
        self,
        session: Session,
        handle: BrowserHandle | None,
        answered: asyncio.Event | None = None,
    ) -> None:
        if session.id in self._endings:
            return
        if handle is not None:
            self._ending_browsers.add(session.id)
        elif (workdir := self._local_dir(session)) is not None:
            self._orphan_workdirs[session.id] = workdir
        task = self._ending.spawn(self._end(session, handle, answered), name=f"end-{session.id}")
        self._endings[session.id] = task

        def ended(_task: asyncio.Task[None]) -> None:
            self._endings.pop(session.id, None)
            self._ending_browsers.discard(session.id)
            self._orphan_workdirs.pop(session.id, None)

        task.add_done_callback(ended)

    async def _end(
        self,
        session: Session,
        handle: BrowserHandle | None,
        answered: asyncio.Event | None = None,
    ) -> None:
        """The end of a stopped session: LIVE steps while its browser runs, a graceful close
        when a later step reads its files, the CLOSED steps, then the browser's teardown.
        Without a browser of ours (an orphan of a dead server on this host), what is left of
        it is killed first, and its files are removed after the CLOSED steps. Given
        `answered`, all of it starts a moment after that is set (see ANSWER_SETTLE_S)."""
        if handle is not None:
            # A remote browser's workdir is its node's: never read here.
            workdir = None if self._config.remote_browsers else handle.workdir
        else:
            workdir = self._local_dir(session)
        fetched: Path | None = None
        try:
            if answered is not None:
                await _after_answer(answered)
            await self._gateway.close(self._secret.cdp_token(str(session.id)))
            if handle is None and workdir is not None:
                # Its processes go; its files (and those of other orphans being ended) stay
                # for the CLOSED steps, which run on what the browser had written to disk.
                await asyncio.to_thread(
                    self._launcher.kill_strays, workdir, frozenset(), self.orphan_workdirs()
                )
            if handle is not None:
                fetched = await self._end_live(session, handle, workdir)
                workdir = fetched or workdir
            if workdir is not None:
                await run_steps(
                    self._end_steps, EndPhase.CLOSED, SessionEnd(session, None, workdir)
                )
        finally:
            if handle is not None:
                await asyncio.shield(handle.close())
                self._ending_browsers.discard(session.id)
            elif workdir is not None:
                await asyncio.to_thread(self._launcher.remove_workdir, workdir)
            if fetched is not None:
                await asyncio.to_thread(shutil.rmtree, fetched, True)
            with contextlib.suppress(Exception):
                await self._store.mark_ended(session.id)

    async def _end_live(
        self, session: Session, handle: BrowserHandle, workdir: Path | None
    ) -> Path | None:
        """The LIVE steps, then the graceful close if a later step reads the browser's files;
        a remote browser's are then brought here: their directory, to be removed after."""
        await run_steps(self._end_steps, EndPhase.LIVE, SessionEnd(session, handle, workdir))
        if not wants_graceful_close(self._end_steps, session):
            return None
        await handle.quit(self._config.quit_grace_s)
        return await self._fetch_files(session, handle) if self._config.remote_browsers else None

    async def _fetch_files(self, session: Session, handle: BrowserHandle) -> Path | None:
        """A remote browser's files that the CLOSED steps read (its profile's state when it
        has a profile, its downloads), brought into a directory of this host laid out as its
        workdir; None when it has none to give."""
        if not isinstance(handle, RemoteFiles):
            return None
        dest = self._config.sessions_dir / str(session.id)
        await asyncio.to_thread(_new_dir, dest)
        state = session.request.profile_id is not None and await handle.fetch_state(dest)
        downloads = dest / DOWNLOADS_DIR
        await asyncio.to_thread(_new_dir, downloads)
        if await handle.fetch_downloads(downloads, self._config.downloads_max_bytes) or state:
            return dest
        await asyncio.to_thread(shutil.rmtree, dest, True)
        return None

    async def wait_ended(self, session_id: SessionId) -> None:
        """Until this server's end of that session (steps and teardown) is over."""
        task = self._endings.get(session_id)
        if task is not None:
            await asyncio.wait({task})

    async def _stop_remote(self, session: Session) -> Session:
        """Ask the owning instance to stop (it sees STOPPING on its next sweep) and wait."""
        await self._store.request_stop(session.id, StopReason.USER, self._clock())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _REMOTE_STOP_WAIT_S
        while loop.time() < deadline:
            current = await self._store.get(session.project_id, session.id)
            if current.status is SessionStatus.STOPPED:
                return current
            await asyncio.sleep(0.1)
        return await self._store.get(session.project_id, session.id)

    async def stop_abandoned(
        self, session: Session, last_seen: datetime, *, dead_owner: InstanceId | None = None
    ) -> Session | None:
        """Finish a session whose owner died: no browser of ours to close, just settle it.

        A session caught starting fails with a full refund; a running one is billed up to its
        owner's last sign of life (`last_seen`), never past its timeout nor before its start.
        Returns the settled session, or None if another instance got there first.
        """
        adopted = await self._store.adopt(session.id, self._config.instance, dead_owner)
        if adopted is None:
            return None
        if adopted.status is SessionStatus.STARTING:
            return await self._store.fail_if_starting(adopted.id)
        return await self.stop_local(adopted.id, StopReason.ORPHANED, adopted.ended_by(last_seen))

    def orphan_workdirs(self) -> frozenset[Path]:
        """Workdirs on this host of dead servers' sessions this server is ending: their files
        must outlive any sweep until the end steps have read them."""
        return frozenset(self._orphan_workdirs.values())

    def is_tearing_down(self, session_id: SessionId) -> bool:
        return session_id in self._teardowns or session_id in self._endings

    def running_settled(self) -> frozenset[SessionId]:
        """Sessions whose browser runs here and whose create is over: each row was ACTIVE
        and ours when it was written, so it stays ours and live until this instance stops it,
        unless another instance took it over."""
        return frozenset(self._running) - frozenset(self._creating)

    async def release_taken_over(self, session_ids: frozenset[SessionId]) -> int:
        """Fencing: close the browsers of sessions another instance has taken over (it judged
        this one dead: frozen, partitioned, or cut off from the database past the orphan
        timeout) and already stopped and billed. Their rows are left as they are; returns how
        many browsers were closed."""
        closed = 0
        for session_id in session_ids:
            if session_id in self._teardowns or session_id in self._creating:
                continue
            running = self._running.pop(session_id, None)
            if running is None:
                continue
            log.warning(
                "session taken over by another server: closing its browser here",
                extra={"session_id": str(session_id)},
            )
            await self._gateway.close(self._secret.cdp_token(str(session_id)))
            await running.handle.close()
            if self._starts is not None:
                self._starts.session_gone(session_id)
            closed += 1
        return closed

    async def fence(self, at: datetime) -> int:
        """This server has lost its lease: no heartbeat of it has reached the database for so
        long that another server may soon judge it dead and settle its sessions. End every
        browser of its sessions now, without the database: the tokens are revoked, the egress
        metered and closed, the sandboxes torn down, creates in flight cancelled. Once the
        database answers again each fenced session still ours is stopped and billed up to
        `at` (the sweep, with StopReason.FENCED); one another server settled meanwhile is left
        as that server settled it. Their profiles keep the version they started from: a fenced
        browser's state is not saved. Returns how many browsers were ended."""
        for session_id in list(self._creating):
            self.cancel_create(session_id)
        fenced = 0
        for session_id in self.running_settled():
            if session_id in self._teardowns:
                continue  # being stopped already: its own teardown ends the browser
            running = self._running.pop(session_id)
            self._gateway.revoke(self._secret.cdp_token(str(session_id)))
            handle, where = running.handle, {"session_id": str(session_id)}
            try:
                await handle.end_egress()
            except Exception:
                log.exception("fencing: closing the egress failed", extra=where)
            # Noted before the browser goes, whatever happens to it: the session is settled.
            self._fenced[session_id] = Fenced(running.session.ended_by(at), handle.egress_bytes)
            try:
                await asyncio.shield(handle.close())
            except Exception:
                log.exception("fencing: closing the browser failed", extra=where)
            if self._starts is not None:
                self._starts.session_gone(session_id)
            fenced += 1
        return fenced

    def fenced(self) -> dict[SessionId, datetime]:
        """Fenced sessions still to settle, and the time each is billed up to."""
        return {session_id: fenced.at for session_id, fenced in self._fenced.items()}

    def forget_fenced(self, session_ids: frozenset[SessionId]) -> None:
        """Another server has settled these fenced sessions: nothing is left to do here."""
        for session_id in session_ids:
            self._fenced.pop(session_id, None)

    # -- shutdown -------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Refuse new creates, let those in flight finish or fail them, stop and bill every
        session this instance runs, and leave no process behind."""
        self._closing = True
        await self._end_creates()
        now = self._clock()
        ids = list(self._running)
        # Fenced ones are settled as the sweep would have (their browsers are gone already);
        # left live, the next server to start would bill them up to its own start.
        fenced = list(self._fenced.items())
        results = await asyncio.gather(
            *(self.stop_local(i, StopReason.SHUTDOWN, now) for i in ids),
            *(self.stop_local(i, StopReason.FENCED, f.at) for i, f in fenced),
            *self._teardowns.values(),
            return_exceptions=True,
        )
        ids += [session_id for session_id, _ in fenced]
        for session_id, result in zip(ids, results, strict=False):
            if isinstance(result, BaseException):
                log.error(
                    "stop at shutdown failed",
                    exc_info=result,
                    extra={"session_id": str(session_id)},
                )
        for running in list(self._running.values()):
            self._end_soon(running.session, running.handle)
        self._running.clear()
        await self._finish_endings()
        await self._tasks.close()

    async def _finish_endings(self) -> None:
        """Every session's end runs to completion (each step and the graceful close are
        bounded); past end_grace_s the rest is cancelled, which still closes the browsers."""
        pending = set(self._endings.values())
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=self._config.end_grace_s)
        for task in late:
            task.cancel()
        if late:
            log.error("%d session ends still running at shutdown: cancelled", len(late))
            await asyncio.wait(late, timeout=self._config.shutdown_grace_s)
        await self._ending.close()

    async def _end_creates(self) -> None:
        """Creates in flight finish (a launch has its own timeout) or are cancelled; either
        way their rows are settled (ACTIVE, then stopped below, or FAILED) before we go on."""
        pending = {r.task for r in self._creating.values() if r.task is not None}
        pending = {t for t in pending if not t.done()}
        if pending:
            _done, late = await asyncio.wait(pending, timeout=self._config.shutdown_grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=self._config.shutdown_grace_s)
        try:
            async with asyncio.timeout(self._config.shutdown_grace_s):
                await self._settling.drain()
        except TimeoutError:
            log.error("failed creates still settling at shutdown: the next start repairs them")
        for reservation in list(self._creating.values()):  # their tasks never got to settle
            try:
                await self._store.fail_if_starting(reservation.session.id)
            except Exception:
                log.exception("could not fail a create at shutdown")
            self._creating.pop(reservation.session.id, None)


class CountedCapacity:
    """Host capacity by browser count alone (the real probe adds memory and load)."""

    def __init__(self, max_browsers: int) -> None:
        self._max = max_browsers

    def session_refusal(self, running_sessions: int) -> str | None:
        if running_sessions >= self._max:
            return f"{running_sessions} of at most {self._max} browsers are running"
        return None

    def pool_may_grow(self, running_browsers: int) -> bool:
        return running_browsers < self._max


def _new_dir(path: Path) -> None:
    """`path` as a new, empty directory of this user's (whatever a crash left there gone)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)


def _screen(spec: LaunchSpec) -> tuple[int, int]:
    return (spec.screen_width, spec.screen_height)


def with_running_cost(session: Session, now: datetime) -> Session:
    """While active, the session shows the costs so far (docs/api.md, "Billing")."""
    if session.cost_micros is not None or session.status is SessionStatus.STOPPED:
        return session
    bill = pricing.bill(session.started_at, now, session.request.timeout_minutes)
    egress = pricing.egress_cost_micros(session.proxy_bytes, session.proxy_rate_micros_per_gb)
    return replace(session, cost_micros=bill.cost_micros, proxy_cost_micros=egress)


async def _after_answer(answered: asyncio.Event) -> None:
    """Until ANSWER_SETTLE_S after `answered` is set, or ANSWER_WAIT_S in all at most."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ANSWER_WAIT_S):
            await answered.wait()
            await asyncio.sleep(ANSWER_SETTLE_S)
