"""The local store's listing: a directory tree walked in S3's key order, pruned by prefix and
cursor, so a page after a cursor costs the entries it returns, not the whole tree.

A directory's entries are sorted as the keys they lead to: a folder 'd' as 'd/'. Keys under it
all start with 'd/', so depth-first order is key order ('a-c' < 'a.x' < 'a/b', as in S3).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from browserfleet.storage.errors import InvalidBlobKey
from browserfleet.storage.keys import SEPARATOR, check_segment


def walk(root: Path, prefix: str, start_after: str | None) -> Iterator[tuple[str, os.stat_result]]:
    """(key, lstat) of every regular file under `root` whose key starts with `prefix` and sorts
    after `start_after`, in key order. Entries vanishing meanwhile are skipped."""
    head, _, _ = prefix.rpartition(SEPARATOR)
    base = head + SEPARATOR if head else ""
    yield from _walk_dir(root / head if head else root, base, prefix, start_after)


def _walk_dir(
    directory: Path, base: str, prefix: str, start_after: str | None
) -> Iterator[tuple[str, os.stat_result]]:
    for key, entry, is_dir in _sorted_entries(directory, base):
        if not (key.startswith(prefix) or prefix.startswith(key)):
            continue  # nothing below shares the prefix
        if is_dir:
            if start_after is None or start_after.startswith(key) or start_after < key:
                yield from _walk_dir(Path(entry.path), key, prefix, start_after)
            continue  # else every key below sorts before the cursor
        if start_after is not None and key <= start_after:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield key, info


def _sorted_entries(directory: Path, base: str) -> list[tuple[str, os.DirEntry[str], bool]]:
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        try:
            check_segment(entry.name)
            if entry.is_dir(follow_symlinks=False):
                found.append((base + entry.name + SEPARATOR, entry, True))
            elif entry.is_file(follow_symlinks=False):
                found.append((base + entry.name, entry, False))
        except (OSError, InvalidBlobKey):
            continue  # vanished, or a name no key can have (not ours): never listed
    found.sort(key=lambda item: item[0])
    return found
