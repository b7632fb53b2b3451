"""Browsers that run on the host as the server's own user (isolation "none", development only).

Each browser gets its own process group, dies with our process (PR_SET_PDEATHSIG) and keeps its
files in its workdir (profile, config) plus a short scratch dir for TMPDIR; strays of an earlier
run are found by the --user-data-dir on their command line.
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
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.seeding import install_profile, merged_preferences
from browserfleet.browsers.strays import kill_group_members, kill_naming, kill_strays
from browserfleet.cdp.dial import LOOPBACK, DevtoolsDialer, LoopbackDialer
from browserfleet.errors import BrowserLaunchFailed

log = logging.getLogger(__name__)

PROFILE_DIR = "profile"
CONFIG_DIR = "config"
PR_SET_PDEATHSIG = 1
# SIGKILL leaves nothing to wait for but the kernel: this only bounds a wedged system.
GROUP_GONE_TIMEOUT_S = 2.0


class HostEnclosures:
    """Implements browsers.enclosure.Enclosures for browsers on the host."""

    def __init__(self, *, no_sandbox: bool = True) -> None:
        self._no_sandbox = no_sandbox
        self._die_with_us = parent_death_signal()

    async def open(self, workdir: Path) -> HostEnclosure:
        claim_workdir(workdir)
        try:
            _prepare(workdir)
        except OSError as error:
            await asyncio.to_thread(remove_workdir, workdir)
            raise BrowserLaunchFailed(f"cannot prepare {workdir}: {error}") from error
        return HostEnclosure(workdir, chromium_sandbox=not self._no_sandbox, die=self._die_with_us)

    def sweep(
        self, root: Path, keep: frozenset[int], keep_files: frozenset[Path] = frozenset()
    ) -> int:
        return kill_strays(root, keep)  # files are never touched here

    def remove(self, workdir: Path) -> None:
        remove_workdir(workdir)


class HostEnclosure:
    def __init__(self, workdir: Path, *, chromium_sandbox: bool, die: Callable[[], None]) -> None:
        self._workdir = workdir
        self._chromium_sandbox = chromium_sandbox
        self._die = die
        self._files = BrowserFiles.unsandboxed(workdir)
        self._listener: socket.socket | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._closed = False

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def files(self) -> BrowserFiles:
        return self._files

    @property
    def profile(self) -> Path:
        return self._workdir / PROFILE_DIR

    @property
    def browser_profile(self) -> PurePosixPath:
        return PurePosixPath(self.profile)

    @property
    def chromium_sandbox(self) -> bool:
        return self._chromium_sandbox

    def proxy_address(self) -> str:
        # The listener exists before Chromium does: it queues the browser's first connections
        # until the proxy accepts them.
        if self._listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((LOOPBACK, 0))
            listener.listen(128)
            self._listener = listener
        return f"{LOOPBACK}:{self._listener.getsockname()[1]}"

    def seed_profile(self, fill: Callable[[Path], None]) -> None:
        install_profile(self.profile, fill, owner=None)

    def write_preferences(self, preferences: dict[str, object]) -> None:
        if preferences:
            path = self.profile / "Default" / "Preferences"
            path.write_text(json.dumps(merged_preferences(path, preferences)))

    async def spawn(self, argv: Sequence[str], log_fd: int) -> asyncio.subprocess.Process:
        # XDG_CONFIG_HOME: Chromium's default-profile files and crashpad's database (whose
        # handlers leave our process group) land in the workdir and name it on their cmdline.
        env = {
            **os.environ,
            "TMPDIR": str(scratch_dir(self._workdir)),
            "XDG_CONFIG_HOME": str(self._workdir / CONFIG_DIR),
        }
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            env=env,
            cwd=self._workdir,
            preexec_fn=self._die,  # its own process group, killed as one
        )
        return self._proc

    async def proxy_listener(self) -> socket.socket:
        if self._listener is None:
            raise RuntimeError("proxy_address() was never asked")
        listener, self._listener = self._listener, None
        return listener

    async def release(self) -> None:
        pass  # nothing holds a browser on the host

    def dialer(self, port: int) -> DevtoolsDialer:
        return LoopbackDialer(port)

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            # The leader is not reaped yet, so its group id is still ours to signal.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        group = self._proc.pid if self._proc is not None else None
        await asyncio.to_thread(_sweep, group, self._workdir)


def _prepare(workdir: Path) -> None:
    scratch = scratch_dir(workdir)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    (workdir / CONFIG_DIR).mkdir()
    BrowserFiles.unsandboxed(workdir).create()
    (workdir / PROFILE_DIR / "Default").mkdir(parents=True)


def claim_workdir(workdir: Path) -> None:
    """Create workdir (0700); BrowserLaunchFailed if it exists with anything in it."""
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise BrowserLaunchFailed(f"workdir {workdir} already exists and is not empty")
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)


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


def parent_death_signal() -> Callable[[], None]:
    """A preexec_fn that puts the child in a process group of its own (in our session: never
    setsid, which would leave it outside whatever ends our session) and has the kernel SIGKILL
    it when our (forking) thread dies. setpgid here, not process_group=0: uvloop, the loop of
    Ray's async actors, refuses that argument."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        os.setpgid(0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # we died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _sweep(group: int | None, workdir: Path) -> None:
    """Make sure nothing of the browser survives, then delete its files (blocking)."""
    if group is not None and not kill_group_members(group, GROUP_GONE_TIMEOUT_S):
        log.error("processes of chromium group %d survived SIGKILL", group)
    # Crashpad's handlers leave the group (setsid) but name the workdir; they exit on their own
    # within milliseconds of the browser, this makes sure. Anything else here escaped.
    if escaped := kill_naming(workdir):
        log.info("killed %d process(es) of chromium group %s outside it", escaped, group)
    remove_workdir(workdir)
