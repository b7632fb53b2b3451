"""One browser on a node: the Ray actor that launches it with the node's own launcher stack,
serves its DevTools to the API process through a forwarder, and ends it.

The actor is async: Chromium is spawned from its event loop's thread, the one thread that lives
as long as the worker, so the browser's PR_SET_PDEATHSIG fires when the worker dies, however it
dies. It is never restarted (a restart would run a fresh, empty actor elsewhere) and its calls
are never retried (a retried `start` would launch a second browser).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from pathlib import PurePath
from typing import Any, Final

import ray

from browserfleet import __version__
from browserfleet.browsers.egress import EgressedBrowser
from browserfleet.browsers.host import PROFILE_DIR
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.browsers.stealth import Region
from browserfleet.browsers.uploads import create_unique, safe_name
from browserfleet.cdp.client import JsonObject
from browserfleet.cluster import ray_api
from browserfleet.cluster.forward import DevtoolsForwarder
from browserfleet.cluster.node import NodeLauncher, node_launcher, sweep_dead
from browserfleet.cluster.node_media import NodeMedia, remove_dead_recordings
from browserfleet.cluster.routes import rebind_guard
from browserfleet.cluster.wire import Launched, NodeInfo, ProfileArchive
from browserfleet.media.downloads import DownloadedFile
from browserfleet.media.recorder import RecordingSpec
from browserfleet.profiles.seed import ArchiveSeed
from browserfleet.profiles.snapshot import STATE
from browserfleet.profiles.state import check_profile_dir
from browserfleet.settings import Settings
from browserfleet.storage.archive import ArchiveLimits, pack
from browserfleet.storage.errors import ArchiveTooLarge, UnsafeSource
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

LEASE_CHECK_S: Final = 0.25

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
        self._media: NodeMedia | None = None
        self._forwarder: DevtoolsForwarder | None = None
        self._starting = False
        self._closed = False
        self._name = ""
        self._lease_until = math.inf  # monotonic; past it, the browser is ended
        self._lease_ttl_s = math.inf
        self._watchdog: asyncio.Task[None] | None = None
        self._watch = TaskSet("browser-lease")
        self._expired = False

    @property
    def lease_expired(self) -> bool:
        """Whether its lease ran out and so ended the browser."""
        return self._expired

    def arm_lease(self, ttl_s: float) -> None:
        """From now on, the browser lives only while `renew` comes within `ttl_s` of the last
        one: ended by the node itself if its API process is gone, frozen or cut off from it
        (Ray ends actors of a dead driver, not those of one it cannot reach)."""
        self._lease_ttl_s = ttl_s
        self._lease_until = time.monotonic() + ttl_s
        if self._watchdog is None:
            self._watchdog = self._watch.spawn(self._watch_lease(), name="watch")

    async def renew(self) -> int | None:
        """Extend the lease by its ttl; the egress bytes so far (what the session shows while
        it runs), or None once the browser is gone."""
        if self._closed:
            return None
        self._lease_until = time.monotonic() + self._lease_ttl_s
        return self._browser.egress_bytes if self._browser is not None else 0

    async def _watch_lease(self) -> None:
        check_s = min(LEASE_CHECK_S, self._lease_ttl_s / 4)
        while not self._closed:
            await asyncio.sleep(check_s)
            if time.monotonic() > self._lease_until:
                log.warning("lease not renewed for %g s: ending the browser", self._lease_ttl_s)
                self._expired = True
                await self._end()
                return

    async def ready(self) -> NodeInfo:
        """Instant once the actor is placed and its worker runs."""
        return NodeInfo(
            node_id=ray_api.node_id(),
            ip=ray_api.node_ip(),
            version=__version__,
        )

    async def start(
        self,
        spec: LaunchSpec,
        name: str,
        lease_ttl_s: float,
        profile: ProfileArchive | None = None,
    ) -> Launched:
        """Launch the browser in the node's sessions dir under `name` (a plain name, never a
        path), its profile first filled from `profile`, and open its forwarder on the node's
        address; its lease runs from then on. BrowserLaunchFailed."""
        if self._starting or self._closed:
            raise RuntimeError("this actor has started its browser already")
        if PurePath(name).name != name or name in {"", ".", ".."}:
            raise ValueError(f"not a workdir name: {name!r}")
        self._starting = True
        host = ray_api.node_ip()
        settings = Settings()
        self._node = node = await node_launcher(settings)
        await asyncio.to_thread(sweep_dead, node)  # before its uid may be one a dead actor had
        self._name = name
        seed = None
        if profile is not None:
            archive = node.sessions_dir / f".{name}.profile"  # never a session's own name
            await asyncio.to_thread(archive.write_bytes, profile.data)
            seed = ArchiveSeed(archive, profile.limits)
        try:
            self._browser = browser = await node.launcher.launch(
                spec, node.sessions_dir / name, seed=seed
            )
        finally:
            if seed is not None:
                await asyncio.to_thread(seed.archive.unlink, missing_ok=True)
        try:
            ports = settings.cluster.forward_port_range()
            self._forwarder = DevtoolsForwarder(browser.devtools, host, ports)
            await self._forwarder.start()
            self._media = await _node_media(settings, browser, name)
        except BaseException:
            await self.close()
            raise
        self.arm_lease(lease_ttl_s)  # its API process renews it from its first moment on
        return Launched(
            pid=browser.pid,
            devtools_port=browser.devtools.port,
            forward_host=host,
            forward_port=self._forwarder.port,
            forward_token=self._forwarder.token,
            workdir=browser.workdir,
            files=browser.files,
            session_cookies=tuple(seed.session_cookies) if seed is not None else (),
        )

    async def store_upload(self, name: str, data: bytes) -> str:
        """A file for the browser, new in its upload area as `name` (made safe) or `name (N)`
        when taken; its final name."""
        directory = self._running().files.host_uploads

        def stored() -> str:
            path, fd = create_unique(directory, safe_name(name))
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            return path.name

        return await asyncio.to_thread(stored)

    async def profile_state(self, limits: ArchiveLimits) -> ProfileArchive | None:
        """What a saved profile keeps of the browser's profile directory, packed on the node
        once the browser has quit; None when there is none (or it is over `limits`)."""
        node = self._node
        assert node is not None  # set before the browser is
        profile = self._running().workdir / PROFILE_DIR
        archive = node.sessions_dir / f".{self._name}.state"

        def packed() -> ProfileArchive | None:
            try:
                check_profile_dir(profile)  # its user could have made it anything
                pack(profile, archive, limits=limits, select=STATE)
                return ProfileArchive(archive.read_bytes(), limits)
            except (FileNotFoundError, UnsafeSource) as error:
                log.error("profile state not packed: %s", error)
                return None
            except ArchiveTooLarge as error:
                log.error("profile state not packed: %s (limit %d bytes)", error, limits.max_bytes)
                return None
            finally:
                archive.unlink(missing_ok=True)

        return await asyncio.to_thread(packed)

    # -- media: the recording and the downloads, on this node (cluster.node_media) ----------
    async def start_recording(self, spec: RecordingSpec) -> int:
        return await self._running_media().start_recording(spec)

    async def finish_recording(self, timeout_s: float) -> int | None:
        return await self._running_media().finish_recording(timeout_s)

    async def read_recording(self, offset: int, size: int) -> bytes:
        return await self._running_media().read_recording(offset, size)

    async def downloads(self) -> list[DownloadedFile]:
        return await self._running_media().downloads()

    async def read_download(self, name: str, offset: int, size: int) -> bytes:
        return await self._running_media().read_download(name, offset, size)

    async def settle_downloads(self) -> None:
        await self._running_media().settle_downloads()

    def _running_media(self) -> NodeMedia:
        if self._media is None:
            raise RuntimeError("no browser: start() was never called")
        return self._media

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
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        await self._end()

    async def _end(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._media is not None:
                await self._media.close()
            if self._browser is not None:
                await self._browser.close()  # its enclosure removes the workdir
        finally:
            if self._forwarder is not None:
                await self._forwarder.aclose()


async def _node_media(settings: Settings, browser: EgressedBrowser, name: str) -> NodeMedia:
    """The browser's media on this node, from the node's own media settings; recordings of
    dead actors go first."""
    from browserfleet.bootstrap import media_config  # the composition root imports this package

    config = media_config(settings)
    await asyncio.to_thread(remove_dead_recordings, config.work_dir, settings.sessions_dir)
    return NodeMedia(
        browser,
        name,
        config.work_dir,
        downloads_max_bytes=config.downloads_max_bytes,
        ffmpeg=config.ffmpeg,
        bwrap=config.bwrap,
    )


RemoteBrowserActor = ray.remote(**ACTOR_OPTIONS)(BrowserActor)
