"""What sandboxes leave on a host if nobody cleans up: processes of the uid range, workdir
mounts, cgroups. The server removes a dead run's residue at start; the leak checks of the test
suite and of CI, and `browserfleet leftovers`, look for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from browserfleet.sandbox.mounts import MountEntry, current_mounts, mount_uid, sandbox_mounts

POLL_S = 0.01
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Residue:
    processes: dict[int, int] = field(default_factory=dict)  # pid -> uid
    mounts: dict[Path, int] = field(default_factory=dict)  # mount point -> uid
    cgroups: dict[Path, int] = field(default_factory=dict)  # cgroup directory -> uid

    def __bool__(self) -> bool:
        return bool(self.processes or self.mounts or self.cgroups)

    def without(self, uids: Collection[int]) -> Residue:
        """This residue but what belongs to these uids."""
        return Residue(
            {pid: uid for pid, uid in self.processes.items() if uid not in uids},
            {path: uid for path, uid in self.mounts.items() if uid not in uids},
            {path: uid for path, uid in self.cgroups.items() if uid not in uids},
        )

    def uids(self) -> set[int]:
        return {*self.processes.values(), *self.mounts.values(), *self.cgroups.values()}

    def lines(self) -> list[str]:
        found = [
            f"process {pid} of sandbox uid {uid}: {_cmdline(pid)}"
            for pid, uid in sorted(self.processes.items())
        ]
        found += [f"sandbox mount {path}" for path in self.mounts]
        found += [f"sandbox cgroup {path}" for path in self.cgroups]
        return found


def find_residue(uids: Collection[int]) -> Residue:
    """Live processes of the uids, sandbox mounts made for them, and cgroups named after them."""
    entries = current_mounts()
    by_target = {entry.target: mount_uid(entry) for entry in entries}
    mounts = {path: by_target[path] or 0 for path in sandbox_mounts(entries, uids=uids)}
    cgroups = {path: int(path.name[4:]) for path in uid_cgroups(uids)}
    return Residue(uid_processes(uids), mounts, cgroups)


def uid_processes(uids: Collection[int]) -> dict[int, int]:
    """pid -> real uid of every live (not zombie) process whose real uid is in uids."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        uid, state = _status(int(entry.name))
        if uid is not None and uid in uids and state != "Z":
            found[int(entry.name)] = uid
    return found


def _status(pid: int) -> tuple[int | None, str]:
    uid: int | None = None
    state = ""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("State:"):
                    state = line.split()[1]
                elif line.startswith("Uid:"):
                    uid = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        return None, ""
    return uid, state


def kill_uid(uid: int, timeout_s: float) -> int:
    """SIGKILL every process of uid until none is left; returns how many were found at first.
    Raises TimeoutError if one survives (it cannot: it only means a wedged system)."""
    first = uid_processes({uid})
    deadline = time.monotonic() + timeout_s
    pids = first
    while pids:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {sorted(pids)} of uid {uid} survived SIGKILL")
        time.sleep(POLL_S)
        pids = uid_processes({uid})
    return len(first)


def uid_cgroups(uids: Collection[int], roots: Iterable[Path] | None = None) -> list[Path]:
    """Cgroup directories named uid-N for N in uids, in any mounted hierarchy."""
    found: list[Path] = []
    for root in roots if roots is not None else cgroup_roots(current_mounts()):
        for directory, subdirs, _files in os.walk(root):
            found += [Path(directory) / name for name in subdirs if _uid_in(name, uids)]
    return found


def cgroup_roots(mounts: Iterable[MountEntry]) -> list[Path]:
    return [m.target for m in mounts if m.fstype in ("cgroup", "cgroup2")]


def _uid_in(name: str, uids: Collection[int]) -> bool:
    number = name.removeprefix("uid-")
    return number.isdigit() and int(number) in uids


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read(300).replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
