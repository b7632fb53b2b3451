"""File operations both stores share: open only regular files, copy by descriptor, publish a
finished file under its final name in one rename. All blocking: call them from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from browserfleet.storage.errors import UnsafeSource

COPY_CHUNK = 8 * 1024 * 1024
# O_NONBLOCK: opening a FIFO for reading must not wait for a writer (it is refused just after).
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[tuple[int, os.stat_result]]:
    """A read descriptor of `path` and its fstat; UnsafeSource unless it is a regular file.

    The last component is never followed as a symlink, and the type is checked on the opened
    descriptor, so a file swapped for a symlink or a FIFO between a check and the open is refused.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeSource(f"{path} is a symlink") from error
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeSource(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        yield fd, info
    finally:
        os.close(fd)


def copy_fd(src: int, dst: int) -> int:
    """Copy from the current offset of `src` to its end into `dst`; return the bytes copied."""
    total = 0
    try:
        while sent := os.sendfile(dst, src, None, COPY_CHUNK):
            total += sent
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOSYS) or total:
            raise
        while chunk := os.read(src, COPY_CHUNK):
            os.write(dst, chunk)  # a regular file takes the whole chunk
            total += len(chunk)
    return total


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_then_rename(dest: Path, write: Callable[[int], None]) -> None:
    """Call write(fd) on a new temp file beside `dest`, then rename it to `dest`: `dest` appears
    complete or not at all, and a failure leaves nothing behind."""
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name[:64]}.", suffix=".part")
    try:
        try:
            write(fd)
        finally:
            os.close(fd)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
