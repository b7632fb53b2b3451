"""Builds and tears down sandboxes: SandboxRunner (one per server) opens a Sandbox per browser.

Building, in order: a uid of the range (whatever a dead holder left of it removed), the
workdir's tmpfs and the bind bubblewrap reads it from, the cgroup with its caps; then bubblewrap
starts as that uid, joined to the cgroup, and its command waits at a gate (spec.GATE) while the
server makes the egress proxy's listener inside its network namespace. Tearing down kills the
sandbox's pid namespace and cgroup, then removes mounts, cgroup and workdir and lets the uid go.
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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from browserfleet.browsers.files import BrowserFiles
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.errors import BrowserLaunchFailed
from browserfleet.sandbox import spec
from browserfleet.sandbox.cgroups import (
    Cgroup,
    CgroupPlan,
    CgroupTree,
    parse_proc_cgroup,
    plan_cgroups,
    remove_dirs,
)
from browserfleet.sandbox.etc import etc_files
from browserfleet.sandbox.mounts import (
    bind,
    current_mounts,
    mount_tmpfs,
    sandbox_mounts,
    tmpfs_options,
    unmount_all,
)
from browserfleet.sandbox.netns import Netns, NetnsDialer
from browserfleet.sandbox.residue import kill_uid, uid_processes
from browserfleet.sandbox.spec import HostSystem, SandboxFds, SandboxLimits
from browserfleet.sandbox.uids import LeaseRecord, UidLease, UidLocks, UidRange

log = logging.getLogger(__name__)
T = TypeVar("T")

PR_SET_PDEATHSIG = 1
KILL_TIMEOUT_S = 5.0
LOOPBACK_UP_TIMEOUT_S = 10.0
LOOPBACK_POLL_S = 0.002
LOCKS_DIR = "uids"
STAGING_DIR = "boxes"
# A fraction of the disk quota for Chromium's HTTP cache, the rest for profile and downloads.
CACHE_SHARE = 4


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    bwrap: Path
    uids: UidRange
    limits: SandboxLimits
    run_dir: Path  # host-wide: uid lock files and the staging mount points
    executables: tuple[Path, ...]  # browser binaries the sandbox must see
    cgroup_parent: str | None = None


class SandboxRunner:
    """Implements browsers.enclosure.Enclosures with one OS sandbox per browser."""

    def __init__(self, config: SandboxConfig, plan: CgroupPlan | None = None) -> None:
        self.config = config
        self.plan = plan or plan_cgroups(
            current_mounts(),
            parse_proc_cgroup(Path("/proc/self/cgroup").read_text()),
            config.cgroup_parent,
        )
        self.tree = CgroupTree(self.plan)
        self.locks = UidLocks(config.run_dir / LOCKS_DIR, config.uids)
        self.host = probe_host(config.executables)
        self._staging_root = config.run_dir / STAGING_DIR
        self._etc = etc_files(config.limits.disk_bytes // CACHE_SHARE)
        self._env = spec.sandbox_env(os.environ)

    def prepare(self) -> None:
        """Create the run directories and the cgroup parents (blocking)."""
        self.config.run_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.config.run_dir.chmod(0o711)  # the sandbox's uid must reach boxes/<uid>
        self._staging_root.mkdir(exist_ok=True, mode=0o711)
        self._staging_root.chmod(0o711)
        self.locks.prepare()
        self.tree.prepare()

    async def open(self, workdir: Path) -> Sandbox:
        lease = await _finished(self.locks.acquire, _release)
        if lease is None:
            raise BrowserLaunchFailed(f"every sandbox uid ({self.config.uids}) is in use")
        try:
            return await _finished(lambda: self._build(lease, workdir), Sandbox.teardown)
        except BaseException:
            lease.release()
            raise

    def sweep(self, root: Path, keep: frozenset[int]) -> int:
        """Remove what dead runs left: every uid of the range that nobody holds is cleaned (its
        processes, cgroups and mounts), then sandbox mounts under root that no live holder
        recorded. `keep` is not needed: a live browser's uid is locked by its server."""
        dirty = set(self.locks.recorded()) | set(uid_processes(self.config.uids).values())
        # Leaves of other uid ranges (another server's configuration) are not ours to clean.
        dirty |= {int(p.name[4:]) for p in self.tree.leaves() if p.name[4:].isdigit()}
        dirty &= set(self.config.uids)
        killed = 0
        held: set[Path] = set()
        for uid in sorted(dirty):
            lease = self.locks.try_acquire(uid)
            if lease is None:  # a live server's browser: keep what its record names
                held |= _recorded_paths(self.config.run_dir / LOCKS_DIR / f"{uid}.lock")
                continue
            try:
                killed += 1 if self._clean(lease) else 0
            finally:
                lease.release()
        for path in sandbox_mounts(current_mounts(), root):
            if path not in held:
                log.warning("unmounting a leftover sandbox workdir at %s", path)
                unmount_all(path)
        return killed

    def remove(self, workdir: Path) -> None:
        unmount_all(workdir)
        shutil.rmtree(workdir, ignore_errors=True)

    def close(self) -> None:
        self.tree.remove_parents()

    def staging(self, uid: int) -> Path:
        return self._staging_root / str(uid)

    def _build(self, lease: UidLease, workdir: Path) -> Sandbox:
        self._clean(lease)
        uid = lease.uid
        staging = self.staging(uid)
        cgroup = self.tree.leaf(uid)
        lease.record(LeaseRecord(str(workdir), str(staging), tuple(str(d) for d in cgroup.dirs)))
        try:
            _claim(workdir)
            limits = self.config.limits
            options = tmpfs_options(
                size=limits.disk_bytes, inodes=limits.disk_inodes, uid=uid, gid=uid
            )
            mount_tmpfs(workdir, options)
            for name in spec.WORKDIR_DIRS:
                (workdir / name).mkdir(mode=0o700)
                os.chown(workdir / name, uid, uid)
            staging.mkdir(mode=0o700, exist_ok=True)
            bind(workdir, staging)
            cgroup.create(limits)
        except OSError as error:
            self._undo(uid, workdir, staging, cgroup)
            raise BrowserLaunchFailed(f"cannot build the sandbox for {workdir}: {error}") from error
        except BaseException:
            self._undo(uid, workdir, staging, cgroup)
            raise
        return Sandbox(self, lease, workdir, cgroup)

    def _clean(self, lease: UidLease) -> bool:
        """Remove whatever an earlier holder of this uid left; True if processes were killed."""
        uid = lease.uid
        record = lease.previous
        killed = kill_uid(uid, KILL_TIMEOUT_S) > 0
        leaves = {Path(p) for p in record.cgroups} if record else set()
        for directory in leaves | set(self.tree.leaf(uid).dirs):
            if directory.exists():
                log.warning("removing leftover cgroup %s", directory)
                remove_dirs([directory], KILL_TIMEOUT_S)
        ours = set(sandbox_mounts(current_mounts()))
        paths = [self.staging(uid)] + (
            [Path(record.staging), Path(record.workdir)] if record else []
        )
        for path in dict.fromkeys(paths):
            if path in ours:
                log.warning("unmounting leftover sandbox mount %s", path)
                unmount_all(path)
        with contextlib.suppress(OSError):
            self.staging(uid).rmdir()
        if record is not None or killed:
            log.warning("cleaned up after an earlier holder of sandbox uid %d", uid)
        return killed

    def _undo(self, uid: int, workdir: Path, staging: Path, cgroup: Cgroup) -> None:
        for path in (staging, workdir):
            with contextlib.suppress(OSError):
                unmount_all(path)
        shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rmdir()
        cgroup.remove(KILL_TIMEOUT_S)

    def etc_fds(self) -> list[tuple[PurePosixPath, int]]:
        """Fresh memfds with the generated /etc files (bubblewrap reads each once)."""
        fds: list[tuple[PurePosixPath, int]] = []
        try:
            for path, content in self._etc.items():
                fds.append((path, _memfd(path.name, content)))
        except BaseException:
            for _, fd in fds:
                os.close(fd)
            raise
        return fds

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)


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

    def write_preferences(self, preferences: dict[str, object]) -> None:
        if not preferences:
            return
        path = self.profile / "Default" / "Preferences"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(preferences))
        os.chown(path, self.uid, self.uid)

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
            args_fd = _memfd("bwrap-args", b"".join(o.encode() + b"\0" for o in options))
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
                start_new_session=True,  # its own process group
                preexec_fn=_become(procs, self.uid),
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
        self._inner = os.pidfd_open(child)
        self._netns = Netns.of_pid(child)
        # The child waits on the block fd, so it is alive; if it was not, the pid could name
        # another process by now: the pidfd, taken first, tells.
        try:
            signal.pidfd_send_signal(self._inner, 0)
        except ProcessLookupError as error:
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


def probe_host(executables: Sequence[Path]) -> HostSystem:
    """The parts of this host's filesystem a sandbox sees (read-only)."""
    merged = {name: _link(Path(name)) for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64")}
    merged = {
        name: target for name, target in merged.items() if target is not None or Path(name).is_dir()
    }
    optional = [
        (path, Path(path).exists())
        for path in ("/etc/fonts", "/etc/ssl/certs", "/etc/ld.so.cache", "/var/cache/fontconfig")
    ]
    localtime = _link(Path("/etc/localtime"))
    if localtime is None:
        optional.append(("/etc/localtime", Path("/etc/localtime").is_file()))
    return spec.host_system(
        merged=merged,
        optional=optional,
        localtime=localtime,
        executables=[PurePosixPath(p.resolve()) for p in executables if p.exists()],
    )


def _link(path: Path) -> str | None:
    return os.readlink(path) if path.is_symlink() else None


def _claim(workdir: Path) -> None:
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise BrowserLaunchFailed(f"workdir {workdir} already exists and is not empty")
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)


def _recorded_paths(lock_file: Path) -> set[Path]:
    try:
        record = LeaseRecord.from_json(lock_file.read_bytes())
    except OSError:
        return set()
    return {Path(record.workdir), Path(record.staging)} if record else set()


def _memfd(name: str, content: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _become(procs: list[int], uid: int) -> Callable[[], None]:
    """preexec_fn of bubblewrap: join the sandbox's cgroup (while still root), become the
    sandbox's uid, and die with the server. PR_SET_PDEATHSIG is cleared by a change of
    credentials, so it comes after setuid; the getppid check covers a server that died before."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        for fd in procs:
            os.write(fd, b"0")  # "0": the writing process itself
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


def _release(lease: UidLease | None) -> None:
    if lease is not None:
        lease.release()


async def _finished(work: Callable[[], T], undo: Callable[[T], None]) -> T:
    """work() in a thread; if the caller is cancelled meanwhile, wait for the thread and undo
    what it made (a lock, a mount), so that a cancelled launch leaves nothing held."""
    future = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            undo(await future)
        raise
