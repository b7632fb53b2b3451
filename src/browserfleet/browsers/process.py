"""Local Chromium processes: LocalChromiumLauncher starts them, a ChromiumProcess owns one.

Where a browser runs (on the host, or in an OS sandbox) is its Enclosure's business; this module
builds the command line, drives the launch (DevTools endpoint, viewport) within its timeout and
a bounded number of parallel launches, and kills, reaps and cleans up on close or on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Protocol

from browserfleet.browsers.chromium_args import chromium_args, initial_preferences
from browserfleet.browsers.devtools_endpoint import DevtoolsEndpoint, wait_for_endpoint
from browserfleet.browsers.enclosure import Enclosure, Enclosures
from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.geometry import Geometry
from browserfleet.browsers.host import HostEnclosures
from browserfleet.browsers.identity import read_identity
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.stealth import BrowserIdentity, Region, priming
from browserfleet.browsers.viewport import fit_window, reshape
from browserfleet.cdp.client import CdpError, JsonObject
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.cdp.primer import DownloadListener, TargetPrimer
from browserfleet.errors import BrowserLaunchFailed
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

LOG_NAME = "chromium.log"
LOG_TAIL_BYTES = 3000
# SIGKILL leaves nothing to wait for but the kernel: this only bounds a wedged system.
REAP_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Presentation:
    """What the browser's own CDP connection (its primer) tells every target: the window rule
    of its screen, and with stealth its desktop identity and the session's region."""

    primer: TargetPrimer
    geometry: Geometry
    identity: BrowserIdentity | None  # None: stealth off
    region: Region | None = None
    # The window size it was launched with: what Chromium gives its own new windows.
    launch_size: tuple[int, int] | None = None

    async def apply(self) -> None:
        window = self.geometry.window_bounds()
        rule = priming(self.identity, self.region, window)
        await self.primer.reprime(replace(rule, launch_size=self.launch_size))


class ProxyStarter(Protocol):
    """The browser's egress proxy, started on the listener its enclosure provides."""

    async def start(self, sock: socket.socket | None = None) -> int: ...


class ChromiumProcess:
    """One running browser. Close it (or use it as an async context manager)."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        endpoint: DevtoolsEndpoint,
        enclosure: Enclosure,
        presentation: Presentation,
    ) -> None:
        self._proc = proc
        self._presentation = presentation
        self._endpoint = endpoint
        self._enclosure = enclosure
        self._exit_code: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._tasks = TaskSet(f"chromium-{proc.pid}")
        # One waiter reaps the process; any number of callers await its future.
        self._tasks.spawn(self._reap(), name="wait")
        self._close_lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int:
        """The process the server spawned (Chromium, or the sandbox holding it)."""
        return self._proc.pid

    @property
    def devtools(self) -> DevtoolsDialer:
        return self._endpoint.dialer

    @property
    def enclosure(self) -> Enclosure:
        return self._enclosure

    @property
    def workdir(self) -> Path:
        return self._enclosure.workdir

    @property
    def files(self) -> BrowserFiles:
        return self._enclosure.files

    @property
    def windows_resized(self) -> int:
        """How many new windows the primer had to give the session's size before they ran
        (each time racing a client that may already set its own viewport on the page)."""
        return self._presentation.primer.windows_resized

    async def reshape(self, width: int, height: int) -> None:
        """Change the screen and the first window of this running browser; later windows
        take that size from it (chromium_args: no --window-size), and the primer resizes
        any that does not fit."""
        await reshape(self._endpoint, width, height)
        self._presentation.geometry = Geometry(width, height)
        await self._present("reshape")

    async def localize(self, region: Region | None) -> None:
        """Make every target, current and future, show this region (no-op without stealth)."""
        self._presentation.region = region
        await self._present("localize")

    async def _present(self, what: str) -> None:
        try:
            await self._presentation.apply()
        except (CdpError, TimeoutError) as error:
            raise BrowserLaunchFailed(f"could not {what} the browser: {error}") from error

    async def wait_closed(self) -> int:
        # shield: a cancelled waiter must not cancel the others' future.
        return await asyncio.shield(self._exit_code)

    def watch_downloads(self, listener: DownloadListener | None) -> None:
        """Every download event of the browser goes to `listener` (None: stop)."""
        self._presentation.primer.watch_downloads(listener)

    async def call(self, method: str, params: JsonObject | None = None) -> JsonObject:
        """A browser-level CDP command on the server's own connection (never through the
        gateway, whose policy answers some commands for clients)."""
        return await self._presentation.primer.call_browser(method, params)

    async def quit(self, grace_s: float) -> bool:
        """Close the browser gracefully (Browser.close: it writes what it holds in memory to
        its profile), wait up to grace_s for it to exit, then kill whatever of it is left. Its
        files stay until close(). True if it exited by itself in time."""
        graceful = False
        if not self._exit_code.done():
            try:
                async with asyncio.timeout(grace_s):
                    with contextlib.suppress(CdpError):
                        # The answer may never come: the connection closes as the browser goes.
                        await self._presentation.primer.call_browser("Browser.close")
                    await asyncio.shield(self._exit_code)
                    graceful = True
            except TimeoutError:
                log.warning("chromium pid %d did not close within %.1fs", self.pid, grace_s)
        await self._presentation.primer.close()
        self._enclosure.kill()  # helpers (crashpad, a zombie renderer) and a browser that hung
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REAP_TIMEOUT_S):
                await asyncio.shield(self._exit_code)
        return graceful

    async def close(self) -> None:
        async with self._close_lock:
            if self._closed:
                return
            await self._presentation.primer.close()
            self._enclosure.kill()
            try:
                async with asyncio.timeout(REAP_TIMEOUT_S):
                    await asyncio.shield(self._exit_code)
            except TimeoutError:
                log.error(
                    "chromium pid %d not reaped %.0fs after SIGKILL", self.pid, REAP_TIMEOUT_S
                )
            await self._enclosure.close()
            if self._exit_code.done():
                # Else the waiter keeps waiting: cancelling it would hang wait_closed() forever.
                await self._tasks.close()
            self._closed = True

    async def __aenter__(self) -> ChromiumProcess:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _reap(self) -> None:
        code = await self._proc.wait()
        log.info("chromium pid %d exited with %d", self.pid, code)
        self._exit_code.set_result(code)


@dataclass(slots=True)
class _Progress:
    """How far a launch got, for its error message and its cleanup."""

    stage: str = "preparing the profile"
    proc: asyncio.subprocess.Process | None = None
    primer: TargetPrimer | None = None


class LocalChromiumLauncher:
    def __init__(
        self,
        chromium_path: Path,
        headless_shell_path: Path,
        *,
        enclosures: Enclosures | None = None,
        no_sandbox: bool = True,
        launch_timeout_s: float = 20.0,
        parallel_launches: int = 2,
    ) -> None:
        """`enclosures` says where browsers run; by default on the host, with Chromium's own
        sandbox off when `no_sandbox` (needed when the server runs as root)."""
        # A launch costs ~2 CPU-seconds: beyond a few at once they only slow each other down
        # (and past the timeout). Extra launches wait their turn; the timeout starts after.
        self._launch_slots = asyncio.Semaphore(max(1, parallel_launches))
        self._executables = {
            HeadlessMode.NEW: chromium_path,
            HeadlessMode.SHELL: headless_shell_path,
        }
        self._enclosures = enclosures or HostEnclosures(no_sandbox=no_sandbox)
        self._launch_timeout_s = launch_timeout_s
        self._identities: dict[HeadlessMode, BrowserIdentity] = {}

    async def launch(
        self,
        spec: LaunchSpec,
        workdir: Path,
        *,
        egress: ProxyStarter | None = None,
        seed: Callable[[Path], None] | None = None,
    ) -> ChromiumProcess:
        """Start Chromium in a fresh workdir; with `egress`, its traffic goes through that proxy,
        started on a listener where the browser's network is; with `seed`, its profile is
        first filled with a stored one."""
        started = time.monotonic()
        progress = _Progress()
        enclosure = await self._enclosures.open(workdir)
        log_path = enclosure.workdir / LOG_NAME
        try:
            log_fd, tail_fd = _open_log(log_path)
        except OSError as error:
            await enclosure.close()
            raise BrowserLaunchFailed(f"cannot create {log_path}: {error}") from error
        try:
            async with self._launch_slots, asyncio.timeout(self._launch_timeout_s):
                if seed is not None:
                    progress.stage = "loading the stored profile"
                    await asyncio.to_thread(enclosure.seed_profile, seed)
                endpoint = await self._start(spec, enclosure, egress, progress, log_fd)
                presentation = await self._present(
                    spec, endpoint, progress, enclosure.files.downloads
                )
        except BaseException as exc:
            if progress.primer is not None:
                await progress.primer.close()
            tail = await _discard(progress.proc, enclosure, tail_fd)
            if isinstance(exc, Exception):
                reason = self._failure_reason(exc, progress)
                raise BrowserLaunchFailed(f"{reason}; {LOG_NAME} ends with:\n{tail}") from exc
            raise  # cancelled: cleaned up, now let it through
        finally:
            os.close(log_fd)  # the browser has its own copy; ours would leak
            os.close(tail_fd)
        assert progress.proc is not None
        log.info(
            "chromium (%s) pid %d on port %d ready in %.0f ms",
            spec.mode,
            progress.proc.pid,
            endpoint.port,
            (time.monotonic() - started) * 1000,
        )
        return ChromiumProcess(progress.proc, endpoint, enclosure, presentation)

    def kill_strays(
        self, root: Path, keep: frozenset[int], keep_files: frozenset[Path] = frozenset()
    ) -> int:
        return self._enclosures.sweep(root, keep, keep_files)

    def remove_workdir(self, workdir: Path) -> None:
        self._enclosures.remove(workdir)

    async def _start(
        self,
        spec: LaunchSpec,
        enclosure: Enclosure,
        egress: ProxyStarter | None,
        progress: _Progress,
        log_fd: int,
    ) -> DevtoolsEndpoint:
        if egress is not None:
            spec = replace(spec, proxy_server=f"http://{enclosure.proxy_address()}")
        enclosure.write_preferences(initial_preferences(spec))
        progress.stage = "spawning chromium"
        args = chromium_args(
            spec,
            user_data_dir=enclosure.browser_profile,
            no_sandbox=not enclosure.chromium_sandbox,
        )
        progress.proc = await enclosure.spawn([str(self._executables[spec.mode]), *args], log_fd)
        if egress is not None:
            progress.stage = "starting the egress proxy"
            await egress.start(await enclosure.proxy_listener())
        await enclosure.release()
        progress.stage = "waiting for the DevTools endpoint"
        endpoint = await wait_for_endpoint(enclosure.profile, progress.proc, enclosure.dialer)
        progress.stage = "checking the window"
        await fit_window(endpoint, spec)
        return endpoint

    async def _present(
        self,
        spec: LaunchSpec,
        endpoint: DevtoolsEndpoint,
        progress: _Progress,
        downloads: PurePosixPath,
    ) -> Presentation:
        """The primer that gives every target the window rule and, with stealth, the
        browser's desktop identity (read from the first browser of each mode: the binary
        does not change under us)."""
        identity = self._identities.get(spec.mode) if spec.stealth else None
        if spec.stealth and identity is None:
            progress.stage = "reading the user agent"
            identity = await read_identity(endpoint)
            self._identities[spec.mode] = identity
        progress.stage = "attaching to the targets"
        geometry = Geometry(spec.screen_width, spec.screen_height)
        first = priming(identity, None, geometry.window_bounds())
        progress.primer = await TargetPrimer.open(
            endpoint.browser_ws_url, first, dialer=endpoint.dialer, downloads=downloads
        )
        launch_size = (geometry.window_width, geometry.window_height)
        return Presentation(progress.primer, geometry, identity, launch_size=launch_size)

    def _failure_reason(self, exc: Exception, progress: _Progress) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out after {self._launch_timeout_s}s {progress.stage}"
        if isinstance(exc, BrowserLaunchFailed):
            return str(exc)
        return f"{type(exc).__name__} while {progress.stage}: {exc}"


async def _discard(
    proc: asyncio.subprocess.Process | None, enclosure: Enclosure, tail_fd: int
) -> str:
    """Kill and reap a failed launch, clean up its enclosure; return the tail of its log."""
    enclosure.kill()
    if proc is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REAP_TIMEOUT_S):
                await proc.wait()
    tail = _log_tail(tail_fd)
    await enclosure.close()
    return tail


def _open_log(path: Path) -> tuple[int, int]:
    """The browser's stdout/stderr, and our own reading end of it: the browser may replace the
    file by name, never these fds."""
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        return log_fd, os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except BaseException:
        os.close(log_fd)
        raise


def _log_tail(fd: int) -> str:
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, LOG_TAIL_BYTES, max(0, size - LOG_TAIL_BYTES)).decode(errors="replace")
    except OSError:
        return "(no log)"
