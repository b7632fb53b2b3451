"""Which uid of the configured range a sandbox runs as: one lock file per uid, held for the
sandbox's life.

flock(2) locks belong to an open file: several servers on one host never share a uid, and a
server that dies (even by SIGKILL) lets go of its uids with its last file descriptor. The lock
file also records what its holder built (workdir, cgroups), so whoever takes the uid next can
remove what a dead holder left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Sandbox uids stay out of the 16-bit range (system and regular users, nobody) and below 2^31
# (some tools and syscalls treat larger uids as negative).
LOWEST_UID = 65536
HIGHEST_UID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class UidRange:
    first: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("the sandbox uid range needs at least one uid")
        if self.first < LOWEST_UID or self.last > HIGHEST_UID:
            raise ValueError(
                f"sandbox uids must lie in {LOWEST_UID}..{HIGHEST_UID}, "
                f"not {self.first}..{self.last}"
            )

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.first <= uid <= self.last

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first, self.last + 1))

    def __len__(self) -> int:
        return self.count

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What a uid's holder built on the host, written before it builds it."""

    workdir: str
    staging: str
    cgroups: tuple[str, ...]

    def to_json(self) -> bytes:
        data = {"workdir": self.workdir, "staging": self.staging, "cgroups": list(self.cgroups)}
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LeaseRecord | None:
        """The record, or None for an empty or unreadable one."""
        try:
            data = json.loads(raw)
            record = cls(str(data["workdir"]), str(data["staging"]), tuple(data["cgroups"]))
        except (ValueError, KeyError, TypeError):
            return None
        return record if all(isinstance(c, str) for c in record.cgroups) else None


class UidLease:
    """One uid, held until release() (or until this process dies)."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd
        self.previous = LeaseRecord.from_json(_read_all(fd))

    def record(self, record: LeaseRecord) -> None:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, record.to_json(), 0)

    def release(self) -> None:
        """Everything the record names is gone: forget it and let the uid go."""
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = -1


class UidLocks:
    def __init__(self, directory: Path, uids: UidRange) -> None:
        self._directory = directory
        self._uids = uids
        self._cursor = 0
        self._lock = threading.Lock()

    @property
    def uids(self) -> UidRange:
        return self._uids

    def prepare(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def acquire(self) -> UidLease | None:
        """A free uid of the range, taking turns so a uid rests between two sandboxes; None
        when every uid is held."""
        with self._lock:
            start = self._cursor
            self._cursor = (self._cursor + 1) % self._uids.count
        for offset in range(self._uids.count):
            uid = self._uids.first + (start + offset) % self._uids.count
            lease = self.try_acquire(uid)
            if lease is not None:
                with self._lock:
                    self._cursor = (uid - self._uids.first + 1) % self._uids.count
                return lease
        return None

    def try_acquire(self, uid: int) -> UidLease | None:
        if uid not in self._uids:
            raise ValueError(f"uid {uid} is not in the sandbox range {self._uids}")
        path = self._directory / f"{uid}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return UidLease(uid, fd)

    def held(self, uid: int) -> bool:
        """Whether a live process holds uid now (its record is left untouched)."""
        path = self._directory / f"{uid}.lock"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the lock just taken
        return False

    def recorded(self) -> list[int]:
        """Uids with a lock file: held now, or held once and maybe left dirty."""
        found = []
        for entry in self._directory.glob("*.lock"):
            with contextlib.suppress(ValueError):
                uid = int(entry.stem)
                if uid in self._uids:
                    found.append(uid)
        return sorted(found)


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
