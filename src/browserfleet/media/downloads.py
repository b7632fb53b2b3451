"""A session's downloads: listed from its downloads directory while it runs, from the store after.

The directory belongs to the tenant's browser, so it is read as hostile: only regular files
directly in it are listed (lstat, never following a link the tenant planted; directories,
FIFOs and sockets are skipped), and Chrome's unfinished `.crdownload` files are not listed as
complete, nor are bare GUIDs (Chrome's names for downloads not named yet: see
download_ledger). Names a blob key cannot hold (see storage.keys) are not listed either: they
could not be kept. Order is by name (UTF-8 bytes, as the store lists), and the cursor is the
last name of a page, base64url-encoded: opaque to clients, and the same on both sides of the stop.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from browserfleet.media.download_ledger import UNFINISHED_SUFFIX, is_guid, unique_name
from browserfleet.storage.errors import InvalidBlobKey
from browserfleet.storage.keys import check_segment


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    name: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class DownloadPage:
    files: tuple[DownloadedFile, ...]
    next_cursor: str | None


class InvalidCursor(ValueError):
    pass


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API handed out") from None
    if not name or not listable(name):
        raise InvalidCursor("the cursor is not one this API handed out")
    return name


def listable(name: str) -> bool:
    if name.endswith(UNFINISHED_SUFFIX) or is_guid(name):
        return False
    try:
        check_segment(name)
    except InvalidBlobKey:
        return False
    return True


def scan(directory: Path) -> list[DownloadedFile]:
    """Every finished regular file directly in `directory`, by name (blocking)."""
    found: list[DownloadedFile] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if not listable(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            modified = datetime.fromtimestamp(info.st_mtime, UTC)
            found.append(DownloadedFile(entry.name, info.st_size, modified))
    found.sort(key=lambda f: f.name.encode())
    return found


def page_of(files: list[DownloadedFile], *, after: str | None, limit: int) -> DownloadPage:
    """The page of `files` (sorted by name) after the name `after`."""
    start = [f for f in files if after is None or f.name.encode() > after.encode()]
    chosen = tuple(start[:limit])
    more = len(start) > limit
    return DownloadPage(chosen, encode_cursor(chosen[-1].name) if more and chosen else None)


def within_limit(files: list[DownloadedFile], max_total_bytes: int) -> list[DownloadedFile]:
    """The files kept at the end under the session's total size limit: by name, while they
    fit (a file that does not fit is skipped, later smaller ones may still be kept)."""
    kept, total = [], 0
    for file in files:
        if total + file.size <= max_total_bytes:
            kept.append(file)
            total += file.size
    return kept


def name_download(directory: Path, guid: str, name: str) -> str | None:
    """Give the complete download <guid> its name (blocking): a hard link under the first
    free variant of `name`, then the GUID unlinked, so no other file is ever replaced. None if
    there is no such regular file (the client saved it under its own name: "allow" of
    Page.setDownloadBehavior, or a context where Chrome's own rules apply)."""
    source = directory / guid
    try:
        if not stat.S_ISREG(os.lstat(source).st_mode):
            return None
    except FileNotFoundError:
        return None
    for _ in range(1000):
        chosen = unique_name(name, set(os.listdir(directory)))
        try:
            os.link(source, directory / chosen, follow_symlinks=False)
        except FileExistsError:
            continue  # taken meanwhile: choose again
        os.unlink(source)
        return chosen
    raise OSError(f"no free name for the download {name!r}")


def discard(path: Path) -> None:
    """Delete the regular file at `path`, if there is one (never what a link points to)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink()
