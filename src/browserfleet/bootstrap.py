"""The composition root: the only place where store, runtime and services are built and wired."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from browserfleet.auth.keys import mint_key
from browserfleet.auth.model import DEFAULT_PROJECT_NAME
from browserfleet.auth.service import Authenticator
from browserfleet.auth.signing import ServerSecret, load_or_create_secret, parse_secret
from browserfleet.billing.account import AccountReader
from browserfleet.browsers.egress import EgressedLauncher
from browserfleet.browsers.enclosure import Enclosures
from browserfleet.browsers.host import HostEnclosures
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.pool import PoolLauncher, WarmPool
from browserfleet.browsers.process import LocalChromiumLauncher
from browserfleet.capacity import CapacityPolicy, HostAdmission, HostProbe
from browserfleet.cdp.gateway import CdpGatewayServer, GatewayLimits
from browserfleet.cdp.relay import RelayLimits
from browserfleet.clock import Clock, utc_now
from browserfleet.egress import PoolPlanner, RouteRegions
from browserfleet.errors import SecretMismatch
from browserfleet.ids import InstanceId
from browserfleet.media.service import (
    FinishRecording,
    KeepDownloads,
    MediaConfig,
    MediaService,
    ReleaseMedia,
)
from browserfleet.metrics import CapacityInUse, CdpTraffic, EgressTraffic, Metrics
from browserfleet.profiles.loading import ProfileLoads
from browserfleet.profiles.saving import ProfileSaving, SavingConfig
from browserfleet.profiles.service import ProfileService
from browserfleet.proxy import EgressGuard, PoolConfig, load_pool_config, parse_networks
from browserfleet.proxy.guard import host_addresses
from browserfleet.regions import region_for
from browserfleet.sandbox.runner import SandboxConfig, SandboxRunner
from browserfleet.sandbox.spec import SandboxLimits
from browserfleet.sandbox.uids import UidRange
from browserfleet.sessions.model import DEFAULT_SCREEN_HEIGHT, DEFAULT_SCREEN_WIDTH
from browserfleet.sessions.on_demand import OnDemandSessions
from browserfleet.sessions.ports import BrowserHandle, BrowserLauncher, CdpGateway, HostCapacity
from browserfleet.sessions.reaper import FENCE_HEARTBEATS, STALE_HEARTBEATS, Reaper, ReaperConfig
from browserfleet.sessions.server_lease import ServerLease
from browserfleet.sessions.service import RuntimeConfig, SessionService
from browserfleet.settings import MIB, BrowserMode, Isolation, Settings, StorageBackend
from browserfleet.storage.archive import ArchiveLimits
from browserfleet.storage.local import LocalBlobStore
from browserfleet.storage.port import BlobStore
from browserfleet.store.engine import create_engine
from browserfleet.store.migrate import is_current, upgrade
from browserfleet.store.profiles import SqlProfileStore
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore

log = logging.getLogger(__name__)
INITIAL_KEY_FILE = "initial-api-key"
# Ray counts a cluster's room for browsers: the service itself never refuses one for room.
CLUSTER_MAX_BROWSERS = 1_000_000
# Readiness probes must answer while the database is locked: a probe that waits out the
# busy timeout would make the load balancer's check time out instead of failing.
READINESS_TIMEOUT_S = 2.0
_PROBE_FILE = ".ready-probe"
NO_ISOLATION_WARNING = (
    "isolation is 'none': browsers run as the server's own user without an OS sandbox, so any "
    "tenant can read this host's files and reach its network; use it for development only"
)


class BrowsersLauncher(BrowserLauncher, PoolLauncher[BrowserHandle], Protocol):
    """What the runtime needs of any launcher: sessions' launches and the pool's."""


class RuntimeLauncher(BrowsersLauncher, Protocol):
    """A launcher of browsers on this host, which also counts the egress traffic of every
    browser it started (for the metrics)."""

    def totals(self) -> EgressTraffic: ...


@dataclass(frozen=True, slots=True)
class Browsers:
    """Where a runtime's browsers come from: this host (the default) or a cluster's nodes."""

    launcher: BrowsersLauncher
    capacity: HostCapacity
    pool_size: int
    max_browsers: int  # browsers of this server the service may hold at once (pool included)
    # The browsers run elsewhere: their files, egress and room are not this host's.
    remote: bool = False
    egress: Callable[[], EgressTraffic] | None = None  # None: counted where they run
    # Hands over a resize of the warm pool, called whenever its size should change (a
    # cluster's nodes came or went); None: the pool keeps pool_size.
    follow_pool_size: Callable[[Callable[[int], None]], None] | None = None


class Gateway(CdpGateway, Protocol):
    """What the runtime needs of the CDP gateway beyond the session service's port."""

    async def discover(self, token: str, path: str, prefix: str) -> bytes: ...

    async def idle_for(self, token: str, grace_s: float) -> bool: ...

    def totals(self) -> CdpTraffic: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Adapters:
    """The outside world of a runtime. Each None is the real one, built from the settings;
    tests pass hand-written fakes (a launcher without Chromium, a clock they move)."""

    launcher: RuntimeLauncher | None = None
    gateway: Gateway | None = None
    clock: Clock = utc_now
    capacity: HostCapacity | None = None


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a running server holds, for create_app to hand to the routes."""

    sessions: SessionService
    profiles: ProfileService
    authenticator: Authenticator
    accounts: AccountReader
    gateway: Gateway
    projects: SqlProjectStore
    readiness: Callable[[], Awaitable[list[str]]]
    metrics: Metrics
    clock: Clock
    isolation: Isolation
    on_demand: OnDemandSessions
    media: MediaService


@asynccontextmanager
async def open_stores(
    settings: Settings, clock: Clock = utc_now
) -> AsyncIterator[tuple[SqlProjectStore, SqlSessionStore]]:
    """Migrated stores over one engine (the CLI uses this too)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = settings.effective_database_url()
    private_database_files(url)
    await upgrade(url)
    engine = create_engine(
        url,
        settings.database_busy_timeout_s,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        orphan_after = timedelta(seconds=settings.heartbeat_interval_s * STALE_HEARTBEATS)
        yield (
            SqlProjectStore(engine),
            SqlSessionStore(engine, orphan_after=orphan_after, clock=clock),
        )
    finally:
        await engine.dispose()


def server_secret(settings: Settings) -> ServerSecret:
    """The configured secret, else DATA_DIR/server-secret (created 0600 at the first start)."""
    if settings.server_secret is not None:
        return parse_secret(settings.server_secret.get_secret_value())
    return load_or_create_secret(settings.data_dir)


SECRET_CHECK_SETTING = "server_secret_check"


async def check_shared_secret(secret: ServerSecret, projects: SqlProjectStore) -> None:
    """Refuse to serve with a secret other than the one the servers on this database use (the
    first server to start records its check value): a session read through one server must
    get the CDP token the server running it accepts."""
    mine = secret.check_value()
    stored = await projects.claim_shared(SECRET_CHECK_SETTING, mine)
    if not hmac.compare_digest(stored, mine):
        raise SecretMismatch(
            "this server's secret differs from the one the other servers on this database "
            "use: give every server the same BROWSERFLEET_SERVER_SECRET"
        )


def private_database_files(url: str) -> None:
    """SQLite's database file (and with it -wal and -shm, which SQLite creates with the same
    mode) readable by this user only; an existing database is tightened too."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    path = Path(parsed.database)
    if str(path) == ":memory:":
        return
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


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


async def readiness_problems(
    settings: Settings, reaper: Reaper, remote_browsers: bool = False
) -> list[str]:
    """What keeps this server from serving sessions: a database it cannot reach or write
    (this instance's heartbeat is the write), a data directory it cannot write, no browser."""
    problems: list[str] = []
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            if not await is_current(settings.effective_database_url()):
                problems.append("database schema is not up to date")
            await reaper.heartbeat()
    except TimeoutError:
        problems.append(f"database did not answer within {READINESS_TIMEOUT_S:g}s")
    except Exception as error:  # any driver error means not ready
        problems.append(f"database not writable: {type(error).__name__}")
    try:
        await asyncio.to_thread(_probe_write, settings.data_dir)
    except OSError as error:
        problems.append(f"data directory not writable: {error.strerror or error}")
    if remote_browsers:
        return problems  # the nodes run the browsers
    binary = (
        settings.browser.headless_shell_path
        if settings.browser.mode is BrowserMode.HEADLESS_SHELL
        else settings.browser.chromium_path
    )
    if not os.access(binary, os.X_OK):
        problems.append(f"browser binary {binary} is missing or not executable")
    return problems


def _probe_write(data_dir: Path) -> None:
    """Write, flush to disk and delete a page-sized file: fails on a full or read-only disk."""
    path = data_dir / _PROBE_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        path.unlink(missing_ok=True)


def profile_scratch(settings: Settings) -> Path:
    """The server's own directory for profile archives on their way in or out: emptied at
    start (what a crash left there is of no use)."""
    scratch = settings.data_dir / "profile-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700, parents=True)
    return scratch


def build_blob_store(settings: Settings) -> BlobStore:
    """The configured blob store (profiles, recordings, downloads); the caller aclose()s it."""
    storage = settings.storage
    if storage.backend is StorageBackend.LOCAL:
        return LocalBlobStore(storage.effective_local_dir(settings.data_dir))
    from browserfleet.storage.s3 import AddressingStyle, S3BlobStore, S3Config, quiet_sdk_loggers

    assert storage.bucket is not None  # the settings insist on it for this backend
    quiet_sdk_loggers()
    return S3BlobStore(
        S3Config(
            bucket=storage.bucket,
            endpoint_url=storage.endpoint_url,
            public_endpoint_url=storage.public_endpoint_url,
            region=storage.region,
            access_key_id=_secret(storage.access_key_id),
            secret_access_key=_secret(storage.secret_access_key),
            key_prefix=storage.key_prefix,
            addressing_style=AddressingStyle(storage.addressing_style.value),
            connect_timeout_s=storage.connect_timeout_s,
            read_timeout_s=storage.read_timeout_s,
            max_attempts=storage.max_attempts,
        )
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _pool_config(settings: Settings) -> PoolConfig:
    path = settings.egress.pools_file
    return load_pool_config(path) if path is not None else PoolConfig()


def _route_regions(settings: Settings) -> RouteRegions:
    custom, direct = settings.stealth.custom_proxy_country, settings.stealth.direct_country
    return RouteRegions(
        custom=region_for(custom) if custom else None,
        direct=region_for(direct) if direct else None,
    )


def _watch_runtime(
    metrics: Metrics, gateway: Gateway, browsers: Browsers, service: SessionService
) -> None:
    """Values read at scrape time: CDP and egress traffic, host capacity in use."""
    metrics.watch_cdp(gateway.totals)
    if browsers.egress is None or browsers.remote:
        return  # the browsers, their egress and their room are the nodes'
    probe = HostProbe()

    def capacity_in_use() -> CapacityInUse:
        snapshot = probe.snapshot()
        return CapacityInUse(
            browsers_running=service.local_browser_count(),
            browsers_max=browsers.max_browsers,
            memory_available_bytes=snapshot.memory_available_bytes,
            load_per_cpu=snapshot.load_per_cpu,
        )

    metrics.watch_egress(browsers.egress)
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
        nice=sandbox.nice,
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


def gateway_limits(settings: Settings) -> GatewayLimits:
    cdp = settings.cdp
    return GatewayLimits(
        max_websockets=cdp.max_websockets,
        max_browser_contexts=cdp.max_browser_contexts,
        max_targets=cdp.max_targets,
        relay=RelayLimits(max_message_bytes=cdp.max_message_bytes, max_fragments=cdp.max_fragments),
    )


def egress_guard(settings: Settings) -> EgressGuard:
    return EgressGuard(
        allow_networks=parse_networks(settings.egress.allow_networks),
        local_addresses=host_addresses(),
    )


def real_launcher(settings: Settings, enclosures: Enclosures) -> EgressedLauncher:
    """Chromium processes where `enclosures` puts them, each behind its own guarded egress
    proxy."""
    launcher = LocalChromiumLauncher(
        settings.browser.chromium_path,
        settings.browser.headless_shell_path,
        enclosures=enclosures,
        launch_timeout_s=settings.browser.launch_timeout_s,
        parallel_launches=settings.browser.effective_parallel_launches(),
    )
    return EgressedLauncher(
        launcher, egress_guard(settings), connect_timeout_s=settings.egress.connect_timeout_s
    )


def real_capacity(settings: Settings) -> HostAdmission:
    return HostAdmission(
        HostProbe(),
        CapacityPolicy(
            max_browsers=settings.limits.host_max_browsers,
            retry_after_s=settings.limits.retry_after_s,
        ),
    )


def media_config(settings: Settings) -> MediaConfig:
    media = settings.media
    sandboxed = settings.sandbox.isolation is Isolation.SANDBOX
    if sandboxed and media.downloads_max_mb >= settings.sandbox.disk_mb:
        # The tmpfs is full before the limit is reached: tenants meet failed downloads, not
        # the limit's cancellation (README: the size limit, while the session runs).
        log.warning(
            "media.downloads_max_mb (%d) is not below sandbox.disk_mb (%d): the session's "
            "disk fills up before its downloads limit applies",
            media.downloads_max_mb,
            settings.sandbox.disk_mb,
        )
    return MediaConfig(
        work_dir=settings.data_dir / "recording-work",
        recording_fps=media.recording_fps,
        recording_max_width=media.recording_max_width,
        recording_link_ttl=timedelta(seconds=media.recording_link_ttl_s),
        download_link_ttl=timedelta(seconds=media.download_link_ttl_s),
        downloads_max_bytes=media.downloads_max_mb * MIB,
        retention=timedelta(days=media.retention_days),
        retention_interval_s=media.retention_interval_s,
        viewer_fps=media.viewer_fps,
        ffmpeg=str(media.ffmpeg_path),
        # ffmpeg gets a sandbox of its own wherever bubblewrap is there to build one.
        bwrap=str(settings.sandbox.bwrap_path)
        if sandboxed or os.access(settings.sandbox.bwrap_path, os.X_OK)
        else None,
    )


def _runtime_config(settings: Settings, browsers: Browsers) -> RuntimeConfig:
    return RuntimeConfig(
        instance=InstanceId(f"{uuid.uuid4()}"),
        sessions_dir=settings.sessions_dir,
        mode=headless_mode(settings),
        extra_args=tuple(settings.browser.extra_args),
        default_concurrent_limit=settings.limits.default_concurrent_sessions,
        host_max_browsers=browsers.max_browsers,
        remote_browsers=browsers.remote,
        stealth=settings.stealth.enabled,
        quit_grace_s=settings.profiles.close_grace_s,
        downloads_max_bytes=settings.media.downloads_max_mb * MIB,
    )


def announce_initial_key(settings: Settings, key: str) -> None:
    """Where the first key is: shown on a terminal only; stdout that is a pipe or a file
    (journald, docker logs) gets the path, never the key."""
    path = settings.data_dir / INITIAL_KEY_FILE
    if sys.stdout.isatty():
        sys.stdout.write(f"Initial API key (also in {path}):\n{key}\n")
    else:
        sys.stdout.write(f"Initial API key written to {path} (mode 0600)\n")
    sys.stdout.flush()


@asynccontextmanager
async def build_runtime(
    settings: Settings, adapters: Adapters | None = None
) -> AsyncIterator[Runtime]:
    """Start everything a server needs; on exit stop every session and release everything.

    `adapters` replaces parts of the outside world (see Adapters); by default all are real.
    """
    adapters = adapters or Adapters()
    clock = adapters.clock
    async with open_stores(settings, clock) as (projects, store):
        await check_shared_secret(server_secret(settings), projects)
        key = await ensure_initial_key(settings, projects)
        if key is not None:
            announce_initial_key(settings, key)
        settings.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if adapters.launcher is None and settings.cluster.address is not None:
            async with (
                _cluster_browsers(settings) as cluster,
                _serving(settings, adapters, cluster, projects, store) as runtime,
            ):
                yield runtime
            return
        launcher = adapters.launcher
        enclosures: Enclosures | None = None
        if launcher is None:
            enclosures = await asyncio.to_thread(build_enclosures, settings)
            launcher = real_launcher(settings, enclosures)
        browsers = Browsers(
            launcher,
            adapters.capacity or real_capacity(settings),
            pool_size=settings.browser.effective_pool_size(),
            max_browsers=settings.limits.host_max_browsers,
            egress=launcher.totals,
        )
        try:
            async with _serving(settings, adapters, browsers, projects, store) as runtime:
                yield runtime
        finally:
            if isinstance(enclosures, SandboxRunner):
                enclosures.close()  # its cgroup parents, once every browser is gone


def cluster_problem(settings: Settings) -> str | None:
    """Why this server cannot run its browsers on the configured cluster, if it cannot."""
    if settings.cluster.address is None:
        return None
    if make_url(settings.effective_database_url()).get_backend_name() != "postgresql":
        return (
            "browsers on a cluster need a database every API process shares: "
            "set BROWSERFLEET_DATABASE_URL to a postgresql+asyncpg:// URL"
        )
    return None


@asynccontextmanager
async def _cluster_browsers(settings: Settings) -> AsyncIterator[Browsers]:
    """Browsers on the slotted nodes of the cluster this process has joined (cli/serve.py
    joins it): Ray counts their room, each node runs and sandboxes its own."""
    # Imported here: Ray is an optional extra, needed only with a cluster address.
    from browserfleet.cluster.driver import ClusterCapacity, slotted_nodes
    from browserfleet.cluster.handle import Lease
    from browserfleet.cluster.launcher import PlacementLimits, RayLauncher

    capacity = ClusterCapacity()
    launcher = RayLauncher(
        PlacementLimits(
            placement_timeout_s=settings.cluster.placement_timeout_s,
            start_timeout_s=settings.browser.launch_timeout_s + 5.0,
            lease=Lease(settings.cluster.lease_ttl_s, settings.cluster.lease_renew_s),
            profile_limits=ArchiveLimits(max_bytes=settings.profiles.max_mb * MIB),
        )
    )
    per_node = settings.cluster.pool_per_node
    nodes = await asyncio.to_thread(slotted_nodes)
    await capacity.start()

    def follow_pool_size(resize: Callable[[int], None]) -> None:
        capacity.on_nodes(lambda count: resize(per_node * count))

    try:
        yield Browsers(
            launcher,
            capacity,
            # One pool over the cluster, spread over the nodes with slots (Ray's SPREAD),
            # POOL_PER_NODE for each of them: it follows the nodes that join and go.
            pool_size=per_node * nodes,
            max_browsers=CLUSTER_MAX_BROWSERS,
            remote=True,
            follow_pool_size=follow_pool_size,
        )
    finally:
        await capacity.aclose()


@asynccontextmanager
async def _serving(
    settings: Settings,
    adapters: Adapters,
    browsers: Browsers,
    projects: SqlProjectStore,
    store: SqlSessionStore,
) -> AsyncIterator[Runtime]:
    """The runtime's services on open stores; on exit stops every session and releases
    everything but the stores and the launcher's enclosures."""
    clock = adapters.clock
    gateway: Gateway = adapters.gateway or CdpGatewayServer(limits=gateway_limits(settings))
    launcher = browsers.launcher
    config = _runtime_config(settings, browsers)
    metrics = Metrics(project_ids=settings.metrics_project_ids)
    pool: WarmPool[BrowserHandle] = WarmPool(
        launcher,
        LaunchSpec(
            mode=config.mode,
            screen_width=DEFAULT_SCREEN_WIDTH,
            screen_height=DEFAULT_SCREEN_HEIGHT,
            stealth=config.stealth,
            extra_args=config.extra_args,
        ),
        size=browsers.pool_size,
        root=settings.sessions_dir,
        has_room=lambda: service.pool_has_room(pool.total),
        on_change=lambda ready, launching: metrics.pool_changed(ready + launching, ready),
        on_launch=lambda ok: metrics.browser_launched() if ok else metrics.launch_failed(),
    )
    if browsers.follow_pool_size is not None:
        browsers.follow_pool_size(pool.resize)
    planner = PoolPlanner(_pool_config(settings), egress_guard(settings), _route_regions(settings))
    secret = server_secret(settings)
    blobs = build_blob_store(settings)
    profile_store = SqlProfileStore(store.engine)
    scratch = profile_scratch(settings)
    limits = ArchiveLimits(max_bytes=settings.profiles.max_mb * MIB)
    saving = ProfileSaving(
        profile_store,
        blobs,
        SavingConfig(limits, scratch, save_timeout_s=settings.profiles.save_timeout_s),
        clock,
    )
    loads = ProfileLoads(
        profile_store,
        store,
        blobs,
        scratch=scratch,
        limits=limits,
        save_wait_s=settings.profiles.save_wait_s,
        clock=clock,
    )
    media = MediaService(
        media_config(settings),
        blobs,
        secret,
        clock,
        store.get_any,
        ending=lambda session_id: service.is_tearing_down(session_id),  # noqa: PLW0108 (built below)
    )
    # Renewed by the reaper's heartbeats; while it is not held the service starts no session.
    lease = ServerLease(settings.heartbeat_interval_s * FENCE_HEARTBEATS)
    service = SessionService(
        store,
        launcher,
        gateway,
        config,
        clock,
        pool,
        capacity=browsers.capacity,
        metrics=metrics,
        planner=planner,
        secret=secret,
        # Remote browsers' files are their nodes': the recording is fetched from the node, a
        # profile's state and the downloads are brought here after the browser quit.
        end_steps=(
            saving.capture,
            FinishRecording(media),
            ReleaseMedia(media),
            saving.save,
            KeepDownloads(media),
        ),
        profiles=loads,
        starts=media,
        lease=lease,
    )
    _watch_runtime(metrics, gateway, browsers, service)
    reaper = Reaper(
        service,
        store,
        launcher,
        ReaperConfig(
            settings.reaper_interval_s,
            settings.heartbeat_interval_s,
            settings.sessions_dir,
            settings.public_url,
        ),
        clock,
        lease,
    )
    on_demand = OnDemandSessions(service, gateway, settings.cdp.connect_grace_s)
    await reaper.start()  # first: it settles and removes what an earlier run left
    await media.start()
    pool.start()
    try:
        yield Runtime(
            sessions=service,
            profiles=ProfileService(
                profile_store, blobs, clock, cap=settings.profiles.max_per_project
            ),
            authenticator=Authenticator(projects),
            accounts=AccountReader(projects, settings.limits.default_concurrent_sessions),
            gateway=gateway,
            projects=projects,
            readiness=lambda: readiness_problems(settings, reaper, browsers.remote),
            metrics=metrics,
            clock=clock,
            isolation=settings.sandbox.isolation,
            on_demand=on_demand,
            media=media,
        )
    finally:
        await on_demand.close()
        await reaper.stop_loops()
        await service.shutdown()
        await media.aclose()
        await blobs.aclose()
        await pool.aclose()
        await gateway.aclose()
        await reaper.deregister()
