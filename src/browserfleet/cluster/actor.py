"""One browser on a node: the Ray actor that launches it with the node's own launcher stack,
serves its DevTools to the API process through a forwarder, and ends it.

The actor is async: Chromium is spawned from its event loop's thread, the one thread that lives
as long as the worker, so the browser's PR_SET_PDEATHSIG fires when the worker dies, however it
dies. It is never restarted (a restart would run a fresh, empty actor elsewhere) and its calls
are never retried (a retried `start` would launch a second browser).
"""

from __future__ import annotations

import logging
from pathlib import PurePath
from typing import Any, Final

import ray

from browserfleet import __version__
from browserfleet.browsers.egress import EgressedBrowser
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.browsers.stealth import Region
from browserfleet.cdp.client import JsonObject
from browserfleet.cluster import ray_api
from browserfleet.cluster.forward import DevtoolsForwarder
from browserfleet.cluster.node import NodeLauncher, node_launcher
from browserfleet.cluster.routes import rebind_guard
from browserfleet.cluster.wire import Launched, NodeInfo
from browserfleet.settings import Settings

log = logging.getLogger(__name__)

ACTOR_OPTIONS: Final[dict[str, Any]] = {
    "num_cpus": 0,
    "resources": {ray_api.SLOT: 1},
    "max_restarts": 0,
    "max_task_retries": 0,
}


class BrowserActor:
    """At most one browser, started by `start` and gone after `close`."""

    def __init__(self) -> None:
        self._node: NodeLauncher | None = None
        self._browser: EgressedBrowser | None = None
        self._forwarder: DevtoolsForwarder | None = None
        self._starting = False
        self._closed = False

    async def ready(self) -> NodeInfo:
        """Instant once the actor is placed and its worker runs."""
        return NodeInfo(
            node_id=ray_api.node_id(),
            ip=ray_api.node_ip(),
            version=__version__,
        )

    async def start(self, spec: LaunchSpec, name: str) -> Launched:
        """Launch the browser in the node's sessions dir under `name` (a plain name, never a
        path) and open its forwarder on the node's address. BrowserLaunchFailed."""
        if self._starting or self._closed:
            raise RuntimeError("this actor has started its browser already")
        if PurePath(name).name != name or name in {"", ".", ".."}:
            raise ValueError(f"not a workdir name: {name!r}")
        self._starting = True
        host = ray_api.node_ip()
        settings = Settings()
        self._node = node = await node_launcher(settings)
        self._browser = browser = await node.launcher.launch(spec, node.sessions_dir / name)
        try:
            ports = settings.cluster.forward_port_range()
            self._forwarder = DevtoolsForwarder(browser.devtools, host, ports)
            await self._forwarder.start()
        except BaseException:
            await self.close()
            raise
        return Launched(
            pid=browser.pid,
            devtools_port=browser.devtools.port,
            forward_host=host,
            forward_port=self._forwarder.port,
            forward_token=self._forwarder.token,
            workdir=browser.workdir,
            files=browser.files,
        )

    def _running(self) -> EgressedBrowser:
        if self._browser is None:
            raise RuntimeError("no browser: start() was never called")
        return self._browser

    async def reshape(self, width: int, height: int) -> None:
        await self._running().reshape(width, height)

    async def localize(self, region: Region | None) -> None:
        await self._running().localize(region)

    async def route_egress(self, route: object) -> None:
        node = self._node
        assert node is not None  # set before the browser is
        self._running().route_egress(rebind_guard(route, node.guard))

    async def egress_bytes(self) -> int:
        return self._running().egress_bytes

    async def end_egress(self) -> int:
        """Close the egress proxy; the final count."""
        browser = self._running()
        await browser.end_egress()
        return browser.egress_bytes

    async def call(self, method: str, params: JsonObject | None = None) -> JsonObject:
        return await self._running().call(method, params)

    async def quit(self, grace_s: float) -> bool:
        return await self._running().quit(grace_s)

    async def wait_closed(self) -> int:
        return await self._running().wait_closed()

    async def close(self) -> None:
        """Kill the browser, tear its sandbox down, remove its workdir and stop forwarding.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._browser is not None:
                await self._browser.close()  # its enclosure removes the workdir
        finally:
            if self._forwarder is not None:
                await self._forwarder.aclose()


RemoteBrowserActor = ray.remote(**ACTOR_OPTIONS)(BrowserActor)
