"""The session service over the real store (SQLite and PostgreSQL), with a fake browser runtime."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from runtime_fakes import FakeBrowser, FakeGateway, FakeLauncher
from sqlalchemy import update as sa_update

from browserfleet.auth.model import Principal
from browserfleet.auth.signing import ServerSecret
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.pool import WarmPool
from browserfleet.egress import PoolPlanner
from browserfleet.errors import (
    BrowserLaunchFailed,
    ConcurrencyLimitReached,
    DatabaseUnavailable,
    HostAtCapacity,
    InsufficientCredits,
    ProfileNotFound,
    SessionNotFound,
    TimeoutLimitExceeded,
)
from browserfleet.ids import ApiKeyId, InstanceId, SessionId
from browserfleet.proxy import EgressGuard, parse_pool_config
from browserfleet.regions import COUNTRY_REGIONS
from browserfleet.sessions import service as service_module
from browserfleet.sessions.ending import EndPhase, SessionEnd
from browserfleet.sessions.lifecycle import InvalidTransition
from browserfleet.sessions.model import (
    Session,
    SessionQuery,
    SessionRequest,
    SessionStatus,
    StopReason,
)
from browserfleet.sessions.reaper import FENCE_HEARTBEATS, Reaper, ReaperConfig
from browserfleet.sessions.server_lease import ServerLease
from browserfleet.sessions.service import RuntimeConfig, SessionService, with_running_cost
from browserfleet.store.engine import create_engine
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore
from browserfleet.store.tables import sessions as sessions_table
from browserfleet.tasks import TaskSet

T0 = datetime(2026, 7, 15, 20, 0, tzinfo=UTC)
SECRET = ServerSecret(b"s" * 32)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True)
class Uploaded:
    name: str
    path: Path
    size: int


@dataclass
class World:
    service: SessionService
    store: SqlSessionStore
    projects: SqlProjectStore
    launcher: FakeLauncher
    gateway: FakeGateway
    clock: Clock
    caller: Principal
    config: RuntimeConfig

    def reaper(self, service: SessionService | None = None) -> Reaper:
        return Reaper(
            service or self.service,
            self.store,
            self.launcher,
            ReaperConfig(3600, 2.0, self.config.sessions_dir),
            self.clock,
        )

    def another_service(self) -> SessionService:
        config = RuntimeConfig(
            instance=InstanceId("second"),
            sessions_dir=self.config.sessions_dir,
            mode=HeadlessMode.NEW,
            extra_args=(),
            default_concurrent_limit=3,
            host_max_browsers=5,
        )
        return SessionService(
            self.store, self.launcher, self.gateway, config, self.clock, secret=SECRET
        )


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[World]:
    engine = create_engine(database_url)
    projects, store = SqlProjectStore(engine), SqlSessionStore(engine)
    project = await projects.create_project("p")
    launcher, gateway, clock = FakeLauncher(), FakeGateway(), Clock()
    config = RuntimeConfig(
        instance=InstanceId("first"),
        sessions_dir=tmp_path / "sessions",
        mode=HeadlessMode.NEW,
        extra_args=(),
        default_concurrent_limit=3,
        host_max_browsers=5,
    )
    service = SessionService(store, launcher, gateway, config, clock, secret=SECRET)
    caller = Principal(project.id, ApiKeyId(project.id))
    world = World(service, store, projects, launcher, gateway, clock, caller, config)
    try:
        yield world
    finally:
        await world.service.shutdown()
        await engine.dispose()


async def test_create_then_stop_after_ten_seconds_bills_one_minute(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    assert session.status is SessionStatus.ACTIVE
    assert session.token in world.gateway.routes
    world.clock.advance(seconds=10)
    stopped = await world.service.stop(world.caller, session.id)
    assert stopped.status is SessionStatus.STOPPED
    assert stopped.cost_micros == 333
    assert stopped.finished_at == T0 + timedelta(seconds=10)
    assert stopped.stop_reason is StopReason.USER
    assert world.launcher.browsers[0].closed == 1
    assert session.token in world.gateway.closed
    entries = await world.projects.ledger_for_session(session.id)
    assert sorted(e.amount_micros or 0 for e in entries) == sorted([-20_000, 20_000 - 333])


async def test_second_stop_returns_the_same_view_and_refunds_once(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    first = await world.service.stop(world.caller, session.id)
    world.clock.advance(minutes=5)
    second = await world.service.stop(world.caller, session.id)
    assert second == first
    assert len(await world.projects.ledger_for_session(session.id)) == 2


async def test_concurrent_stops_share_one_teardown(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    results = await asyncio.gather(
        *(world.service.stop(world.caller, session.id) for _ in range(5))
    )
    assert len({r.finished_at for r in results}) == 1
    assert world.launcher.browsers[0].closed == 1
    assert len(await world.projects.ledger_for_session(session.id)) == 2


async def test_a_browser_that_dies_ends_its_session(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    world.clock.advance(minutes=2, seconds=30)
    world.launcher.browsers[0].crash()
    for _ in range(100):
        current = await world.store.get(world.caller.project_id, session.id)
        if current.status is SessionStatus.STOPPED:
            break
        await asyncio.sleep(0.01)
    assert current.status is SessionStatus.STOPPED
    assert current.stop_reason is StopReason.CRASH
    assert current.cost_micros == 1_000  # 3 minutes


async def test_launch_failure_leaves_nothing_and_refunds(world: World) -> None:
    world.launcher.fail_next = True
    with pytest.raises(BrowserLaunchFailed):
        await world.service.create(world.caller, SessionRequest())
    page = await world.service.list(world.caller, SessionQuery())
    assert page.total == 0
    project = await world.projects.get_project(world.caller.project_id)
    assert project is not None and project.active_count == 0
    # the slot is free again: three more fit under the limit of 3
    for _ in range(3):
        await world.service.create(world.caller, SessionRequest())


async def test_cancelled_create_releases_its_slot(world: World) -> None:
    task, session_id = await _create_in_background(world)  # held at its launch
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_failed_and_refunded(world, session_id)
    assert world.service.local_browser_count() == 0
    assert world.service.creating() == frozenset()


async def test_parallel_creates_never_exceed_the_project_limit(world: World) -> None:
    world.service = SessionService(
        world.store,
        world.launcher,
        world.gateway,
        replace(world.config, host_max_browsers=20),
        world.clock,
        secret=SECRET,
    )
    results = await asyncio.gather(
        *(world.service.create(world.caller, SessionRequest()) for _ in range(10)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ConcurrencyLimitReached)]
    assert (len(created), len(refused)) == (3, 7)
    assert len(world.launcher.browsers) == 3


async def test_host_capacity_refusal_releases_the_reservation(world: World) -> None:
    await world.projects.update_project("p", concurrent_limit=50)
    for _ in range(5):
        await world.service.create(world.caller, SessionRequest())
    with pytest.raises(HostAtCapacity):
        await world.service.create(world.caller, SessionRequest())
    project = await world.projects.get_project(world.caller.project_id)
    assert project is not None and project.active_count == 5


async def test_insufficient_credits_creates_nothing(world: World) -> None:
    await world.projects.update_project("p", credits_micros=19_999)
    with pytest.raises(InsufficientCredits):
        await world.service.create(world.caller, SessionRequest(timeout_minutes=60))
    assert world.launcher.browsers == []
    session = await world.service.create(world.caller, SessionRequest(timeout_minutes=30))
    project = await world.projects.get_project(world.caller.project_id)
    assert project is not None and project.credit_balance_micros == 9_999
    await world.service.stop(world.caller, session.id)
    project = await world.projects.get_project(world.caller.project_id)
    assert project is not None and project.credit_balance_micros == 19_999 - 333


async def test_validation_order_timeout_then_profile(world: World) -> None:
    with pytest.raises(TimeoutLimitExceeded):
        await world.service.create(
            world.caller, SessionRequest(timeout_minutes=241, profile_id="x")
        )
    with pytest.raises(ProfileNotFound):
        await world.service.create(world.caller, SessionRequest(profile_id="x"))


async def test_timeout_stops_at_timeout_at_with_full_charge(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest(timeout_minutes=15))
    world.clock.advance(minutes=16)
    await world.reaper().sweep()
    for _ in range(100):
        current = await world.store.get(world.caller.project_id, session.id)
        if current.status is SessionStatus.STOPPED:
            break
        await asyncio.sleep(0.01)
    assert current.stop_reason is StopReason.TIMEOUT
    assert current.finished_at == session.timeout_at
    assert current.cost_micros == 5_000


async def test_running_cost_while_active(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    assert with_running_cost(session, T0).cost_micros == 333
    assert with_running_cost(session, T0 + timedelta(minutes=30)).cost_micros == 10_000


async def test_other_projects_cannot_see_or_stop(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    other = await world.projects.create_project("other")
    intruder = Principal(other.id, ApiKeyId(other.id))
    with pytest.raises(SessionNotFound):
        await world.service.get(intruder, session.id)
    with pytest.raises(SessionNotFound):
        await world.service.stop(intruder, session.id)
    assert (await world.service.list(intruder, SessionQuery())).total == 0


async def test_shutdown_stops_and_bills_everything(world: World) -> None:
    ids = [(await world.service.create(world.caller, SessionRequest())).id for _ in range(3)]
    await world.service.shutdown()
    for session_id in ids:
        current = await world.store.get(world.caller.project_id, session_id)
        assert current.status is SessionStatus.STOPPED
        assert current.stop_reason is StopReason.SHUTDOWN
    assert world.launcher.running == []


async def test_orphans_of_a_dead_instance_are_billed_up_to_its_last_heartbeat(
    world: World,
) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    await world.store.heartbeat(InstanceId("first"), "elsewhere", 1, T0 + timedelta(minutes=4))
    world.clock.advance(minutes=30)  # the outage: the browser died with its server
    successor = world.another_service()
    reaper = world.reaper(successor)
    await reaper.start()
    try:
        current = await world.store.get(world.caller.project_id, session.id)
        assert current.status is SessionStatus.STOPPED
        assert current.stop_reason is StopReason.ORPHANED
        assert current.finished_at == T0 + timedelta(minutes=4)
        assert current.cost_micros == 1_333  # 4 minutes, not 30
        assert await _slots_in_use(world) == 0
    finally:
        await reaper.stop_loops()
        await successor.shutdown()


async def test_a_server_presumed_dead_closes_the_browsers_taken_from_it_at_its_next_sweep(
    world: World,
) -> None:
    """Fencing: the first server froze past the orphan timeout; the second settled its
    session as of its last heartbeat. When the first wakes, its sweep closes that browser and
    leaves the row (and the money) as the second booked them."""
    session = await world.service.create(world.caller, SessionRequest())
    await world.store.heartbeat(InstanceId("first"), "elsewhere", 1, T0 + timedelta(minutes=4))
    world.clock.advance(minutes=5)  # the first server is frozen: no heartbeat since
    successor = world.another_service()
    await world.reaper(successor).recover_orphans()
    settled = await world.store.get(world.caller.project_id, session.id)
    assert (settled.status, settled.owner) == (SessionStatus.STOPPED, InstanceId("second"))
    assert world.launcher.browsers[0].closed == 0  # still running on the frozen server

    await world.reaper().sweep()  # the first server wakes up

    assert world.launcher.browsers[0].closed == 1
    assert world.service.local_browser_count() == 0
    assert await world.store.get(world.caller.project_id, session.id) == settled
    assert len(await world.projects.ledger_for_session(session.id)) == 2
    await world.service.shutdown()  # nothing left of it to stop or bill
    assert len(await world.projects.ledger_for_session(session.id)) == 2
    await successor.shutdown()


async def test_the_sweep_leaves_alone_a_session_created_while_it_reads(world: World) -> None:
    """A session created from start to end while the sweep's query runs is absent from what
    the query returns, yet is no session taken over: the sweep noted the browsers running
    here before it asked."""
    created: list[Session] = []

    class CreateDuringTheQuery:
        def __getattr__(self, name: str) -> object:
            return getattr(world.store, name)

        async def live_owned_by(self, owner: InstanceId) -> Sequence[Session]:
            found = await world.store.live_owned_by(owner)
            created.append(await world.service.create(world.caller, SessionRequest()))
            return found

    reaper = Reaper(
        world.service,
        CreateDuringTheQuery(),  # type: ignore[arg-type]
        world.launcher,
        ReaperConfig(3600, 2.0, world.config.sessions_dir),
        world.clock,
    )
    await reaper.sweep()

    assert [s.id for s in created] and world.launcher.browsers[0].closed == 0
    current = await world.store.get(world.caller.project_id, created[0].id)
    assert current.status is SessionStatus.ACTIVE


async def test_stop_from_another_instance_is_carried_out_by_the_owner(world: World) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    second = world.another_service()
    reaper = world.reaper()  # the owner's sweep

    async def owner_sweeps() -> None:
        for _ in range(50):
            await reaper.sweep()
            await asyncio.sleep(0.02)

    stopped, _ = await asyncio.gather(second.stop(world.caller, session.id), owner_sweeps())
    assert stopped.status is SessionStatus.STOPPED
    assert world.launcher.browsers[0].closed == 1
    await reaper.stop_loops()
    await second.shutdown()


async def _pooled_service(world: World, size: int) -> tuple[SessionService, WarmPool[FakeBrowser]]:
    spec = LaunchSpec(mode=HeadlessMode.NEW, screen_width=1920, screen_height=1080)
    holder: dict[str, SessionService] = {}
    pool: WarmPool[FakeBrowser] = WarmPool(
        world.launcher,
        spec,
        size=size,
        root=world.config.sessions_dir,
        has_room=lambda: holder["s"].pool_has_room(pool.total),
    )
    service = SessionService(
        world.store, world.launcher, world.gateway, world.config, world.clock, pool, secret=SECRET
    )
    holder["s"] = service
    world.service = service
    pool.start()
    async with asyncio.timeout(5):
        while pool.ready < size:
            await asyncio.sleep(0.005)
    return service, pool


async def test_pool_hit_reshapes_only_when_the_screen_differs(world: World) -> None:
    service, pool = await _pooled_service(world, size=2)
    try:
        first = await service.create(world.caller, SessionRequest())
        second = await service.create(
            world.caller, SessionRequest(screen_width=1280, screen_height=720)
        )
        used = {b.pid: b for b in world.launcher.browsers}
        assert used[first.browser_pid or 0].reshaped is None
        assert used[second.browser_pid or 0].reshaped == (1280, 720)
        assert len(world.launcher.browsers) >= 2
    finally:
        await pool.aclose()


async def test_a_request_the_pool_cannot_serve_launches_cold(world: World) -> None:
    service, pool = await _pooled_service(world, size=1)
    try:
        session = await service.create(world.caller, SessionRequest(pdf_viewer=False))
        browser = next(b for b in world.launcher.browsers if b.pid == session.browser_pid)
        assert browser.spec.pdf_viewer is False
        assert pool.ready == 1  # untouched
    finally:
        await pool.aclose()


async def test_sessions_evict_pooled_browsers_when_the_host_is_full(world: World) -> None:
    await world.projects.update_project("p", concurrent_limit=50)
    service, pool = await _pooled_service(world, size=2)  # host max is 5
    try:
        for _ in range(5):
            await service.create(world.caller, SessionRequest(pdf_viewer=False))  # all cold
        assert pool.total == 0
        with pytest.raises(HostAtCapacity):
            await service.create(world.caller, SessionRequest())
    finally:
        await pool.aclose()


async def test_a_refused_session_returns_its_pristine_pooled_browser(world: World) -> None:
    await world.projects.update_project("p", concurrent_limit=1)
    service, pool = await _pooled_service(world, size=2)
    try:
        await service.create(world.caller, SessionRequest())
        async with asyncio.timeout(5):
            while pool.ready < 2:
                await asyncio.sleep(0.005)
        launched = len(world.launcher.browsers)
        with pytest.raises(ConcurrencyLimitReached):
            await service.create(world.caller, SessionRequest())
        assert pool.ready == 2  # back in line, unused (a surplus refill is closed)
        assert sum(b.closed for b in world.launcher.browsers) <= 1
        with pytest.raises(ConcurrencyLimitReached):
            await service.create(world.caller, SessionRequest(screen_width=800, screen_height=600))
        reshaped = [b for b in world.launcher.browsers if b.reshaped == (800, 600)]
        assert len(reshaped) == 1 and reshaped[0].closed == 1  # reshaped: not pristine, closed
        assert len(world.launcher.browsers) >= launched
    finally:
        await pool.aclose()


async def test_a_launcher_out_of_room_gets_a_pooled_browsers_room(world: World) -> None:
    """A launcher that counts its own room (a cluster's slots) refuses a cold launch while
    the pool holds every slot: a pooled browser gives its room up, then the launch succeeds;
    with no pooled browser left, the refusal stands; the pool refills once room is back."""
    await world.projects.update_project("p", concurrent_limit=50)
    world.launcher.slots = 2
    service, pool = await _pooled_service(world, size=2)
    try:
        cold = SessionRequest(pdf_viewer=False)  # a spec the pool does not serve
        first = await service.create(world.caller, cold)
        assert (first.status, pool.ready) == (SessionStatus.ACTIVE, 1)
        second = await service.create(world.caller, cold)
        assert (second.status, pool.total) == (SessionStatus.ACTIVE, 0)
        pooled = [b for b in world.launcher.browsers if b.spec.pdf_viewer]
        assert len(pooled) == 2 and all(b.closed for b in pooled)
        with pytest.raises(HostAtCapacity):
            await service.create(world.caller, cold)
        assert await _slots_in_use(world) == 2
        await service.stop(world.caller, first.id)
        async with asyncio.timeout(10):  # the refill was deferred, not given up
            while pool.ready < 1:
                await asyncio.sleep(0.01)
    finally:
        await pool.aclose()


async def test_remote_browsers_take_uploads_through_their_node_and_keep_their_files_there(
    world: World,
) -> None:
    """Browsers on cluster nodes: uploads received here and handed to the node (which names
    them), and a dead server's session directory (a node's path, even one that exists here) is
    never read or removed by this host."""
    remote = replace(world.config, remote_browsers=True)
    service = SessionService(
        world.store, world.launcher, world.gateway, remote, world.clock, secret=SECRET
    )
    world.service = service
    session = await service.create(world.caller, SessionRequest(enable_recording=True))
    browser = world.launcher.running[-1]

    async def receive(directory: Path) -> list[Uploaded]:
        (directory / "cv.txt").write_bytes(b"my cv")
        return [Uploaded("cv.txt", directory / "cv.txt", 5)]

    area, stored = await service.upload(world.caller, session.id, receive)
    assert (area, stored) == (browser.files.uploads, [("cv (2).txt", 5)])
    assert browser.uploads == [("cv.txt", b"my cv")]
    assert not list(world.config.sessions_dir.glob(".uploads-*"))  # received, sent, removed

    # Its server dies; a successor on this host settles it without touching its directory
    # (here a path on this host too, as on a one-machine cluster).
    node_dir = world.config.sessions_dir.parent / "node" / "sessions" / str(session.id)
    node_dir.mkdir(parents=True)
    (node_dir / "state").write_text("the node's")
    async with world.store.engine.begin() as conn:
        await conn.execute(
            sa_update(sessions_table)
            .where(sessions_table.c.id == session.id)
            .values(session_dir=str(node_dir))
        )
    await world.store.heartbeat(InstanceId("first"), "elsewhere", 1, T0 + timedelta(minutes=1))
    world.clock.advance(minutes=30)
    successor = SessionService(
        world.store,
        world.launcher,
        world.gateway,
        replace(remote, instance=InstanceId("second")),
        world.clock,
        secret=SECRET,
    )
    reaper = world.reaper(successor)
    await reaper.start()
    try:
        settled = await world.store.get(world.caller.project_id, session.id)
        assert (settled.status, settled.stop_reason) == (SessionStatus.STOPPED, StopReason.ORPHANED)
        await successor.shutdown()  # its ends are done
        assert (node_dir / "state").read_text() == "the node's"
        assert world.launcher.removed == []
    finally:
        await reaper.stop_loops()
        await successor.shutdown()


# ---- crash safety: no row stays in an intermediate state ----------------------------------


async def _slots_in_use(world: World) -> int:
    project = await world.projects.get_project(world.caller.project_id)
    assert project is not None
    return project.active_count


async def _wait_for_status(world: World, session_id: SessionId, status: SessionStatus) -> Session:
    async with asyncio.timeout(5):
        while True:
            current = await world.store.get_any(session_id)
            if current is not None and current.status is status:
                return current
            await asyncio.sleep(0.005)


async def _create_in_background(world: World) -> tuple[asyncio.Task[Session], SessionId]:
    """A create held at its launch (the launcher's gate), once its STARTING row exists."""
    world.launcher.gate = asyncio.Event()
    tasks = TaskSet("test-creates")
    task = tasks.spawn(world.service.create(world.caller, SessionRequest()), name="create")
    async with asyncio.timeout(5):
        while not world.service.creating():
            await asyncio.sleep(0.005)
    (session_id,) = world.service.creating()
    await _wait_for_status(world, session_id, SessionStatus.STARTING)
    return task, session_id


async def _assert_failed_and_refunded(world: World, session_id: SessionId) -> None:
    failed = await _wait_for_status(world, session_id, SessionStatus.FAILED)
    assert failed.cost_micros == 0
    entries = await world.projects.ledger_for_session(session_id)
    assert sorted((e.kind.value, e.amount_micros) for e in entries) == [
        ("charge", -20_000),
        ("refund", 20_000),
    ]
    assert await _slots_in_use(world) == 0


async def test_a_create_caught_by_a_crash_is_failed_and_refunded_by_the_next_start(
    world: World,
) -> None:
    task, session_id = await _create_in_background(world)
    workdir = world.config.sessions_dir / str(session_id)
    workdir.mkdir(parents=True)  # what the launch had written so far
    # The server "dies": its heartbeat stops; a successor starts on the same database.
    await world.store.heartbeat(InstanceId("first"), "elsewhere", 1, T0)
    world.clock.advance(minutes=1)
    successor = world.another_service()
    reaper = world.reaper(successor)
    await reaper.start()
    try:
        await _assert_failed_and_refunded(world, session_id)
        assert workdir in world.launcher.removed  # its files go too
    finally:
        await reaper.stop_loops()
        await successor.shutdown()
    assert world.launcher.gate is not None
    world.launcher.gate.set()  # the "dead" create wakes up: it can no longer go active
    with pytest.raises(InvalidTransition):
        await task
    assert world.launcher.running == []
    assert (await world.store.get_any(session_id)).status is SessionStatus.FAILED  # type: ignore[union-attr]


async def test_the_sweep_fails_a_starting_row_of_its_own_that_no_create_holds(
    world: World,
) -> None:
    # A create lost without its cleanup (the row was written, then the task vanished).
    lost = replace(
        (await world.service.create(world.caller, SessionRequest())),
        id=SessionId(uuid.uuid4()),
        token="lost-token",
        status=SessionStatus.STARTING,
        session_dir=str(world.config.sessions_dir / "lost"),
    )
    await world.store.reserve(lost, 10)
    await world.reaper().sweep()
    await _wait_for_status(world, lost.id, SessionStatus.FAILED)
    entries = await world.projects.ledger_for_session(lost.id)
    assert sum(e.amount_micros or 0 for e in entries) == 0
    assert world.config.sessions_dir / "lost" in world.launcher.removed


async def test_a_create_past_its_deadline_is_cancelled_and_settled(world: World) -> None:
    task, session_id = await _create_in_background(world)
    await world.reaper().sweep()  # in flight and young: left alone
    assert not task.done()
    world.clock.advance(minutes=6)
    await world.reaper().sweep()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_failed_and_refunded(world, session_id)


async def test_shutdown_fails_a_create_that_outlives_its_grace(world: World) -> None:
    world.service = SessionService(
        world.store,
        world.launcher,
        world.gateway,
        replace(world.config, shutdown_grace_s=0.2),
        world.clock,
        secret=SECRET,
    )
    task, session_id = await _create_in_background(world)
    await world.service.shutdown()
    assert task.done()
    await _assert_failed_and_refunded(world, session_id)
    with pytest.raises(HostAtCapacity):  # the door is closed
        await world.service.create(world.caller, SessionRequest())


async def test_shutdown_waits_for_a_create_in_flight_then_stops_it(world: World) -> None:
    task, session_id = await _create_in_background(world)
    shutdown = asyncio.gather(world.service.shutdown())
    await asyncio.sleep(0)  # shutdown has begun and waits for the create
    assert world.launcher.gate is not None
    world.launcher.gate.set()
    await shutdown
    assert (await task).status is SessionStatus.ACTIVE
    stopped = await _wait_for_status(world, session_id, SessionStatus.STOPPED)
    assert stopped.stop_reason is StopReason.SHUTDOWN
    assert await _slots_in_use(world) == 0
    assert world.launcher.running == []


async def test_a_dead_neighbour_on_this_host_is_settled_at_once_at_its_last_heartbeat(
    world: World,
) -> None:
    session = await world.service.create(world.caller, SessionRequest())
    gone_pid = _a_pid_that_is_not_running()
    now = T0 + timedelta(seconds=30)
    await world.store.heartbeat(InstanceId("first"), socket.gethostname(), gone_pid, now)
    world.clock.now = now + timedelta(seconds=1)  # the heartbeat is fresh, the process is gone
    successor = world.another_service()
    reaper = world.reaper(successor)
    await reaper.start()
    try:
        current = await world.store.get(world.caller.project_id, session.id)
        assert (current.status, current.finished_at) == (SessionStatus.STOPPED, now)
        assert current.cost_micros == 333
        assert InstanceId("first") not in {i.id for i in await world.store.instances()}
    finally:
        await reaper.stop_loops()
        await successor.shutdown()


def _a_pid_that_is_not_running() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_a_sessions_browser_is_localized_to_its_routes_region_before_it_is_active(
    tmp_path: Path, database_url: str
) -> None:
    engine = create_engine(database_url)
    projects, store = SqlProjectStore(engine), SqlSessionStore(engine)
    project = await projects.create_project("p")
    launcher = FakeLauncher()
    config = RuntimeConfig(
        instance=InstanceId("first"),
        sessions_dir=tmp_path / "sessions",
        mode=HeadlessMode.NEW,
        extra_args=(),
        default_concurrent_limit=3,
        host_max_browsers=5,
    )
    pools = parse_pool_config('[countries]\nde = ["http://127.0.0.1:9"]\n')
    planner = PoolPlanner(pools, EgressGuard(allow_networks=()))
    service = SessionService(
        store, launcher, FakeGateway(), config, Clock(), planner=planner, secret=SECRET
    )
    caller = Principal(project.id, ApiKeyId(project.id))
    try:
        await service.create(caller, SessionRequest(proxy_country_code="de"))
        await service.create(caller, SessionRequest(proxy_country_code=None))
        assert [b.regions for b in launcher.browsers] == [[COUNTRY_REGIONS["de"]], [None]]
    finally:
        await service.shutdown()
        await engine.dispose()


# -- the end of a session: steps after the stop's answer ---------------------------------


@dataclass
class RecordingStep:
    """An end step that notes what it was given, and can be held until released."""

    phase: EndPhase
    name: str = "record"
    timeout_s: float = 5.0
    hold: asyncio.Event | None = None
    ends: list[SessionEnd] = field(default_factory=list)
    browser_alive: list[bool] = field(default_factory=list)

    def wanted(self, session: Session) -> bool:
        return True

    async def run(self, end: SessionEnd) -> None:
        self.ends.append(end)
        if isinstance(end.browser, FakeBrowser):
            self.browser_alive.append(end.browser.closed == 0 and end.browser.quits == 0)
        if self.hold is not None:
            await self.hold.wait()


def _with_steps(world: World, *steps: RecordingStep) -> SessionService:
    world.service = SessionService(
        world.store,
        world.launcher,
        world.gateway,
        world.config,
        world.clock,
        secret=SECRET,
        end_steps=steps,
    )
    return world.service


async def test_a_remote_browsers_state_is_brought_here_for_the_closed_steps(
    world: World,
) -> None:
    """A browser on a cluster node: the LIVE steps get no workdir (its node's path is never
    read here); after the graceful close, its downloads (and its profile state, for a session
    with a profile) are brought into a directory of this host for the CLOSED steps, removed
    after them; with none to bring, they do not run."""
    live, closed = RecordingStep(EndPhase.LIVE), RecordingStep(EndPhase.CLOSED)
    closed.hold = asyncio.Event()
    service = SessionService(
        world.store,
        world.launcher,
        world.gateway,
        replace(world.config, remote_browsers=True),
        world.clock,
        secret=SECRET,
        end_steps=(live, closed),
    )
    world.service = service
    session = await service.create(world.caller, SessionRequest())
    browser = world.launcher.running[-1]
    browser.state = b"the node's cookies"  # not asked for: the session has no profile
    browser.downloads = {"a.csv": b"1,2", "b.bin": b"x" * 10}
    await service.stop(world.caller, session.id)
    async with asyncio.timeout(5):
        while not closed.ends:
            await asyncio.sleep(0.005)
    here = closed.ends[0].workdir
    assert here is not None and here.parent == world.config.sessions_dir
    assert sorted(p.name for p in (here / "downloads").iterdir()) == ["a.csv", "b.bin"]
    assert not (here / "profile").exists()
    assert live.ends[0].workdir is None and browser.quits == 1
    closed.hold.set()
    await service.wait_ended(session.id)
    assert not here.exists() and browser.closed == 1

    second = await service.create(world.caller, SessionRequest())
    await service.stop(world.caller, second.id)
    await service.wait_ended(second.id)
    assert len(live.ends) == 2 and len(closed.ends) == 1  # nothing brought: nothing to read


async def test_stop_answers_before_the_end_steps_finish(world: World) -> None:
    hold = asyncio.Event()
    live, closed = RecordingStep(EndPhase.LIVE, hold=hold), RecordingStep(EndPhase.CLOSED)
    service = _with_steps(world, live, closed)
    session = await service.create(world.caller, SessionRequest())
    stopped = await service.stop(world.caller, session.id)
    assert stopped.status is SessionStatus.STOPPED and stopped.cost_micros is not None
    browser = world.launcher.browsers[0]
    assert browser.egress_ended  # the egress count was final before billing
    while not live.ends:
        await asyncio.sleep(0.01)
    assert browser.closed == 0 and live.browser_alive == [True]
    assert live.ends[0].browser is browser and live.ends[0].session.id == session.id
    assert await world.store.ending_with_profile(world.caller.project_id, "x", T0) == 0
    hold.set()
    await service.wait_ended(session.id)
    assert browser.quits == 1 and browser.closed == 1  # graceful close, then the teardown
    assert closed.ends[0].browser is None and closed.ends[0].workdir == browser.workdir


async def test_a_stop_answered_through_the_api_ends_the_browser_only_after_its_answer(
    world: World,
) -> None:
    live = RecordingStep(EndPhase.LIVE)
    service = _with_steps(world, live)
    session = await service.create(world.caller, SessionRequest())
    answered = asyncio.Event()
    stopped = await service.stop(world.caller, session.id, answered=answered)
    assert stopped.status is SessionStatus.STOPPED
    browser = world.launcher.browsers[0]
    # Unreachable already (the egress is closed, the gateway's token revoked) but not torn
    # down: the answer has not gone out yet.
    assert browser.egress_ended and world.gateway.closed and not world.gateway.routes
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not live.ends and browser.closed == 0
    loop = asyncio.get_running_loop()
    answered.set()
    sent_at = loop.time()
    await service.wait_ended(session.id)
    assert browser.closed == 1 and len(live.ends) == 1
    assert loop.time() - sent_at >= service_module.ANSWER_SETTLE_S * 0.9


async def test_an_answer_that_never_goes_out_delays_the_end_by_a_bounded_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "ANSWER_WAIT_S", 0.3)
    service = world.service
    session = await service.create(world.caller, SessionRequest())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await service.stop(world.caller, session.id, answered=asyncio.Event())
    await service.wait_ended(session.id)
    assert world.launcher.browsers[0].closed == 1
    assert 0.25 <= loop.time() - started < 5


async def test_a_browser_still_ending_counts_against_the_hosts_capacity(world: World) -> None:
    hold = asyncio.Event()
    service = _with_steps(world, RecordingStep(EndPhase.LIVE, hold=hold))
    await world.projects.update_project("p", concurrent_limit=50)
    sessions = [await service.create(world.caller, SessionRequest()) for _ in range(5)]
    await service.stop(world.caller, sessions[0].id)  # answered; its browser runs on, held
    with pytest.raises(HostAtCapacity):
        await service.create(world.caller, SessionRequest())
    hold.set()
    await service.wait_ended(sessions[0].id)
    assert service.local_browser_count() == 4
    await service.create(world.caller, SessionRequest())


async def test_a_create_sees_a_profile_session_ending_until_its_end_is_over(world: World) -> None:
    hold = asyncio.Event()
    service = _with_steps(world, RecordingStep(EndPhase.CLOSED, hold=hold))
    profile = str(uuid.uuid4())
    session = await _create_with_profile_row(world, service, profile)
    await world.store.heartbeat(world.config.instance, "here", 1, datetime.now(UTC))
    await service.stop(world.caller, session.id)
    assert await world.store.ending_with_profile(world.caller.project_id, profile, T0) == 1
    # Not waited for when its server is silent (dead): that end is never coming.
    await world.store.heartbeat(
        world.config.instance, "here", 1, datetime.now(UTC) - timedelta(hours=1)
    )
    assert await world.store.ending_with_profile(world.caller.project_id, profile, T0) == 0
    await world.store.heartbeat(world.config.instance, "here", 1, datetime.now(UTC))
    hold.set()
    await service.wait_ended(session.id)
    assert await world.store.ending_with_profile(world.caller.project_id, profile, T0) == 0


async def _create_with_profile_row(world: World, service: SessionService, profile: str) -> Session:
    """A session row naming a profile (the profile service is not part of this test)."""
    session = await service.create(world.caller, SessionRequest())
    async with world.store._engine.begin() as conn:
        await conn.execute(
            sa_update(sessions_table)
            .where(sessions_table.c.id == session.id)
            .values(profile_id=profile)
        )
    return session


async def test_a_crashed_browser_still_gets_its_closed_steps(world: World) -> None:
    closed = RecordingStep(EndPhase.CLOSED)
    service = _with_steps(world, closed)
    session = await service.create(world.caller, SessionRequest())
    world.launcher.browsers[0].crash()
    while not closed.ends:
        await asyncio.sleep(0.01)
    await service.wait_ended(session.id)
    current = await world.store.get(world.caller.project_id, session.id)
    assert current.stop_reason is StopReason.CRASH
    assert closed.ends[0].workdir == world.launcher.browsers[0].workdir


async def test_shutdown_waits_for_every_end(world: World) -> None:
    hold = asyncio.Event()
    step = RecordingStep(EndPhase.CLOSED, hold=hold)
    service = _with_steps(world, step)
    first = await service.create(world.caller, SessionRequest())
    second = await service.create(world.caller, SessionRequest())
    shutting = asyncio.get_running_loop().create_future()

    async def shut() -> None:
        await service.shutdown()
        shutting.set_result(None)

    tasks = TaskSet("test")
    tasks.spawn(shut(), name="shutdown")
    while len(step.ends) < 2:
        await asyncio.sleep(0.01)
    assert not shutting.done()
    assert all(b.closed == 0 for b in world.launcher.browsers)
    hold.set()
    await shutting
    assert all(b.closed == 1 for b in world.launcher.browsers)
    for session in (first, second):
        current = await world.store.get(world.caller.project_id, session.id)
        assert current.stop_reason is StopReason.SHUTDOWN
    await tasks.close()


# ---- the lease: a server cut off from the database ends its own browsers -----------------


class CutOffStore:
    """The real store, except that heartbeats fail while `cut` (the database is out of reach
    for this server's lease; everything else of the test still reads the database)."""

    def __init__(self, store: SqlSessionStore) -> None:
        self._store = store
        self.cut = False

    async def heartbeat(self, *args: Any) -> None:
        if self.cut:
            raise OSError("connection refused")
        await self._store.heartbeat(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


LEASE_INTERVAL_S = 0.05


async def _fenced_world(world: World) -> tuple[Reaper, CutOffStore, Session]:
    """A session running, its server's lease taken at T0, then the database cut off and the
    lease run out: returns once the server has fenced itself."""
    session = await world.service.create(world.caller, SessionRequest())
    store = CutOffStore(world.store)
    reaper = Reaper(
        world.service,
        store,
        world.launcher,
        ReaperConfig(3600, LEASE_INTERVAL_S, world.config.sessions_dir),
        world.clock,
    )
    await reaper.heartbeat()
    assert await reaper.check_lease() == 0  # the lease is fresh
    world.clock.advance(minutes=3)
    store.cut = True
    with pytest.raises(OSError):
        await reaper.heartbeat()  # a failed heartbeat renews nothing
    async with asyncio.timeout(5):
        while (ended := await reaper.check_lease()) == 0:
            await asyncio.sleep(LEASE_INTERVAL_S / 4)
    assert ended == 1
    return reaper, store, session


async def test_a_server_whose_lease_runs_out_ends_its_browsers_and_settles_them_later(
    world: World,
) -> None:
    reaper, store, session = await _fenced_world(world)
    assert world.launcher.browsers[0].closed == 1
    assert SECRET.cdp_token(str(session.id)) in world.gateway.closed
    assert world.service.local_browser_count() == 0
    # The database was not touched: it is out of reach.
    assert (await world.store.get_any(session.id)).status is SessionStatus.ACTIVE  # type: ignore[union-attr]
    assert await reaper.check_lease() == 0  # fenced once

    store.cut = False
    await reaper.heartbeat()
    await reaper.sweep()
    stopped = await _wait_for_status(world, session.id, SessionStatus.STOPPED)
    assert stopped.stop_reason is StopReason.FENCED
    assert stopped.finished_at == T0  # its last heartbeat, not the moment it was settled
    assert stopped.cost_micros == 333  # the minimum minute
    assert len(await world.projects.ledger_for_session(session.id)) == 2  # charge, refund
    assert await _slots_in_use(world) == 0
    assert world.service.fenced() == {}
    # The lease holds again: nothing more is fenced, and new sessions run.
    assert await reaper.check_lease() == 0
    again = await world.service.create(world.caller, SessionRequest())
    assert again.status is SessionStatus.ACTIVE


async def test_no_session_starts_while_the_servers_lease_has_lapsed(world: World) -> None:
    """Cut off, or woken from a freeze: until a heartbeat lands again another server may be
    settling this one's sessions as of its last heartbeat, and would settle a new one too. A
    create that finds the lease lapsed renews it itself, and is refused only when that fails."""
    lease = ServerLease(LEASE_INTERVAL_S * FENCE_HEARTBEATS)
    service = SessionService(
        world.store,
        world.launcher,
        world.gateway,
        world.config,
        world.clock,
        secret=SECRET,
        lease=lease,
    )
    world.service = service  # shut down with the world
    store = CutOffStore(world.store)
    reaper = Reaper(
        service,
        store,
        world.launcher,
        ReaperConfig(3600, LEASE_INTERVAL_S, world.config.sessions_dir),
        world.clock,
        lease,
    )
    loop = asyncio.get_running_loop()
    assert not lease.held(loop.time())  # never renewed yet: the create renews it itself
    first = await service.create(world.caller, SessionRequest())
    assert lease.held(loop.time())
    store.cut = True
    async with asyncio.timeout(5):
        while lease.held(loop.time()):
            await asyncio.sleep(LEASE_INTERVAL_S / 4)
    launched = len(world.launcher.browsers)
    with pytest.raises(DatabaseUnavailable):  # its own heartbeat fails too
        await service.create(world.caller, SessionRequest())
    assert len(world.launcher.browsers) == launched
    assert await _slots_in_use(world) == 1  # the refusal took nothing
    assert await reaper.check_lease() == 1  # and the lapsed lease fences the first
    store.cut = False
    again = await service.create(world.caller, SessionRequest())  # renewed by the create
    assert again.status is SessionStatus.ACTIVE
    assert len(world.launcher.browsers) == launched + 1
    assert first.id != again.id


class RecordingStarts:
    """sessions.ports.SessionStarts that notes what it is told."""

    def __init__(self) -> None:
        self.active: list[SessionId] = []
        self.gone: list[SessionId] = []

    def session_active(self, session: Session, handle: object) -> None:
        self.active.append(session.id)

    def session_gone(self, session_id: SessionId) -> None:
        self.gone.append(session_id)


async def test_a_fenced_browser_is_let_go_of_by_what_its_start_was_told_to(world: World) -> None:
    """The media of a fenced session (its screencast, its recorder) are dropped: no end step
    runs for it."""
    starts = RecordingStarts()
    world.service = SessionService(
        world.store,
        world.launcher,
        world.gateway,
        world.config,
        world.clock,
        secret=SECRET,
        starts=starts,
    )
    _, _, session = await _fenced_world(world)
    assert starts.active == [session.id]
    assert starts.gone == [session.id]


async def test_a_fenced_session_is_never_shown_active_once_the_database_answers(
    world: World,
) -> None:
    _, store, session = await _fenced_world(world)
    store.cut = False
    seen = await world.service.get(world.caller, session.id)  # before any sweep
    assert (seen.status, seen.stop_reason, seen.finished_at) == (
        SessionStatus.STOPPED,
        StopReason.FENCED,
        T0,
    )


async def test_a_fenced_session_another_server_settled_is_left_as_it_settled_it(
    world: World,
) -> None:
    reaper, store, session = await _fenced_world(world)
    world.clock.advance(minutes=5)
    successor = world.another_service()
    await world.reaper(successor).recover_orphans()  # judged dead: settled as of T0
    settled = await world.store.get(world.caller.project_id, session.id)
    assert (settled.status, settled.owner) == (SessionStatus.STOPPED, InstanceId("second"))
    store.cut = False
    await reaper.heartbeat()
    await reaper.sweep()
    assert world.service.fenced() == {}
    assert await world.store.get(world.caller.project_id, session.id) == settled
    assert len(await world.projects.ledger_for_session(session.id)) == 2
    await successor.shutdown()


async def test_shutdown_settles_the_fenced_sessions_as_the_sweep_would(world: World) -> None:
    _, store, session = await _fenced_world(world)
    store.cut = False
    await world.service.shutdown()
    stopped = await world.store.get(world.caller.project_id, session.id)
    assert (stopped.status, stopped.stop_reason, stopped.finished_at) == (
        SessionStatus.STOPPED,
        StopReason.FENCED,
        T0,
    )
    assert await _slots_in_use(world) == 0


async def test_a_browser_that_fails_to_close_its_egress_is_still_fenced_and_settled(
    world: World,
) -> None:
    first = await world.service.create(world.caller, SessionRequest())
    second = await world.service.create(world.caller, SessionRequest())
    broken = world.launcher.browsers[0]

    async def fails() -> None:
        raise OSError("the egress proxy is wedged")

    broken.end_egress = fails  # type: ignore[method-assign]
    assert await world.service.fence(T0) == 2  # the failure does not stop the others
    assert [b.closed for b in world.launcher.browsers] == [1, 1]
    assert world.service.fenced().keys() == {first.id, second.id}
    seen = await world.service.get(world.caller, first.id)
    assert (seen.status, seen.stop_reason) == (SessionStatus.STOPPED, StopReason.FENCED)
