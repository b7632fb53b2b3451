"""Per-sandbox cgroups: the memory and process caps, and the one list of a sandbox's processes
that no process inside can leave (the cgroup files belong to root).

cgroup v1 (separate memory and pids hierarchies) and v2 (one unified hierarchy) are both
supported. By default sandboxes live under the server's own cgroup, in "browserfleet/uid-N":
their usage counts towards the server's service, and on cgroup v2 that subtree is what systemd
delegates (Delegate=yes) or a container owns. The pure half (planning, limit values, event
counters) is apart from the half that writes cgroupfs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from browserfleet.sandbox.mounts import MountEntry
from browserfleet.sandbox.spec import SandboxLimits

log = logging.getLogger(__name__)

GROUP_DIR = "browserfleet"
# v2: with controllers on, a cgroup may not hold processes itself ("no internal processes"):
# whatever ran in the delegated cgroup moves here first.
SERVER_LEAF = "server"
CONTROLLERS = ("memory", "pids")
POLL_S = 0.005


class CgroupUnavailable(Exception):
    """The host has no usable memory and pids cgroups for sandboxes."""


@dataclass(frozen=True, slots=True)
class CgroupPlan:
    """Where sandboxes' cgroups go: the parent directory for each controller (one for both on
    cgroup v2)."""

    version: int
    memory_parent: Path
    pids_parent: Path

    @property
    def parents(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys((self.memory_parent, self.pids_parent)))

    def leaves(self, uid: int) -> tuple[Path, ...]:
        return tuple(parent / leaf_name(uid) for parent in self.parents)


def leaf_name(uid: int) -> str:
    return f"uid-{uid}"


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup as {controller: path}; the cgroup v2 path is under the key ""."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        names = parts[1].split(",") if parts[1] else [""]
        for name in names:
            own[name] = parts[2]
    return own


def plan_cgroups(
    mounts: Iterable[MountEntry], own: Mapping[str, str], parent: str | None = None
) -> CgroupPlan:
    """Where this process's sandboxes' cgroups go. `parent`: a cgroup path (the same in each
    hierarchy) instead of "<our own cgroup>/browserfleet". cgroup v1 memory and pids
    hierarchies are preferred when both are mounted; otherwise the cgroup v2 hierarchy."""
    v1: dict[str, MountEntry] = {}
    v2: MountEntry | None = None
    for entry in mounts:
        if entry.fstype == "cgroup":
            for name in entry.super_options.split(","):
                if name in CONTROLLERS:
                    v1.setdefault(name, entry)
        elif entry.fstype == "cgroup2" and v2 is None:
            v2 = entry
    if all(name in v1 for name in CONTROLLERS):
        memory = _group_dir(v1["memory"], own.get("memory", "/"), parent)
        pids = _group_dir(v1["pids"], own.get("pids", "/"), parent)
        return CgroupPlan(1, memory, pids)
    if v2 is not None:
        directory = _group_dir(v2, own.get("", "/"), parent)
        return CgroupPlan(2, directory, directory)
    raise CgroupUnavailable(
        "no cgroup hierarchy with the memory and pids controllers is mounted "
        "(neither cgroup v1 memory+pids nor cgroup2 under /sys/fs/cgroup)"
    )


def _group_dir(mount: MountEntry, own: str, parent: str | None) -> Path:
    path = PurePosixPath(parent) if parent is not None else PurePosixPath(own) / GROUP_DIR
    # A mount may show only a subtree (its root, e.g. a container's): paths are relative to it.
    relative = path.relative_to(mount.root) if path.is_relative_to(mount.root) else path
    return mount.target / str(relative).lstrip("/")


def limit_files(plan: CgroupPlan, limits: SandboxLimits, *, memsw: bool) -> list[tuple[str, str]]:
    """(file name, value) in the order to write them (v1: the memory limit before memsw). Each
    file lives in the leaf of its controller's hierarchy (memory.* / pids.*)."""
    memory = str(limits.memory_bytes)
    if plan.version == 1:
        files = [("memory.limit_in_bytes", memory)]
        if memsw:  # swap accounting on: memory plus swap may not exceed memory (no swap)
            files.append(("memory.memsw.limit_in_bytes", memory))
        return [*files, ("pids.max", str(limits.pids))]
    return [("memory.max", memory), ("memory.swap.max", "0"), ("pids.max", str(limits.pids))]


@dataclass(frozen=True, slots=True)
class CgroupEvents:
    """How often the caps refused something, from the kernel's counters."""

    oom_kills: int  # processes killed for going over the memory cap
    pids_refused: int  # forks/clones refused at the pids cap


def parse_flat_keyed(text: str) -> dict[str, int]:
    """'key value' lines (memory.events, pids.events, memory.oom_control) as a dict."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


class Cgroup:
    """One sandbox's cgroup (a leaf in each hierarchy)."""

    def __init__(self, plan: CgroupPlan, uid: int) -> None:
        self._plan = plan
        self.dirs = plan.leaves(uid)

    @property
    def memory_dir(self) -> Path:
        return self._plan.memory_parent / self.dirs[0].name

    @property
    def pids_dir(self) -> Path:
        return self._plan.pids_parent / self.dirs[0].name

    def create(self, limits: SandboxLimits | None) -> None:
        """Make the leaves and write the caps (None: no caps, for hosts without controllers).
        A parent another server removed at its shutdown (it was empty then) is made again."""
        for attempt in range(3):
            try:
                for directory in self.dirs:
                    directory.mkdir(mode=0o755, exist_ok=True)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
                CgroupTree(self._plan).prepare(CONTROLLERS if limits is not None else ())
        if limits is None:
            return
        memsw = (self.memory_dir / "memory.memsw.limit_in_bytes").exists()
        for name, value in limit_files(self._plan, limits, memsw=memsw):
            folder = self.memory_dir if name.startswith("memory.") else self.pids_dir
            (folder / name).write_text(value)

    def open_procs(self) -> list[int]:
        """Write-only fds of each leaf's cgroup.procs: a child writes "0" to them to join."""
        fds: list[int] = []
        try:
            for directory in self.dirs:
                fds.append(os.open(directory / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def pids(self) -> set[int]:
        return _pids(self.dirs)

    def kill(self) -> None:
        """SIGKILL everything inside (cgroup.kill on v2, one by one on v1)."""
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                (directory / "cgroup.kill").write_text("1")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout_s: float) -> bool:
        """Kill what is inside, wait until it is empty and delete the leaves; False if a
        process outlived the timeout (the leaves stay)."""
        return remove_dirs(self.dirs, timeout_s)

    def events(self) -> CgroupEvents:
        if self._plan.version == 1:
            oom = _read_keyed(self.memory_dir / "memory.oom_control")
        else:
            oom = _read_keyed(self.memory_dir / "memory.events")
        pids = _read_keyed(self.pids_dir / "pids.events")
        return CgroupEvents(oom.get("oom_kill", 0), pids.get("max", 0))

    def memory_peak(self) -> int:
        name = "memory.max_usage_in_bytes" if self._plan.version == 1 else "memory.peak"
        return _read_int(self.memory_dir / name)


class CgroupTree:
    """The parent cgroup(s) of this server's sandboxes."""

    def __init__(self, plan: CgroupPlan) -> None:
        self.plan = plan

    def prepare(self, controllers: tuple[str, ...] = CONTROLLERS) -> None:
        """Create the parents; on cgroup v2 also enable `controllers` down to them (moving
        this cgroup's own processes into a leaf first when the kernel demands it)."""
        for parent in self.plan.parents:
            if self.plan.version == 2:
                _delegate(parent, controllers)
            else:
                parent.mkdir(parents=True, exist_ok=True, mode=0o755)

    def leaf(self, uid: int) -> Cgroup:
        return Cgroup(self.plan, uid)

    def leaves(self) -> list[Path]:
        """Leaves present now (a live or a crashed sandbox's)."""
        found: list[Path] = []
        for parent in self.plan.parents:
            with contextlib.suppress(FileNotFoundError):
                found += [p for p in parent.iterdir() if p.is_dir() and p.name.startswith("uid-")]
        return found

    def remove_parents(self) -> None:
        """Best effort at shutdown: parents still in use (another server) stay."""
        for parent in self.plan.parents:
            with contextlib.suppress(OSError):
                parent.rmdir()


def _delegate(parent: Path, controllers: tuple[str, ...]) -> None:
    """Make `parent` exist with `controllers` on for its children (cgroup v2): from the nearest
    ancestor that has them, each directory down to parent enables them for the next."""
    chain = [parent]
    while not _has_controllers(chain[-1], controllers):
        above = chain[-1].parent
        if not (above / "cgroup.controllers").exists():  # chain[-1] is the hierarchy's root
            available = _available(chain[-1])
            absent = [c for c in controllers if c not in available]
            raise CgroupUnavailable(
                f"cgroup v2 at {chain[-1]} lacks the {', '.join(absent)} controller(s): "
                "delegate them (systemd: Delegate=yes) or enable them in cgroup.subtree_control"
            )
        chain.append(above)
    for directory in reversed(chain):
        directory.mkdir(mode=0o755, exist_ok=True)
        enable_controllers(directory, controllers)


def _has_controllers(directory: Path, controllers: tuple[str, ...]) -> bool:
    return directory.is_dir() and all(c in _available(directory) for c in controllers)


def _available(directory: Path) -> set[str]:
    try:
        return set((directory / "cgroup.controllers").read_text().split())
    except FileNotFoundError:
        return set()


def enable_controllers(directory: Path, controllers: tuple[str, ...]) -> None:
    """Turn on `controllers` for the children of a cgroup v2 directory."""
    wanted = [c for c in controllers if c not in _enabled(directory)]
    if not wanted:
        return
    change = " ".join(f"+{c}" for c in wanted)
    try:
        (directory / "cgroup.subtree_control").write_text(change)
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise
        evacuate(directory)
        (directory / "cgroup.subtree_control").write_text(change)


def _enabled(directory: Path) -> set[str]:
    return set((directory / "cgroup.subtree_control").read_text().split())


def evacuate(directory: Path) -> None:
    """Move every process of a cgroup v2 directory into its SERVER_LEAF child."""
    leaf = directory / SERVER_LEAF
    leaf.mkdir(mode=0o755, exist_ok=True)
    moved = 0
    for pid in (directory / "cgroup.procs").read_text().split():
        with contextlib.suppress(ProcessLookupError, OSError):
            (leaf / "cgroup.procs").write_text(pid)
            moved += 1
    log.info("moved %d process(es) from %s into %s to enable controllers", moved, directory, leaf)


def remove_dirs(dirs: Iterable[Path], timeout_s: float) -> bool:
    """Kill every process in these cgroup directories, wait until they are empty and delete
    them; False if one outlived the timeout."""
    dirs = list(dirs)
    deadline = time.monotonic() + timeout_s
    while pids := _pids(dirs):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            log.error("processes %s outlived SIGKILL in %s", sorted(pids), dirs)
            return False
        time.sleep(POLL_S)
    return all(_rmdir(directory, deadline) for directory in dirs)


def _pids(dirs: Iterable[Path]) -> set[int]:
    found: set[int] = set()
    for directory in dirs:
        with contextlib.suppress(FileNotFoundError):
            found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
    return found


def _rmdir(directory: Path, deadline: float) -> bool:
    while True:
        try:
            directory.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                log.error("cannot remove cgroup %s: %s", directory, error)
                return False
        time.sleep(POLL_S)


def _read_keyed(path: Path) -> dict[str, int]:
    try:
        return parse_flat_keyed(path.read_text())
    except FileNotFoundError:
        return {}


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0
