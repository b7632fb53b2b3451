"""Workdir tmpfs mounts for real: the size cap holds, binds share it, unmounting forgets it."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from browserfleet.sandbox.mounts import (
    bind,
    current_mounts,
    mount_tmpfs,
    sandbox_mounts,
    tmpfs_options,
    unmount,
    unmount_all,
)

MIB = 1024 * 1024


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "work"
    path.mkdir()
    yield path
    unmount_all(path)


def test_a_workdir_tmpfs_is_capped_owned_and_found_again(workdir: Path) -> None:
    mount_tmpfs(workdir, tmpfs_options(size=4 * MIB, inodes=64, uid=1879048300, gid=1879048300))
    assert sandbox_mounts(current_mounts(), workdir.parent) == [workdir]
    status = workdir.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (1879048300, 1879048300, 0o700)
    with pytest.raises(OSError) as full, open(workdir / "big", "wb") as big:
        for _ in range(8):
            big.write(b"\0" * MIB)
            big.flush()
            os.fsync(big.fileno())
    assert full.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as no_inodes:
        for index in range(100):
            (workdir / f"f{index}").touch()
    assert no_inodes.value.errno == errno.ENOSPC


def test_nothing_on_a_workdir_can_be_run(workdir: Path) -> None:
    mount_tmpfs(workdir, tmpfs_options(size=MIB, inodes=64, uid=0, gid=0))
    tool = workdir / "dropped"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    with pytest.raises(PermissionError):
        subprocess.run([str(tool)], check=False)
    assert is_noexec(workdir)


def is_noexec(target: Path) -> bool:
    """The mount's own flags (the 6th field of mountinfo)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if Path(fields[4]) == target:
            return "noexec" in fields[5].split(",")
    return False


def test_a_bind_shows_the_same_files_and_both_unmount(workdir: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    mount_tmpfs(workdir, tmpfs_options(size=MIB, inodes=64, uid=0, gid=0))
    bind(workdir, staging)
    try:
        (workdir / "note").write_text("same tmpfs")
        assert (staging / "note").read_text() == "same tmpfs"
        assert set(sandbox_mounts(current_mounts(), tmp_path)) == {workdir, staging}
    finally:
        assert unmount_all(staging) == 1
    assert unmount(workdir)
    assert not (workdir / "note").exists(), "the files went with the tmpfs"
    assert sandbox_mounts(current_mounts(), tmp_path) == []


def test_unmounting_a_plain_directory_is_a_no_op(tmp_path: Path) -> None:
    assert unmount(tmp_path) is False
    assert unmount_all(tmp_path / "missing") == 0
