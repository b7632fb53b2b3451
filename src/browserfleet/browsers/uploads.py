"""Files a client uploads for its browser: safe names, and files that never replace another.

Names come from the client and are made safe here: the last path component only, no control or
separator characters, no dot-only names, at most 200 bytes of UTF-8; a name already taken gets
" (2)", " (3)"... before its extension, so an upload never overwrites a file or follows a link.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

MAX_NAME_BYTES = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_FALLBACK = "upload"


def safe_name(raw: str) -> str:
    """A file name that is one plain path component, whatever the client sent."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name:
        return _FALLBACK
    while len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension.encode()) < 20:
            name = f"{stem[:-1]}.{extension}"
        else:
            name = name[:-1]
    return name


def create_unique(directory: Path, name: str) -> tuple[Path, int]:
    """(path, open write descriptor) of a new file named `name` or `name (N)` in `directory`.
    O_EXCL|O_NOFOLLOW: an existing file or link is never opened, let alone truncated."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    for attempt in range(1, 10_000):
        candidate = name if attempt == 1 else f"{stem} ({attempt}){dot}{extension}"
        path = directory / candidate
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return path, os.open(path, flags, 0o644)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free name for {name!r}")
