"""Uid leases on real lock files: exclusive across processes, freed when a holder dies."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from browserfleet.sandbox.uids import LeaseRecord, UidLocks, UidRange

UIDS = UidRange(1879048192, 3)
RECORD = LeaseRecord("/data/sessions/x", "/run/browserfleet/boxes/1879048192", ("/cg/uid-1",))
# Another server: takes the uid's lock, writes its record, and holds on until killed.
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, sys.argv[2].encode())
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def locks(tmp_path: Path) -> UidLocks:
    found = UidLocks(tmp_path / "uids", UIDS)
    found.prepare()
    return found


@contextmanager
def holder(lock_file: Path, content: bytes) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_file), content.decode()], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"held\n"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_each_lease_gets_another_uid_until_none_is_left(locks: UidLocks) -> None:
    leases = [locks.acquire() for _ in range(3)]
    assert sorted(lease.uid for lease in leases if lease) == list(UIDS)
    assert locks.acquire() is None
    middle = leases[1]
    assert middle is not None
    middle.release()
    again = locks.acquire()
    assert again is not None and again.uid == middle.uid


def test_uids_take_turns(locks: UidLocks) -> None:
    first = locks.acquire()
    assert first is not None
    first.release()
    second = locks.acquire()
    assert second is not None and second.uid != first.uid


def test_a_uid_held_by_another_server_is_skipped(locks: UidLocks, tmp_path: Path) -> None:
    with holder(tmp_path / "uids" / f"{UIDS.first}.lock", RECORD.to_json()):
        assert locks.try_acquire(UIDS.first) is None
        taken = [locks.acquire(), locks.acquire()]
        assert sorted(t.uid for t in taken if t) == [UIDS.first + 1, UIDS.first + 2]
        assert locks.acquire() is None


def test_a_dead_holders_lock_is_free_and_its_record_left_for_the_heir(
    locks: UidLocks, tmp_path: Path
) -> None:
    with holder(tmp_path / "uids" / f"{UIDS.first}.lock", RECORD.to_json()) as process:
        process.kill()
        process.wait(timeout=10)
        heir = locks.try_acquire(UIDS.first)
    assert heir is not None and heir.previous == RECORD
    heir.release()  # it cleaned up: the record goes
    clean = locks.try_acquire(UIDS.first)
    assert clean is not None and clean.previous is None
    assert locks.recorded() == [UIDS.first]


def test_a_record_written_by_a_lease_reaches_the_next_one(locks: UidLocks) -> None:
    lease = locks.try_acquire(UIDS.last)
    assert lease is not None
    lease.record(RECORD)
    lease.record(LeaseRecord("/w", "/s", ()))  # rewritten, not appended
    assert (locks_file := Path(locks._directory / f"{UIDS.last}.lock")).exists()
    assert LeaseRecord.from_json(locks_file.read_bytes()) == LeaseRecord("/w", "/s", ())


def test_a_uid_outside_the_range_is_refused(locks: UidLocks) -> None:
    with pytest.raises(ValueError, match="not in the sandbox range"):
        locks.try_acquire(UIDS.last + 1)
