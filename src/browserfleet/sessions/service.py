"""The session service: create, read, stop. Orchestrates store, browser launcher and CDP gateway.

Correctness lives in the store's atomic, conditional updates; the in-process maps here only
hold this instance's own browser handles.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from browserfleet.auth.keys import new_capability_token
from browserfleet.auth.model import Principal
from browserfleet.billing import pricing
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.errors import (
    BrowserLaunchFailed,
    HostAtCapacity,
    ProfileNotFound,
    SessionNotFound,
    TimeoutLimitExceeded,
)
from browserfleet.ids import InstanceId, SessionId
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
    NoMetrics,
    SessionMetrics,
    SessionStore,
)
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

# How long a stop waits for another instance to tear down a browser it owns.
_REMOTE_STOP_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    instance: InstanceId
    sessions_dir: Path
    mode: HeadlessMode
    extra_args: tuple[str, ...]
    default_concurrent_limit: int
    host_max_browsers: int


@dataclass(slots=True)
class _Running:
    handle: BrowserHandle
    token: str


def launch_spec_for(request: SessionRequest, config: RuntimeConfig) -> LaunchSpec:
    """The launch spec a request needs (the warm pool compares these by equality)."""
    return LaunchSpec(
        mode=config.mode,
        screen_width=request.screen_width,
        screen_height=request.screen_height,
        ignore_cert_errors=bool(request.custom_proxy and request.custom_proxy.ignore_cert_errors),
        pdf_viewer=request.pdf_viewer,
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
    ) -> None:
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
        self._plans: dict[SessionId, EgressPlan | None] = {}
        self._tasks = TaskSet("sessions")

    @property
    def instance(self) -> InstanceId:
        return self._config.instance

    def local_browser_count(self) -> int:
        return len(self._running) + self._launching

    def local_pids(self) -> frozenset[int]:
        return frozenset(r.handle.pid for r in self._running.values())

    # -- create ---------------------------------------------------------------------------
    async def create(self, principal: Principal, request: SessionRequest) -> Session:
        """Validate, reserve (credits, concurrency), admit on this host, start, go active.

        A pooled browser, when one fits, is taken first and gives the session its id, so a
        session's files always live in sessions/<id>; if the reservation is refused it goes
        back to the pool unused.
        """
        if request.timeout_minutes > MAX_TIMEOUT_MINUTES:
            raise TimeoutLimitExceeded(request.timeout_minutes)
        if request.profile_id is not None:
            raise ProfileNotFound(request.profile_id)
        began = time.monotonic()
        spec = launch_spec_for(request, self._config)
        pooled = self._pool.take(spec) if self._pool else None
        session_id = (
            SessionId(uuid.UUID(pooled.workdir.name)) if pooled else SessionId(uuid.uuid4())
        )
        # Reshaping a pooled browser overlaps the reservation's database work.
        reshaping = self._reshape_soon(pooled, spec)
        try:
            session = await self._reserve(principal, request, session_id)
        except BaseException:
            await asyncio.shield(self._return_unused(pooled, reshaping))
            raise
        # Host admission and taking the slot with no await between: nothing can slip in.
        refusal = None if pooled is not None else self._host_refusal()
        self._launching += 1
        try:
            return await self._start(session, spec, (pooled, reshaping), began, refusal)
        finally:
            self._launching -= 1

    def _reshape_soon(
        self, pooled: BrowserHandle | None, spec: LaunchSpec
    ) -> asyncio.Task[None] | None:
        if pooled is None or _screen(spec) == _screen(self._pool_spec()):
            return None
        return self._tasks.spawn(
            pooled.reshape(spec.screen_width, spec.screen_height), name=f"reshape-{pooled.pid}"
        )

    async def _return_unused(
        self, pooled: BrowserHandle | None, reshaping: asyncio.Task[None] | None
    ) -> None:
        """A pooled browser whose session was refused: back to the pool if still pristine."""
        if pooled is None or self._pool is None:
            return
        if reshaping is None:
            self._pool.give_back(pooled)
            return
        reshaping.cancel()
        await asyncio.gather(reshaping, return_exceptions=True)
        await pooled.close()  # reshaped for someone else: no longer what the pool holds

    async def _reserve(
        self, principal: Principal, request: SessionRequest, session_id: SessionId
    ) -> Session:
        """The STARTING row, charged and holding a project slot; then host admission."""
        now = self._clock()
        plan = self._planner.plan(request, str(session_id)) if self._planner else None
        session = Session(
            id=session_id,
            project_id=principal.project_id,
            status=SessionStatus.STARTING,
            token=new_capability_token(),
            request=request,
            created_at=now,
            started_at=now,
            timeout_at=now + timedelta(minutes=request.timeout_minutes),
            upfront_micros=pricing.upfront_micros(request.timeout_minutes),
            owner=self._config.instance,
            proxy_route=plan.kind if plan else None,
            proxy_rate_micros_per_gb=plan.micros_per_gb if plan else 0,
        )
        self._plans[session_id] = plan
        try:
            await self._store.reserve(session, self._config.default_concurrent_limit)
        except BaseException:
            self._plans.pop(session_id, None)
            raise
        return session

    async def _start(
        self,
        session: Session,
        spec: LaunchSpec,
        taken: tuple[BrowserHandle | None, asyncio.Task[None] | None],
        began: float,
        refusal: str | None,
    ) -> Session:
        plan = self._plans.pop(session.id, None)
        try:
            if refusal is not None:
                raise HostAtCapacity(refusal)
            handle, from_pool = await self._obtain_browser(session.id, spec, *taken)
        except BaseException:
            await asyncio.shield(self._store.mark_failed(session.id))
            raise
        try:
            if plan is not None:
                handle.route_egress(plan.route)
            self._gateway.open(
                GatewayRoute(session.token, handle.devtools, session.request.allow_resizing)
            )
            self._running[session.id] = _Running(handle, session.token)
            active = await self._store.mark_active(
                session.id, pid=handle.pid, session_dir=str(handle.workdir)
            )
        except BaseException:
            await asyncio.shield(self._abort_launched(session, handle))
            raise
        self._tasks.spawn(self._watch(session.id, handle), name=f"watch-{session.id}")
        self._metrics.session_started(
            session.project_id, from_pool=from_pool, seconds=time.monotonic() - began
        )
        log.info("session started", extra={"session_id": str(session.id), "pid": handle.pid})
        return active

    def _host_refusal(self) -> str | None:
        return self._capacity.session_refusal(self.local_browser_count())

    async def _obtain_browser(
        self,
        session_id: SessionId,
        spec: LaunchSpec,
        pooled: BrowserHandle | None,
        reshaping: asyncio.Task[None] | None,
    ) -> tuple[BrowserHandle, bool]:
        """The pooled browser reshaped for this session, else a cold launch."""
        if pooled is not None:
            try:
                if reshaping is not None:
                    await reshaping
                log.info("browser from the pool", extra={"session_id": str(session_id)})
                return pooled, True
            except BrowserLaunchFailed as error:
                log.warning(
                    "pooled browser unusable (%s): launching cold",
                    error,
                    extra={"session_id": str(session_id)},
                )
                await pooled.close()
            except BaseException:
                if reshaping is not None:
                    reshaping.cancel()
                await asyncio.shield(pooled.close())
                raise
        else:
            self._log_cold_reason(session_id, spec)
        self._make_room()
        try:
            handle = await self._launcher.launch(spec, self._config.sessions_dir / str(session_id))
        except BrowserLaunchFailed as error:
            self._metrics.launch_failed()
            log.error("launch failed: %s", error, extra={"session_id": str(session_id)})
            raise
        self._metrics.browser_launched()
        return handle, False

    def _pool_spec(self) -> LaunchSpec:
        assert self._pool is not None
        return self._pool.spec

    def _log_cold_reason(self, session_id: SessionId, spec: LaunchSpec) -> None:
        if self._pool is None:
            return
        reason = "the pool is empty" if self._pool.serves(spec) else "no pooled browser fits"
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

    async def _abort_launched(self, session: Session, handle: BrowserHandle) -> None:
        self._running.pop(session.id, None)
        await self._gateway.close(session.token)
        await handle.close()
        await self._store.mark_failed(session.id)

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
        return self._live(await self._store.get(principal.project_id, session_id))

    async def list(self, principal: Principal, query: SessionQuery) -> SessionPage:
        page = await self._store.list(principal.project_id, query)
        return replace(page, items=tuple(self._live(s) for s in page.items))

    def _live(self, session: Session) -> Session:
        """A session this instance runs shows its egress traffic up to this moment."""
        running = self._running.get(session.id)
        if running is None or session.status is SessionStatus.STOPPED:
            return session
        return replace(session, proxy_bytes=running.handle.egress_bytes)

    # -- stop -----------------------------------------------------------------------------
    async def stop(self, principal: Principal, session_id: SessionId) -> Session:
        session = await self._store.get(principal.project_id, session_id)
        if session.status is SessionStatus.STOPPED:
            return session
        if session.owner == self._config.instance:
            return await self.stop_local(session_id, StopReason.USER, self._clock())
        return await self._stop_remote(session)

    async def stop_local(self, session_id: SessionId, reason: StopReason, at: datetime) -> Session:
        """Stop a session whose browser this instance owns; concurrent calls share one teardown."""
        existing = self._teardowns.get(session_id)
        if existing is None:
            existing = self._tasks.spawn(
                self._teardown(session_id, reason, at), name=f"stop-{session_id}"
            )
            self._teardowns[session_id] = existing
            existing.add_done_callback(lambda _t: self._teardowns.pop(session_id, None))
        return await asyncio.shield(existing)

    async def _teardown(self, session_id: SessionId, reason: StopReason, at: datetime) -> Session:
        session = await self._store.request_stop(session_id, reason, at)
        if session.status is SessionStatus.STOPPED:
            return session
        running = self._running.pop(session_id, None)
        await self._gateway.close(session.token)
        proxy_bytes = session.proxy_bytes
        if running is not None:
            await running.handle.close()
            proxy_bytes = running.handle.egress_bytes  # final: the proxy is closed
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
        self._metrics.session_stopped(session.project_id, session.stop_reason or reason)
        log.info(
            "session stopped (%s), billed %s min",
            session.stop_reason or reason,
            bill.billed_minutes,
            extra={"session_id": str(session_id)},
        )
        return stopped

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

    async def stop_abandoned(self, session: Session, at: datetime) -> Session:
        """Finish a session whose owner died: no browser of ours to close, just bill it."""
        adopted = await self._store.adopt(session.id, self._config.instance)
        if adopted is None:
            raise SessionNotFound(str(session.id))
        end = min(at, adopted.timeout_at)
        return await self.stop_local(adopted.id, StopReason.ORPHANED, end)

    def is_tearing_down(self, session_id: SessionId) -> bool:
        return session_id in self._teardowns

    # -- shutdown -------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop every session this instance runs, bill them, and leave no process behind."""
        now = self._clock()
        ids = list(self._running)
        results = await asyncio.gather(
            *(self.stop_local(i, StopReason.SHUTDOWN, now) for i in ids), return_exceptions=True
        )
        for session_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "stop at shutdown failed",
                    exc_info=result,
                    extra={"session_id": str(session_id)},
                )
        for running in list(self._running.values()):
            await running.handle.close()
        self._running.clear()
        await self._tasks.close()


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


def _screen(spec: LaunchSpec) -> tuple[int, int]:
    return (spec.screen_width, spec.screen_height)


def with_running_cost(session: Session, now: datetime) -> Session:
    """While active, the session shows the costs so far (contract §13.2)."""
    if session.cost_micros is not None or session.status is SessionStatus.STOPPED:
        return session
    bill = pricing.bill(session.started_at, now, session.request.timeout_minutes)
    egress = pricing.egress_cost_micros(session.proxy_bytes, session.proxy_rate_micros_per_gb)
    return replace(session, cost_micros=bill.cost_micros, proxy_cost_micros=egress)
