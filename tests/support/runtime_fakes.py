"""Hand-written fakes of the browser runtime, passed to the service like the real ones."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.cdp.dial import LoopbackDialer
from browserfleet.errors import BrowserLaunchFailed
from browserfleet.sessions.ports import GatewayRoute

_pids = itertools.count(100_000)


class FakeBrowser:
    def __init__(self, spec: LaunchSpec, workdir: Path) -> None:
        self.spec = spec
        self._workdir = workdir
        self._pid = next(_pids)
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed = 0
        self.reshaped: tuple[int, int] | None = None
        self.route: object = None
        self.traffic = 0

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

    async def launch(self, spec: LaunchSpec, workdir: Path) -> FakeBrowser:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise BrowserLaunchFailed("fake launch failure")
        browser = FakeBrowser(spec, workdir)
        self.browsers.append(browser)
        return browser

    def remove_workdir(self, workdir: Path) -> None:
        self.removed.append(workdir)

    def kill_strays(self, root: Path, keep: frozenset[int]) -> int:
        self.stray_calls.append(keep)
        return 0

    @property
    def running(self) -> list[FakeBrowser]:
        return [b for b in self.browsers if b.closed == 0 and not b._exited.done()]


class FakeGateway:
    def __init__(self) -> None:
        self.routes: dict[str, GatewayRoute] = {}
        self.closed: list[str] = []

    def open(self, route: GatewayRoute) -> None:
        self.routes[route.token] = route

    async def close(self, token: str) -> None:
        self.routes.pop(token, None)
        self.closed.append(token)
