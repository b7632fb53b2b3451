"""The host-side mounts of a sandbox: its workdir's size-capped tmpfs and the bind bubblewrap
reads it from. Every such mount has the source name "browserfleet", so whatever a crashed run
left is found in /proc/self/mountinfo wherever it lies.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

MOUNT_SOURCE = "browserfleet"
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8
MOUNTINFO = Path("/proc/self/mountinfo")

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class MountEntry:
    target: Path
    fstype: str
    source: str
    super_options: str = ""
    root: str = "/"  # the part of the filesystem mounted there


def tmpfs_options(*, size: int, inodes: int, uid: int, gid: int) -> str:
    """mount(2) data for a session workdir: owned by the sandbox's uid, closed to others."""
    return f"size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={gid}"


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Mount points, filesystem types and sources of /proc/<pid>/mountinfo (proc(5))."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-")
        except ValueError:
            continue
        if len(fields) < separator + 3 or len(fields) < 5:
            continue
        target = Path(_unescape(fields[4]))
        fstype, source = fields[separator + 1], _unescape(fields[separator + 2])
        options = fields[separator + 3] if len(fields) > separator + 3 else ""
        entries.append(MountEntry(target, fstype, source, options, _unescape(fields[3])))
    return entries


def _unescape(field: str) -> str:
    # Spaces, tabs, newlines and backslashes in paths appear as \ooo octal escapes.
    out, i = [], 0
    while i < len(field):
        digits = field[i + 1 : i + 4]
        if field[i] == "\\" and len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def sandbox_mounts(
    entries: list[MountEntry], under: Path | None = None, uids: Collection[int] | None = None
) -> list[Path]:
    """Mount points of sandbox workdirs (and their binds), deepest first, optionally only those
    under a directory, or only those owned by one of some uids."""
    found = {
        e.target
        for e in entries
        if e.source == MOUNT_SOURCE
        and (under is None or e.target == under or e.target.is_relative_to(under))
        and (uids is None or mount_uid(e) in uids)
    }
    return sorted(found, key=lambda p: (-len(p.parts), str(p)))


def mount_uid(entry: MountEntry) -> int | None:
    """The uid a tmpfs was mounted for (its uid= option)."""
    for option in entry.super_options.split(","):
        if option.startswith("uid=") and option[4:].isdigit():
            return int(option[4:])
    return None


def current_mounts() -> list[MountEntry]:
    return parse_mountinfo(MOUNTINFO.read_text())


def mount_tmpfs(target: Path, options: str) -> None:
    """A tmpfs nothing can be run from (the session's files are data: a tenant that drops a
    binary there cannot exec or mmap it executable)."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    _call(
        _libc.mount(MOUNT_SOURCE.encode(), bytes(target), b"tmpfs", flags, options.encode()),
        f"mount tmpfs on {target}",
    )


def bind(source: Path, target: Path) -> None:
    _call(_libc.mount(bytes(source), bytes(target), None, MS_BIND, None), f"bind {source}")


def unmount(target: Path) -> bool:
    """Detach the mount at target (lazily: files still open keep it alive, unseen); False when
    nothing was mounted there."""
    if _libc.umount2(bytes(target), MNT_DETACH | UMOUNT_NOFOLLOW) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):
        return False
    raise OSError(code, f"umount {target}: {os.strerror(code)}")


def unmount_all(target: Path) -> int:
    """Unmount everything stacked at target; returns how many."""
    count = 0
    while unmount(target):
        count += 1
    return count


def _call(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
