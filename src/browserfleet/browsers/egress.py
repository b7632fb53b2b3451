"""Browsers that reach the network only through their own egress proxy.

EgressedLauncher has the launcher start a per-browser forwarding proxy where the browser's
network is (on the host's loopback, or inside a sandbox's network namespace) and point Chromium
at it. The proxy begins on a guarded direct route and is given the session's route when the
browser is handed out, so a pooled browser can serve any proxy setting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.browsers.stealth import Region
from browserfleet.cdp.client import JsonObject
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.proxy import (
    ByteMeter,
    DirectRoute,
    EgressGuard,
    EgressProxy,
    HttpUpstream,
    Socks5Upstream,
)

log = logging.getLogger(__name__)


class EgressedBrowser:
    """A Chromium process and the proxy all its traffic passes through."""

    def __init__(
        self,
        browser: ChromiumProcess,
        proxy: EgressProxy,
        on_closed: Callable[[EgressProxy], None] = lambda _proxy: None,
    ) -> None:
        self._browser = browser
        self._proxy = proxy
        self._baseline = 0
        self._on_closed = on_closed

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

    def route_egress(self, route: object) -> None:
        """Send this browser's traffic by `route` from now on, and count from zero."""
        if not isinstance(route, DirectRoute | HttpUpstream | Socks5Upstream):
            raise TypeError(f"not an egress route: {type(route).__name__}")
        self._proxy.reroute(route)
        self._baseline = self._proxy.meter.total

    async def reshape(self, width: int, height: int) -> None:
        await self._browser.reshape(width, height)

    async def localize(self, region: Region | None) -> None:
        await self._browser.localize(region)

    async def wait_closed(self) -> int:
        return await self._browser.wait_closed()

    async def call(self, method: str, params: JsonObject | None = None) -> JsonObject:
        return await self._browser.call(method, params)

    def watch_downloads(self, listener: Callable[[str, JsonObject], None] | None) -> None:
        self._browser.watch_downloads(listener)

    async def quit(self, grace_s: float) -> bool:
        return await self._browser.quit(grace_s)

    async def end_egress(self) -> None:
        """Close the proxy now: the browser reaches nothing more and its count is final."""
        await self._proxy.aclose()

    async def close(self) -> None:
        try:
            await self._browser.close()
        finally:
            await self._proxy.aclose()
            self._on_closed(self._proxy)


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
        self._open: set[EgressProxy] = set()
        self._retired = ByteMeter()  # traffic of closed proxies, so totals never go backwards

    def totals(self) -> ByteMeter:
        """Traffic through every egress proxy this launcher started, open and closed."""
        total = replace(self._retired)
        for proxy in self._open:
            total.from_browser += proxy.meter.from_browser
            total.to_browser += proxy.meter.to_browser
            total.connections += proxy.meter.connections
            total.blocked += proxy.meter.blocked
        return total

    def _retire(self, proxy: EgressProxy) -> None:
        if proxy in self._open:
            self._open.discard(proxy)
            self._retired.from_browser += proxy.meter.from_browser
            self._retired.to_browser += proxy.meter.to_browser
            self._retired.connections += proxy.meter.connections
            self._retired.blocked += proxy.meter.blocked

    @property
    def guard(self) -> EgressGuard:
        return self._guard

    async def launch(
        self, spec: LaunchSpec, workdir: Path, *, seed: Callable[[Path], None] | None = None
    ) -> EgressedBrowser:
        proxy = EgressProxy(DirectRoute(self._guard), connect_timeout_s=self._connect_timeout_s)
        self._open.add(proxy)
        try:
            browser = await self._launcher.launch(spec, workdir, egress=proxy, seed=seed)
        except BaseException:
            await proxy.aclose()
            self._retire(proxy)
            raise
        return EgressedBrowser(browser, proxy, self._retire)

    def kill_strays(
        self, root: Path, keep: frozenset[int], keep_files: frozenset[Path] = frozenset()
    ) -> int:
        return self._launcher.kill_strays(root, keep, keep_files)

    def remove_workdir(self, workdir: Path) -> None:
        self._launcher.remove_workdir(workdir)
