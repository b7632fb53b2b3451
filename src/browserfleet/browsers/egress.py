"""Browsers that reach the network only through their own egress proxy.

EgressedLauncher has the launcher start a per-browser forwarding proxy where the browser's
network is (on the host's loopback, or inside a sandbox's network namespace) and point Chromium
at it. The proxy begins on a guarded direct route and is given the session's route when the
browser is handed out, so a pooled browser can serve any proxy setting.
"""

from __future__ import annotations

import logging
from pathlib import Path

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.proxy import DirectRoute, EgressGuard, EgressProxy, HttpUpstream, Socks5Upstream

log = logging.getLogger(__name__)


class EgressedBrowser:
    """A Chromium process and the proxy all its traffic passes through."""

    def __init__(self, browser: ChromiumProcess, proxy: EgressProxy) -> None:
        self._browser = browser
        self._proxy = proxy
        self._baseline = 0

    @property
    def pid(self) -> int:
        return self._browser.pid

    @property
    def devtools(self) -> DevtoolsDialer:
        return self._browser.devtools

    @property
    def workdir(self) -> Path:
        return self._browser.workdir

    @property
    def files(self) -> BrowserFiles:
        return self._browser.files

    @property
    def egress_bytes(self) -> int:
        """Bytes both ways since the route was last set (MB = 10^6 of these)."""
        return self._proxy.meter.total - self._baseline

    @property
    def egress_blocked(self) -> int:
        return self._proxy.meter.blocked

    def route_egress(self, route: object) -> None:
        """Send this browser's traffic by `route` from now on, and count from zero."""
        if not isinstance(route, DirectRoute | HttpUpstream | Socks5Upstream):
            raise TypeError(f"not an egress route: {type(route).__name__}")
        self._proxy.reroute(route)
        self._baseline = self._proxy.meter.total

    async def reshape(self, width: int, height: int) -> None:
        await self._browser.reshape(width, height)

    async def wait_closed(self) -> int:
        return await self._browser.wait_closed()

    async def close(self) -> None:
        try:
            await self._browser.close()
        finally:
            await self._proxy.aclose()


class EgressedLauncher:
    def __init__(
        self,
        launcher: LocalChromiumLauncher,
        guard: EgressGuard,
        *,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._launcher = launcher
        self._guard = guard
        self._connect_timeout_s = connect_timeout_s

    @property
    def guard(self) -> EgressGuard:
        return self._guard

    async def launch(self, spec: LaunchSpec, workdir: Path) -> EgressedBrowser:
        proxy = EgressProxy(DirectRoute(self._guard), connect_timeout_s=self._connect_timeout_s)
        try:
            browser = await self._launcher.launch(spec, workdir, egress=proxy)
        except BaseException:
            await proxy.aclose()
            raise
        return EgressedBrowser(browser, proxy)

    def kill_strays(self, root: Path, keep: frozenset[int]) -> int:
        return self._launcher.kill_strays(root, keep)

    def remove_workdir(self, workdir: Path) -> None:
        self._launcher.remove_workdir(workdir)
