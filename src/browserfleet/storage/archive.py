"""Pack a directory into a compressed tar and unpack one safely (a browser profile, for one).

Packing takes regular files only: symlinks are never followed, FIFOs, sockets and devices are
skipped, hard links become plain copies, owners and modes are dropped. The size limit is checked
on a first pass (nothing is written when it is over) and again while writing (files may grow).

Unpacking trusts nothing in the archive: it accepts plain files and folders only, with canonical
relative names (no '/' at the start, no '.', '..' or empty segments), each created new (O_EXCL)
inside a fresh target directory, with modes 0600/0700. It counts the decompressed stream itself,
so a compression bomb stops at the limit, and on any failure the target is removed whole.

Blocking: call from a worker thread (asyncio.to_thread). Measured on a Chromium profile in
benchmarks/profile_archive.py; the figures and the choice of default are in the README.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from browserfleet.storage.archive_format import ArchiveFormat
from browserfleet.storage.errors import (
    ArchiveError,
    ArchiveTooLarge,
    InvalidBlobKey,
    UnsafeArchive,
    UnsafeSource,
)
from browserfleet.storage.fileio import open_regular
from browserfleet.storage.keys import check_segment
from browserfleet.storage.selection import PathFilter

DEFAULT_FORMAT = ArchiveFormat.TAR_ZST
DEFAULT_LEVEL = {ArchiveFormat.TAR_GZ: 6, ArchiveFormat.TAR_ZST: 3}
CHUNK = 1024 * 1024
# Tar's own bytes around each member (header, padding, long-name records) allowed on top of the
# content when counting a decompressed stream.
MEMBER_OVERHEAD = 3 * 1024
STREAM_SLACK = 1024 * 1024
KEEP_ALL = PathFilter()


class _Stream(Protocol):
    """What tarfile needs of a (de)compressing stream."""

    def read(self, size: int, /) -> bytes: ...
    def write(self, data: bytes, /) -> object: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, /) -> object: ...
    def close(self) -> object: ...


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_bytes: int  # all file contents together, uncompressed
    max_files: int = 100_000


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    files: int
    content_bytes: int  # uncompressed
    archive_bytes: int  # compressed, as stored
    skipped: int = 0  # packing: symlinks, FIFOs, sockets, devices, unusable names


def pack(
    source: Path,
    dest: Path,
    *,
    limits: ArchiveLimits,
    select: PathFilter = KEEP_ALL,
    archive_format: ArchiveFormat = DEFAULT_FORMAT,
    level: int | None = None,
) -> ArchiveStats:
    """Write the selected regular files under `source` to the new archive `dest`.

    ArchiveTooLarge (and no `dest`) when their total size or count is over `limits`.
    """
    plan, skipped = _plan(source, select)
    _check_plan(plan, limits)
    compression = DEFAULT_LEVEL[archive_format] if level is None else level
    files = content = 0
    raw = dest.open("xb")  # refuses an existing file before anything of ours is in it
    try:
        with (
            raw,
            _compressor(raw, archive_format, compression) as stream,
            tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name in plan:
                added = _add(tar, source / name, name, limits.max_bytes - content)
                if added is None:
                    skipped += 1
                    continue
                files += 1
                content += added
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return ArchiveStats(files, content, dest.stat().st_size, skipped)


def unpack(archive: Path, dest: Path, *, limits: ArchiveLimits) -> ArchiveStats:
    """Extract `archive` into the directory `dest`, which must not exist yet.

    UnsafeArchive, ArchiveTooLarge or ArchiveError, with `dest` removed, when anything is wrong.
    """
    dest.mkdir(mode=0o700)
    try:
        with archive.open("rb") as raw:
            archive_format = ArchiveFormat.sniff(raw.read(8))
            if archive_format is None:
                raise ArchiveError(f"{archive.name} is neither a tar.gz nor a tar.zst archive")
            raw.seek(0)
            files, content = _extract(raw, archive_format, dest, limits)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return ArchiveStats(files, content, archive.stat().st_size)


# ---------------------------------------------------------------- packing


def _plan(source: Path, select: PathFilter) -> tuple[dict[str, int], int]:
    """Relative name -> size of every regular file to pack, in name order; and how many
    entries were skipped. Excluded folders are not entered, symlinks never followed."""
    plan: dict[str, int] = {}
    skipped = 0
    stack = [("", source)]
    while stack:
        base, directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name, reverse=True)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            name = base + entry.name
            try:
                check_segment(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    if not select.excluded(name):
                        stack.append((name + "/", Path(entry.path)))
                elif not entry.is_file(follow_symlinks=False):
                    skipped += 1
                elif select.keeps_file(name):
                    plan[name] = entry.stat(follow_symlinks=False).st_size
            except InvalidBlobKey:
                skipped += 1  # a name no archive member may have (control characters...)
            except FileNotFoundError:
                continue
    return dict(sorted(plan.items())), skipped


def _check_plan(plan: dict[str, int], limits: ArchiveLimits) -> None:
    if len(plan) > limits.max_files:
        raise ArchiveTooLarge(f"{len(plan)} files, over the limit of {limits.max_files}")
    total = sum(plan.values())
    if total > limits.max_bytes:
        raise ArchiveTooLarge(f"{total} bytes, over the limit of {limits.max_bytes}")


def _add(tar: tarfile.TarFile, path: Path, name: str, room: int) -> int | None:
    """Append one file as it is now; None if it vanished or stopped being a regular file."""
    try:
        with open_regular(path) as (fd, info):
            if info.st_size > room:
                raise ArchiveTooLarge(f"{name} grew past the size limit while packing")
            member = tarfile.TarInfo(name)
            member.size = info.st_size
            member.mtime = int(info.st_mtime)
            member.mode = 0o600
            with os.fdopen(os.dup(fd), "rb") as stream:
                tar.addfile(member, stream)
            return info.st_size
    except (FileNotFoundError, UnsafeSource):
        return None


@contextlib.contextmanager
def _compressor(raw: BinaryIO, archive_format: ArchiveFormat, level: int) -> Iterator[_Stream]:
    if archive_format is ArchiveFormat.TAR_GZ:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level, mtime=0) as gz:
            yield gz
        return
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with compressor.stream_writer(raw, closefd=False) as zst:
        yield zst


# ---------------------------------------------------------------- unpacking


def _extract(
    raw: BinaryIO, archive_format: ArchiveFormat, dest: Path, limits: ArchiveLimits
) -> tuple[int, int]:
    budget = limits.max_bytes + limits.max_files * MEMBER_OVERHEAD + STREAM_SLACK
    files = content = 0
    try:
        with _decompressor(raw, archive_format) as plain:
            counted = _Budget(plain, budget)
            with tarfile.open(fileobj=counted, mode="r|") as tar:
                for member in tar:
                    parts = _member_parts(member.name)
                    if member.isdir():
                        _make_dirs(dest, parts)
                        continue
                    if not member.isfile() or member.issparse():
                        raise UnsafeArchive(f"{member.name!r}: only files and folders allowed")
                    files += 1
                    content += member.size
                    if files > limits.max_files or content > limits.max_bytes:
                        raise ArchiveTooLarge(f"over the limits {limits} at {member.name!r}")
                    _write_member(tar, member, dest, parts)
            # tarfile stops at the end-of-archive blocks; reading on to the end of the
            # compressed stream is what checks its CRC (gzip) or checksum (zstd).
            while counted.read(CHUNK):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError) as error:
        raise ArchiveError(f"corrupt or truncated archive: {error}") from error
    return files, content


@contextlib.contextmanager
def _decompressor(raw: BinaryIO, archive_format: ArchiveFormat) -> Iterator[_Stream]:
    if archive_format is ArchiveFormat.TAR_GZ:
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            yield gz
        return
    with zstandard.ZstdDecompressor().stream_reader(raw, closefd=False) as zst:
        yield zst


def _member_parts(name: str) -> tuple[str, ...]:
    """The segments of a member name, refusing any that could leave the target."""
    if not name or name.startswith("/"):
        raise UnsafeArchive(f"member name {name!r} is not relative")
    try:
        return tuple(check_segment(part) for part in name.split("/"))
    except InvalidBlobKey as error:
        raise UnsafeArchive(f"member name {name!r}: {error}") from error


def _make_dirs(dest: Path, parts: tuple[str, ...]) -> Path:
    """Create the folders of `parts` under `dest` (all ours: made by this unpack, never links)."""
    directory = dest
    for part in parts:
        directory = directory / part
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            if directory.is_symlink() or not directory.is_dir():
                raise UnsafeArchive(f"{'/'.join(parts)!r} runs through a file") from None
    return directory


def _write_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, parts: tuple[str, ...]
) -> None:
    path = _make_dirs(dest, parts[:-1]) / parts[-1]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UnsafeArchive(f"{member.name!r} appears twice") from None
    try:
        source = tar.extractfile(member)
        if source is None:
            raise UnsafeArchive(f"{member.name!r} has no data")
        with os.fdopen(os.dup(fd), "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
        with contextlib.suppress(OverflowError, OSError, ValueError):
            os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)


class _Budget(io.RawIOBase):
    """A read-only stream that fails once more than `budget` bytes have been read through it."""

    def __init__(self, inner: _Stream, budget: int) -> None:
        super().__init__()
        self._inner = inner
        self._left = budget

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size if size >= 0 else CHUNK)
        self._left -= len(data)
        if self._left < 0:
            raise ArchiveTooLarge("the archive decompresses to more than its limits allow")
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
