"""A stored profile put in place before Chromium starts, and the launcher's preferences merged
into it rather than written over it.

The files come from a trusted filler (a profile archive unpacked by the storage package, which
writes plain files and folders only) into a directory of our own, and are handed to the browser's
user before any process of that user exists, so nothing can race the ownership change.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

# Chromium's own files that must never come from a stored profile: the DevTools port of an old
# run would be taken for the new browser's, and Singleton* locks would make it refuse to start.
_NEVER_SEEDED = ("DevToolsActivePort", "SingletonLock", "SingletonSocket", "SingletonCookie")
_MAX_PREFERENCES_BYTES = 16 * 1024 * 1024


def install_profile(profile: Path, fill: Callable[[Path], None], owner: int | None) -> None:
    """Replace the empty `profile` directory (and its empty Default) with what `fill` writes
    into a new sibling directory; everything is given to uid/gid `owner` when set. Blocking."""
    staging = profile.with_name(profile.name + ".seed")
    fill(staging)
    try:
        for name in _NEVER_SEEDED:
            with contextlib.suppress(FileNotFoundError):
                (staging / name).unlink()
        (staging / "Default").mkdir(mode=0o700, exist_ok=True)
        if owner is not None:
            _give(staging, owner)
        (profile / "Default").rmdir()
        profile.rmdir()
        staging.rename(profile)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _give(root: Path, owner: int) -> None:
    os.lchown(root, owner, owner)
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(directory, name), owner, owner)


def merged_preferences(path: Path, preferences: dict[str, object]) -> dict[str, object]:
    """The Preferences JSON already at `path` (a seeded profile's) with `preferences` laid over
    it, key by key at every depth; just `preferences` when there is no usable file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        return preferences
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_PREFERENCES_BYTES:
            return preferences
        try:
            existing = json.loads(file.read())
        except ValueError:
            return preferences
    if not isinstance(existing, dict):
        return preferences
    return _overlay(existing, preferences)


def _overlay(base: dict[str, object], top: dict[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _overlay(below, value)
        else:
            merged[key] = value
    return merged
