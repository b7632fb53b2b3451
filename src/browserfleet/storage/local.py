"""The local-directory blob store (the default): ROOT/objects/<key>, written via ROOT/partial/.

A put copies (or moves) the file into partial/, fsyncs it and renames it into objects/: readers see
the old object or the new one, never part of one, and a crash leaves only a stale partial file
(removed an hour later by the next store on that directory). Keys map onto directories, so
unlike S3 a key cannot also be the folder of other keys ('a/b' and 'a/b/c'): such a put is
refused with InvalidBlobKey (browserfleet's own key layout never does this).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from browserfleet.storage.errors import BlobNotFound, InvalidBlobKey, UnsafeSource
from browserfleet.storage.fileio import (
    copy_fd,
    fsync_dir,
    open_regular,
    write_then_rename,
)
from browserfleet.storage.keys import check_folder, check_key, check_prefix
from browserfleet.storage.local_walk import walk
from browserfleet.storage.model import BlobAccess, BlobInfo, BlobPage, LocalFile, Usage
from browserfleet.storage.port import check_lifetime, check_limit
from browserfleet.storage.serving import serve_headers
from browserfleet.storage.threads import Offload

log = logging.getLogger(__name__)
OBJECTS = "objects"
PARTIAL = "partial"
STALE_PARTIAL_S = 3600.0
PUBLISH_ATTEMPTS = 5
DEFAULT_WORKERS = 4


class LocalBlobStore:
    """Blobs as files under one directory of this host."""

    def __init__(self, root: Path, *, workers: int = DEFAULT_WORKERS) -> None:
        self._root = root
        self._objects = root / OBJECTS
        self._partial = root / PARTIAL
        self._offload = Offload("blobs-local", workers)
        self._prepared = False

    def describe(self) -> str:
        return f"local directory {self._root}"

    async def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        check_key(key)
        return await self._offload.run(self._put, key, source, move)

    async def get_file(self, key: str, dest: Path) -> BlobInfo:
        check_key(key)
        return await self._offload.run(self._get, key, dest)

    async def stat(self, key: str) -> BlobInfo | None:
        check_key(key)
        return await self._offload.run(self._stat, key)

    async def list_page(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> BlobPage:
        check_prefix(prefix)
        check_limit(limit)
        return await self._offload.run(self._list, prefix, start_after, limit)

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._offload.run(self._delete, key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            check_key(key)
        await self._offload.run(self._delete_all, list(keys))

    async def delete_prefix(self, prefix: str) -> int:
        check_folder(prefix)
        return await self._offload.run(self._delete_folder, prefix)

    async def usage(self, prefix: str) -> Usage:
        check_prefix(prefix)
        return await self._offload.run(self._usage, prefix)

    async def access(
        self, key: str, *, expires_in: timedelta, download_name: str | None = None
    ) -> BlobAccess:
        check_key(key)
        check_lifetime(expires_in)
        info = await self.stat(key)
        if info is None:
            raise BlobNotFound(key)
        return LocalFile(self._objects / key, info, serve_headers(key, download_name))

    async def aclose(self) -> None:
        await self._offload.aclose()

    # ------------------------------------------------------------ blocking parts (worker threads)

    def _prepare(self) -> None:
        """Make the directories; once per store, drop partial files a crash left behind."""
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in (self._objects, self._partial):
            directory.mkdir(mode=0o700, exist_ok=True)
        if self._prepared:
            return
        self._prepared = True
        cutoff = time.time() - STALE_PARTIAL_S
        for entry in os.scandir(self._partial):
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    _remove(Path(entry.path))

    def _put(self, key: str, source: Path, move: bool) -> int:
        self._prepare()
        temp = self._partial / f"{uuid.uuid4().hex}.part"
        if move and self._take(source, temp):
            size = temp.stat().st_size
        else:
            size = self._copy_in(source, temp)
            if move:
                os.unlink(source)
        try:
            self._publish(temp, key)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        return size

    def _take(self, source: Path, temp: Path) -> bool:
        """Rename `source` into partial/ when it is a regular file with no other name on this
        filesystem; False when it must be copied instead (another filesystem, hard links)."""
        before = os.lstat(source)
        if not stat.S_ISREG(before.st_mode):
            raise UnsafeSource(f"{source} is not a regular file")
        if before.st_nlink > 1:
            return False  # another name could still write to this inode
        try:
            os.rename(source, temp)
        except OSError as error:
            if error.errno == errno.EXDEV:
                return False
            raise
        # Private from here on: whatever was renamed is what we check and keep.
        try:
            with open_regular(temp) as (fd, info):
                if info.st_nlink > 1:
                    raise UnsafeSource(f"{source} gained another name while being stored")
                os.fchmod(fd, 0o600)
                os.utime(fd)  # stored now, as S3 would date it
                os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.rename(temp, source)
            raise
        return True

    def _copy_in(self, source: Path, temp: Path) -> int:
        with open_regular(source) as (src, _):
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                size = copy_fd(src, fd)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                os.unlink(temp)
                raise
            os.close(fd)
        return size

    def _publish(self, temp: Path, key: str) -> None:
        """Rename the finished file to its key; retry if a concurrent delete pruned the folder."""
        final = self._objects / key
        for _ in range(PUBLISH_ATTEMPTS):
            try:
                final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.replace(temp, final)
            except FileNotFoundError:
                if not temp.exists():
                    raise
                continue  # the folder was removed between mkdir and rename
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
                raise InvalidBlobKey(
                    f"{key!r} clashes with another key (one would be the other's folder)"
                ) from error
            fsync_dir(final.parent)
            return
        raise OSError(errno.EAGAIN, f"could not publish {key!r}: its folder kept vanishing")

    def _get(self, key: str, dest: Path) -> BlobInfo:
        try:
            with open_regular(self._objects / key) as (src, info):
                write_then_rename(dest, lambda fd: _copy_exactly(src, fd, info.st_size, key))
                return _info(key, info)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, UnsafeSource) as error:
            raise BlobNotFound(key) from error

    def _stat(self, key: str) -> BlobInfo | None:
        try:
            info = os.stat(self._objects / key, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _info(key, info) if stat.S_ISREG(info.st_mode) else None

    def _list(self, prefix: str, start_after: str | None, limit: int) -> BlobPage:
        items: list[BlobInfo] = []
        for key, info in walk(self._objects, prefix, start_after):
            if len(items) == limit:
                return BlobPage(tuple(items), items[-1].key)
            items.append(_info(key, info))
        return BlobPage(tuple(items), None)

    def _delete(self, key: str) -> None:
        path = self._objects / key
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        self._prune(path.parent)

    def _delete_all(self, keys: list[str]) -> None:
        for key in keys:
            self._delete(key)

    def _delete_folder(self, prefix: str) -> int:
        """Move the folder aside in one rename (it vanishes at once), then remove it."""
        self._prepare()
        folder = self._objects / prefix.rstrip("/")
        trash = self._partial / f"{uuid.uuid4().hex}.deleted"
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return 0  # an object named like the folder is not under it
            os.rename(folder, trash)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        count = sum(1 for _ in walk(trash, "", None))
        shutil.rmtree(trash)
        self._prune(folder.parent)
        return count

    def _usage(self, prefix: str) -> Usage:
        objects = size = 0
        for _, info in walk(self._objects, prefix, None):
            objects += 1
            size += info.st_size
        return Usage(objects, size)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty folders up to objects/ (a concurrent put re-creates what it needs)."""
        while directory != self._objects and self._objects in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _copy_exactly(src: int, dst: int, size: int, key: str) -> None:
    copied = copy_fd(src, dst)
    if copied != size:  # objects are never written in place: this is outside interference
        raise OSError(errno.EIO, f"{key!r} changed size while being read")


def _info(key: str, info: os.stat_result) -> BlobInfo:
    modified = datetime.fromtimestamp(info.st_mtime_ns / 1e9, UTC)
    etag = f"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"
    return BlobInfo(key, info.st_size, modified, etag)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
