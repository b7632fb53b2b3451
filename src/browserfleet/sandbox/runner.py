"""Builds and tears down sandboxes: SandboxRunner (one per server) opens a Sandbox (box.py) per
browser.

Building, in order: a uid of the range (whatever a dead holder left of it removed), the
workdir's tmpfs and the bind bubblewrap reads it from, the cgroup with its caps; then bubblewrap
starts as that uid, joined to the cgroup, and its command waits at a gate (spec.GATE) while the
server makes the egress proxy's listener inside its network namespace. Tearing down kills the
sandbox's pid namespace and cgroup, then removes mounts, cgroup and workdir and lets the uid go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from browserfleet.errors import BrowserLaunchFailed
from browserfleet.sandbox import spec
from browserfleet.sandbox.box import KILL_TIMEOUT_S, Sandbox, memfd
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
from browserfleet.sandbox.residue import kill_uid, uid_processes
from browserfleet.sandbox.spec import HostSystem, SandboxLimits
from browserfleet.sandbox.uids import LeaseRecord, UidLease, UidLocks, UidRange

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    nice: int = 0  # added to the server's niceness for everything in a sandbox


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

    def sweep(
        self,
        root: Path,
        keep: frozenset[int],
        keep_files: frozenset[Path] = frozenset(),
        *,
        remove_workdirs: bool = False,
    ) -> int:
        """Remove what dead runs left: every uid of the range that nobody holds is cleaned (its
        processes, cgroups and mounts), then sandbox mounts under root that no live holder
        recorded. `keep` is not needed: a live browser's uid is locked by its server. The
        workdirs in keep_files stay mounted: a dead session's end reads them, then removes
        them. With `remove_workdirs` (a host with no database to say whose they are: a cluster
        node), a dead holder's recorded workdir under root is deleted too."""
        keep_files = frozenset(keep_files) | {path.resolve() for path in keep_files}
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
                killed += 1 if self._clean(lease, keep_files) else 0
                if remove_workdirs:
                    _remove_recorded_workdir(lease.previous, root)
            finally:
                lease.release()
        for path in sandbox_mounts(current_mounts(), root):
            if path not in held and path not in keep_files:
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

    def _clean(self, lease: UidLease, keep_files: frozenset[Path] = frozenset()) -> bool:
        """Remove whatever an earlier holder of this uid left (but the mounts of keep_files);
        True if processes were killed."""
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
            if path in ours and path not in keep_files:
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
                fds.append((path, memfd(path.name, content)))
        except BaseException:
            for _, fd in fds:
                os.close(fd)
            raise
        return fds

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)


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


def _remove_recorded_workdir(record: LeaseRecord | None, root: Path) -> None:
    """A dead holder's workdir, if it lies directly under root (its mounts already gone)."""
    if record is None:
        return
    workdir = Path(record.workdir)
    if workdir.parent.resolve() == root.resolve() and workdir.is_dir():
        log.warning("removing a dead sandbox's workdir %s", workdir)
        unmount_all(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


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
