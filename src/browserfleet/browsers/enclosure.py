"""Where one browser runs: the host as it is (host.py), or an OS sandbox (browserfleet.sandbox).

The launcher (process.py) drives either through these Protocols: it builds Chromium's command
line from what the enclosure says the browser sees, spawns it through the enclosure, starts the
egress proxy on the enclosure's listener, and reaches DevTools through the enclosure's dialer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from browserfleet.browsers.files import BrowserFiles
from browserfleet.cdp.dial import DevtoolsDialer


class Enclosure(Protocol):
    """One browser's place: opened for a fresh workdir, closed once after its browser is gone."""

    @property
    def workdir(self) -> Path:
        """The browser's files on the host (the server reads them there, e.g. after a stop)."""

    @property
    def files(self) -> BrowserFiles: ...

    @property
    def profile(self) -> Path:
        """The user data dir on the host (DevToolsActivePort is read there)."""

    @property
    def browser_profile(self) -> PurePosixPath:
        """The user data dir as the browser sees it (its --user-data-dir)."""

    @property
    def chromium_sandbox(self) -> bool:
        """Whether Chromium's own sandbox stays on (False: launch with --no-sandbox)."""

    def proxy_address(self) -> str:
        """host:port where the browser finds its egress proxy (its --proxy-server)."""

    def seed_profile(self, fill: Callable[[Path], None]) -> None:
        """Before spawn: replace the empty profile with the files `fill` writes into a new
        directory, given to the browser's user. Blocking."""

    def write_preferences(self, preferences: dict[str, object]) -> None:
        """The profile's Default/Preferences before the first launch, laid over a seeded
        profile's own."""

    async def spawn(self, argv: Sequence[str], log_fd: int) -> asyncio.subprocess.Process:
        """Start argv (stdout and stderr to log_fd). A sandbox holds it before exec until
        release(); the process returned is the one to reap."""

    async def proxy_listener(self) -> socket.socket:
        """After spawn: a listening socket at proxy_address(); the caller owns it from now."""

    async def release(self) -> None:
        """Let the spawned command run (its network is ready)."""

    def dialer(self, port: int) -> DevtoolsDialer:
        """How the server reaches the browser's DevTools port."""

    def kill(self) -> None:
        """SIGKILL every process of the browser now; idempotent, never blocks."""

    async def close(self) -> None:
        """Once the spawned process is reaped: make sure nothing of the browser runs, delete
        its files and give back what it held. Idempotent."""


class Enclosures(Protocol):
    async def open(self, workdir: Path) -> Enclosure:
        """A new enclosure for a fresh workdir; raises BrowserLaunchFailed, leaving nothing."""

    def sweep(
        self, root: Path, keep: frozenset[int], keep_files: frozenset[Path] = frozenset()
    ) -> int:
        """Kill what an earlier run left of browsers under root (not those whose pid is in keep,
        when the enclosure can tell them apart); returns how many browsers were killed. The
        files of the workdirs in keep_files stay readable (a dead session's end still reads
        them, then removes them)."""

    def remove(self, workdir: Path) -> None:
        """Delete a dead browser's workdir and anything of it kept elsewhere (blocking)."""
