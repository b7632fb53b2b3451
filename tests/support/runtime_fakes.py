"""Hand-written fakes of the browser runtime and the clock, passed in like the real ones
(to the session service, or to create_app through bootstrap.Adapters)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.browsers.stealth import Region
from browserfleet.cdp.client import JsonObject
from browserfleet.cdp.dial import LoopbackDialer
from browserfleet.errors import BrowserLaunchFailed, HostAtCapacity, SessionNotFound
from browserfleet.proxy import ByteMeter
from browserfleet.sessions.ports import GatewayRoute

_pids = itertools.count(100_000)
T0 = datetime(2026, 7, 15, 20, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeBrowser:
    def __init__(self, spec: LaunchSpec, workdir: Path) -> None:
        self.spec = spec
        self._workdir = workdir
        self._pid = next(_pids)
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed = 0
        self.reshaped: tuple[int, int] | None = None
        self.route: object = None
        self.regions: list[Region | None] = []  # every localize() call, in order
        self.traffic = 0
        self.calls: list[tuple[str, JsonObject]] = []
        self.download_listener: Callable[[str, JsonObject], None] | None = None
        self.egress_ended = False
        self.quits = 0
        self.seeded = False
        # As a remote browser: what fetch_state brings of its profile (None: nothing).
        self.state: bytes | None = None
        self.uploads: list[tuple[str, bytes]] = []  # what store_upload was given
        self.downloads: dict[str, bytes] = {}  # what fetch_downloads brings (name: content)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def devtools(self) -> LoopbackDialer:
        return LoopbackDialer(9)

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def files(self) -> BrowserFiles:
        return BrowserFiles.unsandboxed(self._workdir)

    def route_egress(self, route: object) -> None:
        self.route = route

    async def localize(self, region: Region | None) -> None:
        self.regions.append(region)

    @property
    def egress_bytes(self) -> int:
        return self.traffic

    async def reshape(self, width: int, height: int) -> None:
        self.reshaped = (width, height)

    def crash(self) -> None:
        if not self._exited.done():
            self._exited.set_result(-9)

    async def wait_closed(self) -> int:
        return await asyncio.shield(self._exited)

    async def call(self, method: str, params: JsonObject | None = None) -> JsonObject:
        self.calls.append((method, params or {}))
        return {}

    def watch_downloads(self, listener: Callable[[str, JsonObject], None] | None) -> None:
        self.download_listener = listener

    async def fetch_state(self, dest: Path) -> bool:
        """As a cluster node's browser: its profile's state into `dest`/profile."""
        if self.state is None:
            return False
        (dest / "profile").mkdir()
        (dest / "profile" / "state").write_bytes(self.state)
        return True

    async def fetch_downloads(self, dest: Path, max_bytes: int) -> int:
        """As a cluster node's browser: its downloads, in name order, within `max_bytes`."""
        total = fetched = 0
        for name, data in sorted(self.downloads.items()):
            total += len(data)
            if total > max_bytes:
                break
            (dest / name).write_bytes(data)
            fetched += 1
        return fetched

    async def store_upload(self, name: str, source: Path) -> str:
        """As a cluster node's browser: the node names the file (here: always taken once)."""
        self.uploads.append((name, await asyncio.to_thread(source.read_bytes)))
        stem, dot, extension = name.rpartition(".")
        return f"{stem} (2){dot}{extension}"

    async def end_egress(self) -> None:
        self.egress_ended = True

    async def quit(self, grace_s: float) -> bool:
        self.quits += 1
        graceful = not self._exited.done()
        self.crash()
        return graceful

    async def close(self) -> None:
        self.closed += 1
        self.crash()


class FakeLauncher:
    def __init__(self) -> None:
        self.browsers: list[FakeBrowser] = []
        self.fail_next = False
        self.gate: asyncio.Event | None = None  # when set, launches wait for it
        self.stray_calls: list[frozenset[int]] = []
        self.removed: list[Path] = []
        # Set: a launcher that counts its own room, as a cluster's slots (HostAtCapacity
        # when that many of its browsers are open).
        self.slots: int | None = None

    async def launch(
        self, spec: LaunchSpec, workdir: Path, *, seed: Callable[[Path], None] | None = None
    ) -> FakeBrowser:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise BrowserLaunchFailed("fake launch failure")
        if self.slots is not None and len(self.running) >= self.slots:
            raise HostAtCapacity(f"all {self.slots} slots are taken")
        browser = FakeBrowser(spec, workdir)
        browser.seeded = seed is not None
        self.browsers.append(browser)
        return browser

    def remove_workdir(self, workdir: Path) -> None:
        self.removed.append(workdir)

    def kill_strays(
        self, root: Path, keep: frozenset[int], keep_files: frozenset[Path] = frozenset()
    ) -> int:
        self.stray_calls.append(keep)
        return 0

    def totals(self) -> ByteMeter:
        """Egress traffic of every browser launched, as the real launcher reports it."""
        return ByteMeter(from_browser=sum(b.traffic for b in self.browsers))

    @property
    def running(self) -> list[FakeBrowser]:
        return [b for b in self.browsers if b.closed == 0 and not b._exited.done()]


@dataclass
class FakeTraffic:
    open_connections: int = 0
    bytes_to_browser: int = 0
    bytes_to_client: int = 0


class FakeGateway:
    """Routes by token; discovery answers a fixed version document for open tokens."""

    def __init__(self) -> None:
        self.routes: dict[str, GatewayRoute] = {}
        self.closed: list[str] = []

    def open(self, route: GatewayRoute) -> None:
        self.routes[route.token] = route

    def revoke(self, token: str) -> None:
        if self.routes.pop(token, None) is not None:
            self.closed.append(token)

    async def close(self, token: str) -> None:
        self.routes.pop(token, None)
        if token not in self.closed:
            self.closed.append(token)

    async def discover(self, token: str, path: str, prefix: str) -> bytes:
        if token not in self.routes:
            raise SessionNotFound(token)
        ws = f"{prefix}/devtools/browser/fake"
        return json.dumps({"Browser": "Fake/1.0", "webSocketDebuggerUrl": ws}).encode()

    async def idle_for(self, token: str, grace_s: float) -> bool:
        """No client ever connects to a fake browser: idle once the grace period is over."""
        await asyncio.sleep(grace_s)
        return token in self.routes

    def totals(self) -> FakeTraffic:
        return FakeTraffic()

    async def aclose(self) -> None:
        for token in list(self.routes):
            await self.close(token)
