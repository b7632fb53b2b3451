"""Local Chromium processes: LocalChromiumLauncher starts them, a ChromiumProcess owns one.

Each browser runs in its own process group, dies with our process (PR_SET_PDEATHSIG) and
lives in its own workdir (profile, TMPDIR, log), which closing or a failed launch removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from browserfleet.browsers.chromium_args import chromium_args, initial_preferences
from browserfleet.browsers.devtools_endpoint import DevtoolsEndpoint, wait_for_endpoint
from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.geometry import Geometry
from browserfleet.browsers.identity import read_identity
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.stealth import BrowserIdentity, Region, priming
from browserfleet.browsers.strays import kill_group_members, kill_naming, kill_strays
from browserfleet.browsers.viewport import fit_window, reshape
from browserfleet.cdp.client import CdpError
from browserfleet.cdp.primer import TargetPrimer
from browserfleet.errors import BrowserLaunchFailed
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

LOG_NAME = "chromium.log"
PROFILE_DIR = "profile"
CONFIG_DIR = "config"
LOG_TAIL_BYTES = 3000
# SIGKILL leaves nothing to wait for but the kernel: these only bound a wedged system.
REAP_TIMEOUT_S = 5.0
GROUP_GONE_TIMEOUT_S = 2.0
PR_SET_PDEATHSIG = 1


@dataclass(slots=True)
class Presentation:
    """What the browser's own CDP connection (its primer) tells every target: the window rule
    of its screen, and with stealth its desktop identity and the session's region."""

    primer: TargetPrimer
    geometry: Geometry
    identity: BrowserIdentity | None  # None: stealth off
    region: Region | None = None

    async def apply(self) -> None:
        window = self.geometry.window_bounds()
        await self.primer.reprime(priming(self.identity, self.region, window))


class ChromiumProcess:
    """One running browser. Close it (or use it as an async context manager)."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        endpoint: DevtoolsEndpoint,
        workdir: Path,
        presentation: Presentation,
    ) -> None:
        self._proc = proc
        self._presentation = presentation
        self._endpoint = endpoint
        self._cdp_port = endpoint.port
        self._workdir = workdir
        self._files = BrowserFiles.unsandboxed(workdir)
        self._exit_code: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._tasks = TaskSet(f"chromium-{proc.pid}")
        # One waiter reaps the process; any number of callers await its future.
        self._tasks.spawn(self._reap(), name="wait")
        self._close_lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def cdp_port(self) -> int:
        return self._cdp_port

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def files(self) -> BrowserFiles:
        return self._files

    async def reshape(self, width: int, height: int) -> None:
        """Change the screen and the first window of this running browser; later windows
        get the same geometry from the primer."""
        await reshape(self._endpoint.browser_ws_url, self._endpoint.first_page_id, width, height)
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

    async def close(self) -> None:
        async with self._close_lock:
            if self._closed:
                return
            await self._presentation.primer.close()
            if not self._exit_code.done():
                # The leader is alive, so its group id is still ours to signal.
                _kill_group(self.pid)
            try:
                async with asyncio.timeout(REAP_TIMEOUT_S):
                    await asyncio.shield(self._exit_code)
            except TimeoutError:
                log.error(
                    "chromium pid %d not reaped %.0fs after SIGKILL", self.pid, REAP_TIMEOUT_S
                )
            await asyncio.to_thread(_sweep, self.pid, self._workdir)
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
        no_sandbox: bool = True,
        launch_timeout_s: float = 20.0,
        parallel_launches: int = 2,
    ) -> None:
        # A launch costs ~2 CPU-seconds: beyond a few at once they only slow each other down
        # (and past the timeout). Extra launches wait their turn; the timeout starts after.
        self._launch_slots = asyncio.Semaphore(max(1, parallel_launches))
        self._executables = {
            HeadlessMode.NEW: chromium_path,
            HeadlessMode.SHELL: headless_shell_path,
        }
        self._no_sandbox = no_sandbox
        self._launch_timeout_s = launch_timeout_s
        self._identities: dict[HeadlessMode, BrowserIdentity] = {}
        self._die_with_us = _parent_death_signal()

    async def launch(self, spec: LaunchSpec, workdir: Path) -> ChromiumProcess:
        _claim_workdir(workdir)
        started = time.monotonic()
        progress = _Progress()
        try:
            async with self._launch_slots, asyncio.timeout(self._launch_timeout_s):
                endpoint = await self._start(spec, workdir, progress)
                presentation = await self._present(spec, endpoint, progress)
        except BaseException as exc:
            if progress.primer is not None:
                await progress.primer.close()
            tail = await _discard(progress.proc, workdir)
            if isinstance(exc, Exception):
                reason = self._failure_reason(exc, progress)
                raise BrowserLaunchFailed(f"{reason}; {LOG_NAME} ends with:\n{tail}") from exc
            raise  # cancelled: cleaned up, now let it through
        assert progress.proc is not None
        log.info(
            "chromium (%s) pid %d on port %d ready in %.0f ms",
            spec.mode,
            progress.proc.pid,
            endpoint.port,
            (time.monotonic() - started) * 1000,
        )
        return ChromiumProcess(progress.proc, endpoint, workdir, presentation)

    def kill_strays(self, root: Path, keep: frozenset[int]) -> int:
        return kill_strays(root, keep)

    def remove_workdir(self, workdir: Path) -> None:
        remove_workdir(workdir)

    async def _start(
        self, spec: LaunchSpec, workdir: Path, progress: _Progress
    ) -> DevtoolsEndpoint:
        profile = workdir / PROFILE_DIR
        _write_profile(workdir, spec)
        progress.stage = "spawning chromium"
        args = chromium_args(
            spec,
            user_data_dir=profile,
            no_sandbox=self._no_sandbox,
        )
        progress.proc = await self._spawn(self._executables[spec.mode], args, workdir)
        progress.stage = "waiting for the DevTools endpoint"
        endpoint = await wait_for_endpoint(profile, progress.proc)
        progress.stage = "checking the window"
        await fit_window(endpoint.browser_ws_url, endpoint.first_page_id, spec)
        return endpoint

    async def _present(
        self, spec: LaunchSpec, endpoint: DevtoolsEndpoint, progress: _Progress
    ) -> Presentation:
        """The primer that gives every target the window rule and, with stealth, the
        browser's desktop identity (read from the first browser of each mode: the binary
        does not change under us)."""
        identity = self._identities.get(spec.mode) if spec.stealth else None
        if spec.stealth and identity is None:
            progress.stage = "reading the user agent"
            identity = await read_identity(endpoint.browser_ws_url)
            self._identities[spec.mode] = identity
        progress.stage = "attaching to the targets"
        geometry = Geometry(spec.screen_width, spec.screen_height)
        first = priming(identity, None, geometry.window_bounds())
        progress.primer = await TargetPrimer.open(endpoint.browser_ws_url, first)
        return Presentation(progress.primer, geometry, identity)

    async def _spawn(
        self, executable: Path, args: list[str], workdir: Path
    ) -> asyncio.subprocess.Process:
        # XDG_CONFIG_HOME: Chromium's default-profile files and crashpad's database (whose
        # handlers leave our process group) land in the workdir and name it on their cmdline.
        env = {
            **os.environ,
            "TMPDIR": str(scratch_dir(workdir)),
            "XDG_CONFIG_HOME": str(workdir / CONFIG_DIR),
        }
        output = os.open(workdir / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return await asyncio.create_subprocess_exec(
                executable,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=env,
                cwd=workdir,
                start_new_session=True,  # its own process group, killed as one
                preexec_fn=self._die_with_us,
            )
        finally:
            os.close(output)  # the child has its own copy; ours would leak

    def _failure_reason(self, exc: Exception, progress: _Progress) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out after {self._launch_timeout_s}s {progress.stage}"
        if isinstance(exc, BrowserLaunchFailed):
            return str(exc)
        return f"{type(exc).__name__} while {progress.stage}: {exc}"


def scratch_dir(workdir: Path) -> Path:
    """The browser's TMPDIR: short, because Chromium puts its SingletonSocket there and a Unix
    socket path must fit in 108 bytes, which a data dir of any real length would overflow.
    Derived from the workdir, so whoever removes a workdir can remove its scratch dir too."""
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"browserfleet-{digest}"


def remove_workdir(workdir: Path) -> None:
    """Delete a browser's workdir and its scratch dir (blocking)."""
    shutil.rmtree(scratch_dir(workdir), ignore_errors=True)
    shutil.rmtree(workdir, ignore_errors=True)


def _claim_workdir(workdir: Path) -> None:
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise BrowserLaunchFailed(f"workdir {workdir} already exists and is not empty")
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)


def _write_profile(workdir: Path, spec: LaunchSpec) -> None:
    scratch = scratch_dir(workdir)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    (workdir / CONFIG_DIR).mkdir()
    BrowserFiles.unsandboxed(workdir).create()
    default = workdir / PROFILE_DIR / "Default"
    default.mkdir(parents=True)
    if prefs := initial_preferences(spec):
        (default / "Preferences").write_text(json.dumps(prefs))


def _parent_death_signal() -> Callable[[], None]:
    """A preexec_fn that has the kernel SIGKILL the child when our (forking) thread dies."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # we died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


async def _discard(proc: asyncio.subprocess.Process | None, workdir: Path) -> str:
    """Kill and reap a failed launch, remove its workdir; return the tail of its log."""
    if proc is not None:
        _kill_group(proc.pid)
        await proc.wait()
    tail = _log_tail(workdir / LOG_NAME)
    await asyncio.to_thread(_sweep, proc.pid if proc else None, workdir)
    return tail


def _kill_group(group: int) -> None:
    # ProcessLookupError: already gone, and nothing left in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _sweep(group: int | None, workdir: Path) -> None:
    """Make sure nothing of the browser survives, then delete its files (blocking)."""
    if group is not None and not kill_group_members(group, GROUP_GONE_TIMEOUT_S):
        log.error("processes of chromium group %d survived SIGKILL", group)
    # Crashpad's handlers leave the group (setsid) but name the workdir; they exit on their own
    # within milliseconds of the browser, this makes sure. Anything else here escaped.
    if escaped := kill_naming(workdir):
        log.info("killed %d process(es) of chromium group %s outside it", escaped, group)
    remove_workdir(workdir)


def _log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as log_file:
            log_file.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            return log_file.read().decode(errors="replace")
    except OSError:
        return "(no log)"
