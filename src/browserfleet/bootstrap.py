"""The composition root: the only place where store, runtime and services are built and wired."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from browserfleet.auth.keys import mint_key
from browserfleet.auth.model import DEFAULT_PROJECT_NAME
from browserfleet.auth.service import Authenticator
from browserfleet.billing.account import AccountReader
from browserfleet.browsers.egress import EgressedBrowser, EgressedLauncher
from browserfleet.browsers.enclosure import Enclosures
from browserfleet.browsers.host import HostEnclosures
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.pool import WarmPool
from browserfleet.browsers.process import LocalChromiumLauncher
from browserfleet.capacity import CapacityPolicy, HostAdmission, HostProbe
from browserfleet.cdp.gateway import CdpGatewayServer
from browserfleet.egress import PoolPlanner
from browserfleet.ids import InstanceId
from browserfleet.metrics import CapacityInUse, Metrics
from browserfleet.proxy import EgressGuard, PoolConfig, load_pool_config, parse_networks
from browserfleet.sandbox.runner import SandboxConfig, SandboxRunner
from browserfleet.sandbox.spec import SandboxLimits
from browserfleet.sandbox.uids import UidRange
from browserfleet.sessions.model import DEFAULT_SCREEN_HEIGHT, DEFAULT_SCREEN_WIDTH
from browserfleet.sessions.reaper import STALE_HEARTBEATS, Reaper, ReaperConfig
from browserfleet.sessions.service import RuntimeConfig, SessionService
from browserfleet.settings import MIB, BrowserMode, Isolation, Settings
from browserfleet.store.engine import create_engine
from browserfleet.store.migrate import is_current, upgrade
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore

log = logging.getLogger(__name__)
INITIAL_KEY_FILE = "initial-api-key"
NO_ISOLATION_WARNING = (
    "isolation is 'none': browsers run as the server's own user without an OS sandbox, so any "
    "tenant can read this host's files and reach its network; use it for development only"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a running server holds, for create_app to hand to the routes."""

    sessions: SessionService
    authenticator: Authenticator
    accounts: AccountReader
    gateway: CdpGatewayServer
    projects: SqlProjectStore
    readiness: Callable[[], Awaitable[list[str]]]
    metrics: Metrics
    isolation: Isolation


@asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[tuple[SqlProjectStore, SqlSessionStore]]:
    """Migrated stores over one engine (the CLI uses this too)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = settings.effective_database_url()
    await upgrade(url)
    engine = create_engine(url)
    try:
        orphan_after = timedelta(seconds=settings.heartbeat_interval_s * STALE_HEARTBEATS)
        yield SqlProjectStore(engine), SqlSessionStore(engine, orphan_after=orphan_after)
    finally:
        await engine.dispose()


async def ensure_initial_key(settings: Settings, projects: SqlProjectStore) -> str | None:
    """On an empty database: create the default project and one key; return the key once."""
    if await projects.list_projects():
        return None
    try:
        project = await projects.create_project(DEFAULT_PROJECT_NAME)
    except ValueError:  # another process created it first
        return None
    minted = mint_key()
    await projects.add_api_key(project.id, minted.digest, minted.prefix)
    path = settings.data_dir / INITIAL_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(minted.secret + "\n")
    return minted.secret


async def readiness_problems(settings: Settings) -> list[str]:
    """What keeps this server from serving sessions: an unreachable database, no browser."""
    problems: list[str] = []
    try:
        if not await is_current(settings.effective_database_url()):
            problems.append("database schema is not up to date")
    except Exception as error:  # any driver error means not ready
        problems.append(f"database unreachable: {type(error).__name__}")
    binary = (
        settings.browser.headless_shell_path
        if settings.browser.mode is BrowserMode.HEADLESS_SHELL
        else settings.browser.chromium_path
    )
    if not os.access(binary, os.X_OK):
        problems.append(f"browser binary {binary} is missing or not executable")
    return problems


def _pool_config(settings: Settings) -> PoolConfig:
    path = settings.egress.pools_file
    return load_pool_config(path) if path is not None else PoolConfig()


def _watch_runtime(
    metrics: Metrics, gateway: CdpGatewayServer, service: SessionService, capacity: HostAdmission
) -> None:
    """Values read at scrape time: CDP traffic and host capacity in use."""
    probe = HostProbe()

    def capacity_in_use() -> CapacityInUse:
        snapshot = probe.snapshot()
        return CapacityInUse(
            browsers_running=service.local_browser_count(),
            browsers_max=capacity.policy.max_browsers,
            memory_available_bytes=snapshot.memory_available_bytes,
            load_per_cpu=snapshot.load_per_cpu,
        )

    metrics.watch_cdp(gateway.totals)
    metrics.watch_capacity(capacity_in_use)


def sandbox_config(settings: Settings) -> SandboxConfig:
    sandbox = settings.sandbox
    return SandboxConfig(
        bwrap=sandbox.bwrap_path,
        uids=UidRange(sandbox.uid_first, sandbox.uid_count),
        limits=SandboxLimits(
            memory_bytes=sandbox.memory_mb * MIB,
            pids=sandbox.pids,
            disk_bytes=sandbox.disk_mb * MIB,
            tmp_bytes=sandbox.tmp_mb * MIB,
            shm_bytes=sandbox.shm_mb * MIB,
        ),
        run_dir=sandbox.run_dir,
        executables=(settings.browser.chromium_path, settings.browser.headless_shell_path),
        cgroup_parent=sandbox.cgroup_parent,
    )


def build_enclosures(settings: Settings) -> Enclosures:
    """Where browsers run: each in its own sandbox, or (isolation none) on the host as is.
    Blocking; raises CgroupUnavailable or OSError when sandboxes cannot be prepared."""
    if settings.sandbox.isolation is Isolation.NONE:
        log.warning(NO_ISOLATION_WARNING)
        return HostEnclosures(no_sandbox=settings.browser.no_sandbox)
    runner = SandboxRunner(sandbox_config(settings))
    runner.prepare()
    return runner


def headless_mode(settings: Settings) -> HeadlessMode:
    return (
        HeadlessMode.SHELL
        if settings.browser.mode is BrowserMode.HEADLESS_SHELL
        else HeadlessMode.NEW
    )


@asynccontextmanager
async def build_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Start everything a server needs; on exit stop every session and release everything."""
    async with open_stores(settings) as (projects, store):
        key = await ensure_initial_key(settings, projects)
        if key is not None:
            # Shown once on the operator's terminal; it is never logged.
            sys.stdout.write(
                f"Initial API key (also in {settings.data_dir / INITIAL_KEY_FILE}):\n{key}\n"
            )
            sys.stdout.flush()
        settings.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        enclosures = await asyncio.to_thread(build_enclosures, settings)
        launcher = LocalChromiumLauncher(
            settings.browser.chromium_path,
            settings.browser.headless_shell_path,
            enclosures=enclosures,
            launch_timeout_s=settings.browser.launch_timeout_s,
            parallel_launches=settings.browser.effective_parallel_launches(),
        )
        gateway = CdpGatewayServer()
        config = RuntimeConfig(
            instance=InstanceId(f"{uuid.uuid4()}"),
            sessions_dir=settings.sessions_dir,
            mode=headless_mode(settings),
            extra_args=tuple(settings.browser.extra_args),
            default_concurrent_limit=settings.limits.default_concurrent_sessions,
            host_max_browsers=settings.limits.host_max_browsers,
        )
        pool_spec = LaunchSpec(
            mode=config.mode,
            screen_width=DEFAULT_SCREEN_WIDTH,
            screen_height=DEFAULT_SCREEN_HEIGHT,
            extra_args=config.extra_args,
        )
        metrics = Metrics()
        capacity = HostAdmission(
            HostProbe(),
            CapacityPolicy(
                max_browsers=settings.limits.host_max_browsers,
                retry_after_s=settings.limits.retry_after_s,
            ),
        )
        guard = EgressGuard(allow_networks=parse_networks(settings.egress.allow_networks))
        egressed = EgressedLauncher(
            launcher, guard, connect_timeout_s=settings.egress.connect_timeout_s
        )
        pool: WarmPool[EgressedBrowser] = WarmPool(
            egressed,
            pool_spec,
            size=settings.browser.effective_pool_size(),
            root=settings.sessions_dir,
            has_room=lambda: service.pool_has_room(pool.total),
            on_change=lambda ready, launching: metrics.pool_changed(ready + launching, ready),
            on_launch=lambda ok: metrics.browser_launched() if ok else metrics.launch_failed(),
        )
        service = SessionService(
            store,
            egressed,
            gateway,
            config,
            utc_now,
            pool,
            capacity=capacity,
            metrics=metrics,
            planner=PoolPlanner(_pool_config(settings), guard),
        )
        _watch_runtime(metrics, gateway, service, capacity)
        reaper = Reaper(
            service,
            store,
            egressed,
            ReaperConfig(
                settings.reaper_interval_s, settings.heartbeat_interval_s, settings.sessions_dir
            ),
            utc_now,
        )
        await reaper.start()  # first: it kills and removes what an earlier run left
        pool.start()
        try:
            yield Runtime(
                sessions=service,
                authenticator=Authenticator(projects),
                accounts=AccountReader(projects, settings.limits.default_concurrent_sessions),
                gateway=gateway,
                projects=projects,
                readiness=lambda: readiness_problems(settings),
                metrics=metrics,
                isolation=settings.sandbox.isolation,
            )
        finally:
            await reaper.stop_loops()
            await service.shutdown()
            await pool.aclose()
            await gateway.aclose()
            await reaper.deregister()
            if isinstance(enclosures, SandboxRunner):
                enclosures.close()
