"""What the session service needs from the outside world, as small Protocols.

Implemented by store/ (database), browsers/ (Chromium processes) and cdp/ (the gateway);
tests may pass hand-written fakes through bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.browsers.stealth import Region
from browserfleet.cdp.client import JsonObject
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.ids import InstanceId, ProjectId, SessionId
from browserfleet.sessions.model import (
    Session,
    SessionPage,
    SessionQuery,
    SessionRequest,
    StopReason,
)


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    id: InstanceId
    host: str
    pid: int
    heartbeat_at: datetime
    public_url: str | None = None  # the base of the URLs it hands out, if configured


class SessionStore(Protocol):
    async def reserve(self, session: Session, default_limit: int) -> None:
        """Atomically, in one short transaction: check credits (InsufficientCredits) and the
        project's concurrency limit (ConcurrencyLimitReached), insert the STARTING session,
        append the upfront charge to the ledger and take a slot. Nothing is written on failure."""

    async def mark_active(self, session_id: SessionId, *, pid: int, session_dir: str) -> Session:
        """STARTING -> ACTIVE once the browser answers."""

    async def mark_failed(self, session_id: SessionId) -> None:
        """STARTING -> FAILED: refund the upfront charge in full and free the slot."""

    async def fail_if_starting(self, session_id: SessionId) -> Session | None:
        """mark_failed as a repair: the failed session, or None if the row is not STARTING
        (there is none, or its create finished, or another repair got there first)."""

    async def request_stop(
        self, session_id: SessionId, reason: StopReason, at: datetime
    ) -> Session:
        """ACTIVE -> STOPPING, recording reason and finished_at; a session already STOPPING or
        STOPPED is returned unchanged."""

    async def finalize(
        self,
        session_id: SessionId,
        *,
        cost_micros: int,
        proxy_bytes: int,
        proxy_cost_micros: int = 0,
    ) -> Session:
        """STOPPING -> STOPPED: record the final cost, append the refund (idempotent), free the
        slot. A session already STOPPED is returned unchanged (no second refund)."""

    async def mark_ended(self, session_id: SessionId) -> None:
        """The session's end (its end-of-session steps and teardown) is over."""

    async def ending_with_profile(
        self, project_id: ProjectId, profile_id: str, since: datetime
    ) -> int:
        """Sessions of that profile stopping, or stopped at or after `since` and not yet ended
        (their state may still be on its way to the profile), on any server still alive."""

    async def get(self, project_id: ProjectId, session_id: SessionId) -> Session:
        """A visible session of that project, else SessionNotFound."""

    async def get_any(self, session_id: SessionId) -> Session | None: ...

    async def list(self, project_id: ProjectId, query: SessionQuery) -> SessionPage: ...

    async def live_owned_by(self, owner: InstanceId) -> Sequence[Session]:
        """STARTING, ACTIVE and STOPPING sessions whose browser runs in that instance."""

    async def heartbeat(
        self, owner: InstanceId, host: str, pid: int, at: datetime, public_url: str | None = None
    ) -> None: ...

    async def forget_instance(self, owner: InstanceId) -> None: ...

    async def orphaned(
        self,
        stale_before: datetime,
        exclude: InstanceId,
        dead: frozenset[InstanceId] = frozenset(),
    ) -> Sequence[Session]:
        """Live sessions whose owner has not sent a heartbeat since stale_before, or is dead."""

    async def instances(self) -> Sequence[InstanceRecord]:
        """Every registered server instance."""

    async def live_pids(self, host: str) -> frozenset[int]:
        """Browser pids of live sessions owned by an instance on `host` (or by none)."""

    async def adopt(
        self, session_id: SessionId, new_owner: InstanceId, dead_owner: InstanceId | None = None
    ) -> Session | None:
        """Take over an orphaned live session (compare-and-set on its old owner's silence, or
        on its owner being `dead_owner`, an instance known to be gone)."""


class BrowserHandle(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def devtools(self) -> DevtoolsDialer:
        """How to reach the browser's DevTools HTTP/WebSocket server (which may listen in a
        sandbox's own network namespace)."""

    @property
    def workdir(self) -> Path: ...

    @property
    def files(self) -> BrowserFiles:
        """The session's downloads and uploads directories, on the host and as the browser
        sees them."""

    async def reshape(self, width: int, height: int) -> None:
        """Give the running browser a width x height screen, and each of its windows the
        desktop geometry on it (browsers/geometry.py)."""

    async def localize(self, region: Region | None) -> None:
        """Make every target, current and future, show this region's timezone, locale and
        geolocation (None: the host's). A browser launched without stealth ignores it."""

    def route_egress(self, route: object) -> None:
        """Send the browser's traffic by this route (from an EgressPlan) and count from zero."""

    @property
    def egress_bytes(self) -> int:
        """Bytes both ways through the browser's egress proxy since its route was set."""

    async def wait_closed(self) -> int:
        """Wait until the browser process exits; returns its exit code."""

    async def call(self, method: str, params: JsonObject | None = None) -> JsonObject:
        """A browser-level CDP command on the server's own connection to the browser (never a
        client's, never through the gateway). CdpError, TimeoutError."""

    def watch_downloads(self, listener: Callable[[str, JsonObject], None] | None) -> None:
        """Hand every Browser.downloadWillBegin / Browser.downloadProgress event of the browser
        (any context, any client's download) to `listener` (method, params); None: stop."""

    async def end_egress(self) -> None:
        """Close the egress proxy: the browser reaches nothing more, egress_bytes is final."""

    async def quit(self, grace_s: float) -> bool:
        """Close the browser gracefully (it flushes its state to its profile), bounded by
        grace_s, then kill every process of it; its files stay until close(). True if it
        exited by itself in time."""

    async def close(self) -> None:
        """Kill every process of the browser, reap it, remove the workdir and give back what
        its sandbox held. Idempotent."""


class SessionStarts(Protocol):
    def session_active(self, session: Session, handle: BrowserHandle) -> None:
        """A session went active with this browser (called once, never blocking the create:
        slow work goes to a task its receiver owns)."""

    def session_gone(self, session_id: SessionId) -> None:
        """Its browser was ended without the end steps (fenced, or taken over by another
        server): let go of whatever is held for it (never blocking)."""


ProfileSeed = Callable[[Path], None]
"""Fills a new directory (which must not exist yet) with a stored profile's files; blocking
(the launcher runs it in a worker thread, before Chromium starts, and gives the files to the
browser's user)."""


class ProfileLoad(Protocol):
    """A profile made ready for one launch."""

    @property
    def seed(self) -> ProfileSeed | None:
        """What fills the new browser's profile (None: the profile was never saved)."""

    async def apply(self, browser: BrowserHandle) -> None:
        """Once the browser answers: what must be set while it runs (session cookies), and
        the profile marked as used. BrowserLaunchFailed."""

    async def discard(self) -> None:
        """Remove the fetched files (after the launch, whatever its outcome)."""


class ProfileLoader(Protocol):
    async def load(self, project_id: ProjectId, profile_id: str) -> ProfileLoad:
        """ProfileNotFound unless the project has it; waits (bounded) for a save of it still
        in flight on any server; fetches its current saved state. StorageFailed."""


@runtime_checkable
class RemoteFiles(Protocol):
    """A browser whose files are on another host (a cluster node's)."""

    async def fetch_state(self, dest: Path) -> bool:
        """What a saved profile keeps of its profile, once it has quit, unpacked into
        `dest`/profile (`dest` a new directory of this host); False when there is none."""

    async def store_upload(self, name: str, source: Path) -> str:
        """Copy `source` into the browser's upload area as `name` (or `name (N)` when taken);
        its final name. SessionNotRunningHere when the browser is gone."""

    async def fetch_downloads(self, dest: Path, max_bytes: int) -> int:
        """Its finished downloads (within `max_bytes` together, as media.downloads.within_limit
        keeps them), once it has quit, copied into `dest` (a new directory of this host); how
        many. A file the node cannot give is left out."""


class Received(Protocol):
    """A file an upload request brought, saved on this host."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def size(self) -> int: ...


class BrowserLauncher(Protocol):
    async def launch(
        self, spec: LaunchSpec, workdir: Path, *, seed: ProfileSeed | None = None
    ) -> BrowserHandle:
        """Start Chromium in a fresh workdir (its profile first filled by `seed`); returns once
        CDP answers and the first window has the spec's geometry. Raises BrowserLaunchFailed
        (and leaves nothing behind)."""

    def remove_workdir(self, workdir: Path) -> None:
        """Delete a dead browser's workdir and anything of it kept elsewhere (blocking)."""

    def kill_strays(
        self, root: Path, keep: frozenset[int], keep_files: frozenset[Path] = frozenset()
    ) -> int:
        """Kill what an earlier run left of browsers under root (a sandboxed launcher: every
        process, mount and cgroup of its uid range that no live server holds; otherwise
        Chromium processes whose user-data-dir lies under root and whose pid is not in keep);
        returns how many browsers were killed. The workdirs in keep_files keep their files
        (a dead session's end reads them before it removes them)."""


@dataclass(frozen=True, slots=True)
class EgressPlan:
    """Where a session's traffic goes and what it costs per GB."""

    route: object  # opaque here: built by and handed back to the egress runtime
    kind: str  # "managed", "custom" or "direct"
    micros_per_gb: int
    region: Region | None = None  # where the route appears to be; None: the host's settings


class EgressPlanner(Protocol):
    def plan(self, request: SessionRequest, session_key: str) -> EgressPlan:
        """Raises ProxyCountryUnavailable when strict and the country has no pool."""


class BrowserPool(Protocol):
    """Never-used browsers launched ahead of demand (browsers/pool.py)."""

    @property
    def spec(self) -> LaunchSpec: ...

    @property
    def total(self) -> int:
        """Browsers held or being launched: they count against host capacity."""

    def serves(self, spec: LaunchSpec) -> bool: ...

    def take(self, spec: LaunchSpec) -> BrowserHandle | None: ...

    def give_back(self, browser: BrowserHandle) -> None:
        """Return a browser taken but never used (its session was refused)."""

    async def release_one(self) -> bool:
        """Close one ready browser and wait until it is gone; True if there was one."""

    def evict(self) -> bool:
        """Close one pooled browser to give its room to a session."""


class HostCapacity(Protocol):
    def session_refusal(self, running_sessions: int) -> str | None:
        """None when this host can start one more session browser, else the reason why not."""

    def pool_may_grow(self, running_browsers: int) -> bool: ...


class SessionMetrics(Protocol):
    def session_started(
        self, project_id: ProjectId, *, from_pool: bool, seconds: float
    ) -> None: ...

    def session_stopped(self, project_id: ProjectId, reason: StopReason) -> None: ...

    def browser_launched(self) -> None: ...

    def launch_failed(self) -> None: ...


class NoMetrics:
    """For tests and tools that count nothing."""

    def session_started(self, project_id: ProjectId, *, from_pool: bool, seconds: float) -> None:
        pass

    def session_stopped(self, project_id: ProjectId, reason: StopReason) -> None:
        pass

    def browser_launched(self) -> None:
        pass

    def launch_failed(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """What the CDP gateway needs of a session: its token, how to reach its browser's DevTools,
    and its directories as the browser sees them (downloads are confined there, uploads must
    come from there)."""

    token: str = field(repr=False)  # a credential: never in a log line
    devtools: DevtoolsDialer
    allow_resizing: bool
    downloads: PurePosixPath
    uploads: PurePosixPath


class CdpGateway(Protocol):
    def open(self, route: GatewayRoute) -> None:
        """Start serving /cdp/{token}/... for this browser."""

    def revoke(self, token: str) -> None:
        """End every connection of that token now (nothing more reaches the browser) and
        answer 404 for it; the sockets may still be closing: `close` waits for them."""

    async def close(self, token: str) -> None:
        """Revoke the token and wait (bounded) until every socket of it is closed."""
