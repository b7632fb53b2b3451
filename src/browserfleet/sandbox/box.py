"""One browser's sandbox (Enclosure): bubblewrap started as the sandbox's uid inside its cgroup,
the browser held at the gate until the server's listener is in place, DevTools dialed inside its
network namespace, and everything killed and removed at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import signal
import socket
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.seeding import install_profile, merged_preferences
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.errors import BrowserLaunchFailed
from browserfleet.sandbox import spec
from browserfleet.sandbox.cgroups import Cgroup
from browserfleet.sandbox.mounts import unmount_all
from browserfleet.sandbox.netns import Netns, NetnsDialer
from browserfleet.sandbox.spec import SandboxFds
from browserfleet.sandbox.uids import UidLease

if TYPE_CHECKING:
    from browserfleet.sandbox.runner import SandboxRunner

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
KILL_TIMEOUT_S = 5.0
LOOPBACK_UP_TIMEOUT_S = 10.0
LOOPBACK_POLL_S = 0.002


class Sandbox:
    """Implements browsers.enclosure.Enclosure: one browser's sandbox."""

    def __init__(
        self, runner: SandboxRunner, lease: UidLease, workdir: Path, cgroup: Cgroup
    ) -> None:
        self._runner = runner
        self._lease = lease
        self._workdir = workdir
        self._cgroup = cgroup
        self._files = BrowserFiles(
            workdir / "downloads", workdir / "uploads", spec.DOWNLOADS, spec.UPLOADS
        )
        self._proc: asyncio.subprocess.Process | None = None
        self._inner: int = -1  # pidfd of bubblewrap's init of the pid namespace
        self._netns: Netns | None = None
        self._gate: int = -1  # write end of the gate pipe: the sandbox lives while it is open
        self._closed = False

    @property
    def uid(self) -> int:
        return self._lease.uid

    @property
    def cgroup(self) -> Cgroup:
        return self._cgroup

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def files(self) -> BrowserFiles:
        return self._files

    @property
    def profile(self) -> Path:
        return self._workdir / "profile"

    @property
    def browser_profile(self) -> PurePosixPath:
        return spec.PROFILE

    @property
    def chromium_sandbox(self) -> bool:
        return True

    def proxy_address(self) -> str:
        return f"127.0.0.1:{spec.PROXY_PORT}"

    def seed_profile(self, fill: Callable[[Path], None]) -> None:
        install_profile(self.profile, fill, owner=self.uid)

    def write_preferences(self, preferences: dict[str, object]) -> None:
        # Nothing of the sandbox's user runs yet: the files here are the server's or a seed's.
        if not preferences:
            return
        path = self.profile / "Default" / "Preferences"
        merged = merged_preferences(path, preferences)
        fresh = path.with_name("Preferences.new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(merged))
        os.chown(fresh, self.uid, self.uid)
        os.replace(fresh, path)

    async def spawn(self, argv: Sequence[str], log_fd: int) -> asyncio.subprocess.Process:
        info_r, info_w = os.pipe2(os.O_CLOEXEC)
        gate_r, self._gate = os.pipe2(os.O_CLOEXEC)
        passed = [info_w, gate_r]
        try:
            etc = self._runner.etc_fds()
            passed += [fd for _, fd in etc]
            options = spec.bwrap_options(
                self._runner.host,
                self._runner.config.limits,
                session_source=PurePosixPath(self._runner.staging(self.uid)),
                fds=SandboxFds(info_w, tuple(etc)),
                env=self._runner.env,
            )
            args_fd = memfd("bwrap-args", b"".join(o.encode() + b"\0" for o in options))
            passed.append(args_fd)
            procs = self._cgroup.open_procs()
            passed += procs
            self._proc = await asyncio.create_subprocess_exec(
                str(self._runner.config.bwrap),
                "--args",
                str(args_fd),
                "--",
                *spec.gated(argv),
                stdin=gate_r,
                stdout=log_fd,
                stderr=log_fd,
                env={},
                cwd="/",
                pass_fds=[fd for fd in passed if fd not in procs and fd != gate_r],
                preexec_fn=_become(procs, self.uid, self._runner.config.nice),
            )
        finally:
            for fd in passed:
                os.close(fd)
        try:
            info = await _read_json(info_r)
        finally:
            os.close(info_r)
        if not isinstance(info, dict) or not isinstance(info.get("child-pid"), int):
            raise BrowserLaunchFailed("bubblewrap could not build the sandbox")
        self._attach(info["child-pid"])
        return self._proc

    def _attach(self, child: int) -> None:
        """Hold on to bubblewrap's pid-namespace init and network namespace."""
        try:
            self._inner = os.pidfd_open(child)
            self._netns = Netns.of_pid(child)
            # The pidfd, taken first, tells whether child still names bubblewrap's init (the
            # namespace opened by pid could otherwise be another process's by now).
            signal.pidfd_send_signal(self._inner, 0)
        except (ProcessLookupError, FileNotFoundError) as error:
            raise BrowserLaunchFailed("bubblewrap's sandbox exited while starting") from error

    async def proxy_listener(self) -> socket.socket:
        # bubblewrap brings the namespace's loopback up while it builds the sandbox, a moment
        # after it reports the namespace: until then 127.0.0.1 cannot be bound.
        async with asyncio.timeout(LOOPBACK_UP_TIMEOUT_S):
            while True:
                try:
                    return await self._net().listen(spec.PROXY_PORT)
                except OSError as error:
                    if error.errno != errno.EADDRNOTAVAIL:
                        raise
                await asyncio.sleep(LOOPBACK_POLL_S)

    async def release(self) -> None:
        if self._gate >= 0:
            # A broken pipe: the sandbox is gone already, and its exit tells the launcher why.
            with contextlib.suppress(BrokenPipeError):
                os.write(self._gate, b"go\n")

    def dialer(self, port: int) -> DevtoolsDialer:
        return NetnsDialer(self._net(), port)

    def _net(self) -> Netns:
        if self._netns is None:
            raise RuntimeError("the sandbox is not started")
        return self._netns

    def kill(self) -> None:
        if self._inner >= 0:
            # The pid namespace's init: when it dies the kernel kills everything inside.
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._inner, signal.SIGKILL)
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        self._cgroup.kill()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.kill()
        if self._gate >= 0:
            os.close(self._gate)
            self._gate = -1
        if self._netns is not None:
            self._netns.close()
        if self._inner >= 0:
            os.close(self._inner)
            self._inner = -1
        await asyncio.to_thread(self._teardown)

    def teardown(self) -> None:
        """Close a sandbox nothing was started in (blocking)."""
        self._closed = True
        self._teardown()

    def _teardown(self) -> None:
        clean = self._cgroup.remove(KILL_TIMEOUT_S)
        staging = self._runner.staging(self.uid)
        for path in (staging, self._workdir):
            try:
                unmount_all(path)
            except OSError as error:
                clean = False
                log.error("cannot unmount %s: %s", path, error)
        shutil.rmtree(self._workdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rmdir()
        if not clean:
            log.error("sandbox uid %d not fully cleaned; whoever takes it next cleans it", self.uid)
        self._lease.release()


def memfd(name: str, content: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _become(procs: list[int], uid: int, nice: int) -> Callable[[], None]:
    """preexec_fn of bubblewrap: a process group of its own (in the server's session: never
    setsid; and not process_group=0, which uvloop refuses), join the sandbox's cgroup (while
    still root), yield the CPU to the server by `nice` (every process of the sandbox inherits
    it, and an unprivileged uid cannot take it back), become the sandbox's uid, and die with the
    server. PR_SET_PDEATHSIG is cleared by a change of credentials, so it comes after setuid;
    the getppid check covers a server that died before."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        os.setpgid(0, 0)
        for fd in procs:
            os.write(fd, b"0")  # "0": the writing process itself
        if nice:
            os.nice(nice)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


async def _read_json(fd: int) -> object:
    """The JSON document bubblewrap writes to its info fd; None if it closes the fd first."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, readable)
            try:
                await readable
            finally:
                loop.remove_reader(fd)
            continue
        if not chunk:
            return None
        data += chunk
        with contextlib.suppress(ValueError):
            return json.loads(data)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
