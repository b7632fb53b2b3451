"""A browser on another node, as the session service sees any browser (sessions.ports.
BrowserHandle): its DevTools through the node's forwarder, everything else a call to its actor.

A lost actor (its worker, node or the actor itself gone) is a lost browser: `wait_closed`
returns, the calls fail as a dead browser's would (CdpError, BrowserLaunchFailed), and the
end steps (`quit`, `end_egress`, `close`) have nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.host import PROFILE_DIR
from browserfleet.browsers.stealth import Region
from browserfleet.cdp.client import CdpError, JsonObject
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.cluster.forward import RemoteDialer
from browserfleet.cluster.wire import Launched, ProfileArchive
from browserfleet.errors import BrowserLaunchFailed, SessionNotRunningHere
from browserfleet.media.downloads import DownloadedFile, within_limit
from browserfleet.media.recorder import RecordingSpec
from browserfleet.storage.archive import ArchiveLimits, unpack
from browserfleet.storage.errors import StorageError
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)
T = TypeVar("T")

# What wait_closed returns for a browser whose actor was lost: as if it was SIGKILLed (on the
# node, PR_SET_PDEATHSIG did exactly that when its worker died).
LOST_EXIT_CODE: Final = -signal.SIGKILL
UNAVAILABLE_RETRY_S: Final = 0.5  # an actor whose node is unreachable for now, maybe not lost
PROFILE_LIMITS: Final = ArchiveLimits(max_bytes=500 * 1024 * 1024)  # the settings' default
FETCH_CHUNK: Final = 8 * 1024 * 1024  # one read of a node's file (at most node_media.MAX_CHUNK)


@dataclass(frozen=True, slots=True)
class Lease:
    """A browser's lease: renewed every `renew_s`; not renewed for `ttl_s`, the node ends the
    browser and this process counts it lost."""

    ttl_s: float = 6.0
    renew_s: float = 1.0


class RayBrowserHandle:
    """Implements sessions.ports.BrowserHandle over a BrowserActor that has started its
    browser (cluster.launcher.RayLauncher makes them)."""

    def __init__(
        self,
        actor: Any,
        launched: Launched,
        *,
        call_timeout_s: float = 30.0,
        kill: Callable[[Any], None] = ray.kill,
        lease: Lease | None = None,
        profile_limits: ArchiveLimits | None = None,
    ) -> None:
        """`kill` is ray.kill; tests pass a fake (with a fake actor). With a `lease`, renewals
        start now (on the running loop) and go on until close."""
        self._actor = actor
        self._kill = kill
        self._launched = launched
        self._devtools = RemoteDialer(
            launched.forward_host,
            launched.forward_port,
            launched.forward_token,
            launched.devtools_port,
        )
        self._call_timeout_s = call_timeout_s
        self._profile_limits = profile_limits or PROFILE_LIMITS
        self._route: Any = None  # the ref of the last route_egress, awaited before any call
        self._egress_bytes = 0
        self._egress_final = False
        self._lost = False
        self._closed = False
        self._expired = asyncio.Event()  # renewals failed for the lease's ttl
        self._renewals = TaskSet("browser-lease")
        if lease is not None:
            self._renewals.spawn(self._renew(lease), name="renew-lease")

    def __repr__(self) -> str:
        return f"RayBrowserHandle(pid={self.pid}, devtools={self._devtools!r})"

    @property
    def pid(self) -> int:
        return self._launched.pid

    @property
    def devtools(self) -> DevtoolsDialer:
        return self._devtools

    @property
    def workdir(self) -> Path:
        return self._launched.workdir

    @property
    def files(self) -> BrowserFiles:
        return self._launched.files

    @property
    def lost(self) -> bool:
        """Whether the actor was found lost, not closed (its browser died with it)."""
        return self._lost

    async def reshape(self, width: int, height: int) -> None:
        await self._launch_step("reshape", lambda: self._actor.reshape.remote(width, height))

    async def localize(self, region: Region | None) -> None:
        await self._launch_step("localize", lambda: self._actor.localize.remote(region))

    def route_egress(self, route: object) -> None:
        # Sync in the protocol: submitted now, awaited before the next call (an async actor
        # may run calls in any order).
        self._route = self._actor.route_egress.remote(route)
        self._egress_bytes = 0

    @property
    def egress_bytes(self) -> int:
        """The last count the actor gave (final once end_egress returned)."""
        return self._egress_bytes

    async def refresh_egress(self) -> int:
        """Ask the actor for the current count (the last known one if it is lost)."""
        if not self._egress_final:
            try:
                self._egress_bytes = await self._ask(self._actor.egress_bytes.remote)
            except (RayActorError, RayTaskError, TimeoutError) as error:
                log.warning("egress count of %r unavailable: %r", self, error)
        return self._egress_bytes

    @property
    def lease_expired(self) -> bool:
        """Whether its renewals failed for the lease's ttl (the node ended the browser)."""
        return self._expired.is_set()

    async def wait_closed(self) -> int:
        """The browser's exit code; LOST_EXIT_CODE once its actor is lost or its lease
        expired."""
        async with asyncio.TaskGroup() as group:
            expired = group.create_task(self._expired.wait())
            exited = group.create_task(self._exit_code())
            await asyncio.wait({expired, exited}, return_when=asyncio.FIRST_COMPLETED)
            expired.cancel()
            exited.cancel()
        if exited.cancelled():
            return LOST_EXIT_CODE
        return exited.result()

    async def _exit_code(self) -> int:
        while True:
            code = await self._actor_closed()
            if code is not None:
                return code
            await asyncio.sleep(UNAVAILABLE_RETRY_S)  # its node unreachable for now: ask again

    async def _actor_closed(self) -> int | None:
        """The actor's answer to wait_closed; None while it is unavailable for now."""
        try:
            return int(await self._actor.wait_closed.remote())
        except ActorUnavailableError:
            return None
        except RayActorError as error:
            if not self._closed:  # else it is gone because we closed it
                self._lost = True
                log.warning("the actor of %r is lost: %s", self, error)
            return LOST_EXIT_CODE

    async def _renew(self, lease: Lease) -> None:
        """Renew every renew_s; renewals that fail for ttl_s (the node frozen, cut off or
        gone) expire the lease: the node has ended the browser by then (or will the moment it
        can tell), and the actor is killed."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(lease.renew_s)
            try:
                async with asyncio.timeout(lease.renew_s):
                    egress: int | None = await self._actor.renew.remote()
                if egress is not None:  # the browser lives: its count so far comes along
                    renewed = time.monotonic()
                    if not self._egress_final:
                        self._egress_bytes = egress
            except ActorDiedError:
                return  # wait_closed says so
            except (RayActorError, RayTaskError, TimeoutError) as error:
                log.info("lease of %r not renewed: %r", self, error)
            if time.monotonic() - renewed > lease.ttl_s:
                log.warning("lease of %r expired: its browser is lost", self)
                self._lost = True
                self._expired.set()
                self._kill(self._actor)
                return

    async def call(self, method: str, params: JsonObject | None = None) -> JsonObject:
        try:
            answer: JsonObject = await self._ask(lambda: self._actor.call.remote(method, params))
        except RayActorError as error:
            self._lost = True
            raise CdpError(method, f"the browser's actor is lost: {error}") from None
        except RayTaskError as error:
            if isinstance(error.cause, TimeoutError):
                raise TimeoutError(f"{method}: {error.cause}") from None
            raise CdpError(method, str(error.cause)) from None
        return answer

    def watch_downloads(self, listener: Callable[[str, JsonObject], None] | None) -> None:
        pass  # its node names and limits them (cluster.node_media); this process fetches them

    # -- media on the node (cluster.node_media): a recording, downloads --------------------
    async def start_recording(self, spec: RecordingSpec) -> None:
        try:
            pid = await self._ask(lambda: self._actor.start_recording.remote(spec))
        except (RayActorError, RayTaskError, TimeoutError) as error:
            raise ConnectionError(f"its node did not start recording: {error!r}") from None
        log.info("%r records (ffmpeg pid %d on its node)", self, pid)

    async def fetch_recording(self, dest: Path, timeout_s: float) -> bool:
        """Finalize the recording on the node and copy it to `dest` (a new file); False when
        there is none (or it could not be fetched)."""
        try:
            size: int | None = await self._ask(
                lambda: self._actor.finish_recording.remote(timeout_s), timeout_s=timeout_s + 10
            )
            if size is None:
                return False
            await self._fetch(dest, size, self._actor.read_recording.remote)
        except (RayActorError, RayTaskError, TimeoutError, OSError) as error:
            log.error("recording of %r not fetched: %r", self, error)
            await asyncio.to_thread(dest.unlink, True)
            return False
        return True

    async def list_downloads(self) -> list[DownloadedFile]:
        """Its finished downloads, as its node lists them. OSError when it cannot."""
        try:
            files: list[DownloadedFile] = await self._ask(self._actor.downloads.remote)
        except (RayActorError, RayTaskError, TimeoutError) as error:
            raise ConnectionError(f"downloads of {self!r} not listed: {error!r}") from None
        return files

    async def fetch_download(self, file: DownloadedFile, dest: Path) -> None:
        """Copy one download to `dest` (a new file). OSError when it cannot."""
        try:
            read = self._actor.read_download.remote
            await self._fetch(dest, file.size, lambda at, n: read(file.name, at, n))
        except (RayActorError, RayTaskError, TimeoutError) as error:
            await asyncio.to_thread(dest.unlink, True)
            raise ConnectionError(f"download {file.name!r} not fetched: {error!r}") from None

    async def settle_downloads(self) -> None:
        """Its node follows no more download events, files already complete named first."""
        try:
            await self._ask(self._actor.settle_downloads.remote)
        except (RayActorError, RayTaskError, TimeoutError) as error:
            log.warning("downloads of %r not settled: %r", self, error)

    async def fetch_downloads(self, dest: Path, max_bytes: int) -> int:
        try:
            files = within_limit(await self.list_downloads(), max_bytes)
        except OSError as error:
            log.error("%s", error)
            return 0
        fetched = 0
        for file in files:
            try:
                await self.fetch_download(file, dest / file.name)
                fetched += 1
            except OSError as error:
                log.error("%s", error)
        return fetched

    async def _fetch(
        self, dest: Path, size: int, read: Callable[[int, int], Awaitable[bytes]]
    ) -> None:
        """`size` bytes read in chunks from the node into `dest`, created here (never an
        existing file or a link)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = await asyncio.to_thread(os.open, dest, flags, 0o600)
        try:
            offset = 0
            while offset < size:
                chunk = await self._ask(
                    lambda at=offset: read(at, min(FETCH_CHUNK, size - at))  # type: ignore[misc]
                )
                if not chunk:
                    break  # shorter than listed: what there is
                await asyncio.to_thread(_write_all, fd, chunk)
                offset += len(chunk)
        finally:
            os.close(fd)

    async def fetch_state(self, dest: Path) -> bool:
        """What a saved profile keeps of the browser's profile, packed on its node (once the
        browser has quit) and unpacked into `dest`/profile, `dest` being a new directory on
        this host; False when there is none or it is over the limits."""
        try:
            state: ProfileArchive | None = await self._ask(
                lambda: self._actor.profile_state.remote(self._profile_limits)
            )
        except (RayActorError, RayTaskError, TimeoutError) as error:
            log.error("profile state of %r not fetched: %r", self, error)
            return False
        if state is None:
            return False
        limits = self._profile_limits

        def unpacked() -> None:
            archive = dest / f"{PROFILE_DIR}.archive"
            archive.write_bytes(state.data)
            try:
                unpack(archive, dest / PROFILE_DIR, limits=limits)
            finally:
                archive.unlink(missing_ok=True)

        try:
            await asyncio.to_thread(unpacked)
        except StorageError as error:
            log.error("profile state of %r not unpacked: %s", self, error)
            return False
        return True

    async def store_upload(self, name: str, source: Path) -> str:
        data = await asyncio.to_thread(source.read_bytes)
        try:
            stored: str = await self._ask(lambda: self._actor.store_upload.remote(name, data))
        except (RayActorError, RayTaskError, TimeoutError) as error:
            log.error("upload for %r not stored on its node: %r", self, error)
            raise SessionNotRunningHere("its browser's node did not take the file") from None
        return stored

    async def end_egress(self) -> None:
        if self._egress_final:
            return
        try:
            self._egress_bytes = await self._ask(self._actor.end_egress.remote)
        except (RayActorError, RayTaskError, TimeoutError) as error:
            log.warning("egress of %r not ended by its actor: %r", self, error)
        self._egress_final = True  # a lost actor's proxy is gone with it: the count stays

    async def quit(self, grace_s: float) -> bool:
        try:
            return bool(
                await self._ask(lambda: self._actor.quit.remote(grace_s), timeout_s=grace_s + 10.0)
            )
        except (RayActorError, RayTaskError, TimeoutError) as error:
            log.warning("%r did not quit: %r", self, error)
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._renewals.close()
        try:
            await self._ask(self._actor.close.remote)
        except (RayActorError, RayTaskError, TimeoutError) as error:
            log.warning("%r not closed by its actor: %r", self, error)
        finally:
            self._kill(self._actor)  # its slot back at once; a lost actor is killed again, fine

    async def _launch_step(self, what: str, submit: Callable[[], Awaitable[None]]) -> None:
        try:
            await self._ask(submit)
        except RayActorError as error:
            self._lost = True
            raise BrowserLaunchFailed(f"could not {what} the browser: its actor is lost") from error
        except RayTaskError as error:
            if isinstance(error.cause, BrowserLaunchFailed):
                raise BrowserLaunchFailed(str(error.cause)) from None
            raise BrowserLaunchFailed(f"could not {what} the browser: {error.cause}") from None
        except TimeoutError as error:
            raise BrowserLaunchFailed(f"could not {what} the browser in time") from error

    async def _ask(self, submit: Callable[[], Awaitable[T]], timeout_s: float | None = None) -> T:
        """The actor's answer to one call, once any route sent before has been set."""
        async with asyncio.timeout(timeout_s or self._call_timeout_s):
            if self._route is not None:
                route, self._route = self._route, None
                await route
            return await submit()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
