"""What a session's downloads are called and how much of its limit they use. Pure.

Chrome saves every download of a session under its GUID (the server sets the `allowAndName`
behavior, and the CDP gateway turns every client's `allow` into it): `<guid>.crdownload` while it
runs, `<guid>` once complete. The browser-level events (`Browser.downloadWillBegin` with the
suggested file name, `Browser.downloadProgress` with the bytes so far and the state) drive a
DownloadLedger, which answers what to do: give a finished file its real name, cancel a download
that would take the session past its total size limit, or discard a file that did.

Names come from the page (a `download` attribute, a `Content-Disposition` header, the URL), so
they are read as hostile: only the last path component is kept, control characters go, the name
is cut to what a file system and a blob key hold, and a name already taken gets " (1)", " (2)"...
before its extension, so no download ever replaces another. A bare GUID is never a real name:
the listing hides those (downloads in progress, or not yet named).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum

from browserfleet.storage.errors import InvalidBlobKey
from browserfleet.storage.keys import MAX_SEGMENT_BYTES, check_segment

FALLBACK_NAME = "download"
UNFINISHED_SUFFIX = ".crdownload"
# Room left in a name for " (NNN)" and the suffix Chrome adds while downloading.
_NAME_BYTES = MAX_SEGMENT_BYTES - len(UNFINISHED_SUFFIX) - 8
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_EXTENSION = 16


def is_guid(name: str) -> bool:
    """A name Chrome gave a download it has not been told to name (or that is not done)."""
    return _GUID.fullmatch(name) is not None


def safe_name(suggested: object) -> str:
    """A name for a downloaded file: one path segment, no controls, at most _NAME_BYTES."""
    text = suggested if isinstance(suggested, str) else ""
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = text.strip().strip(".").strip()
    if text.endswith(UNFINISHED_SUFFIX):
        text = text[: -len(UNFINISHED_SUFFIX)] + ".download"
    if is_guid(text.lower()):
        text += ".download"
    stem, dot, extension = text.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION:
        stem, extension = text, ""
    suffix = "." + extension if extension else ""
    stem = _cut(stem, _NAME_BYTES - len(suffix.encode()))
    name = (stem + suffix) if stem else FALLBACK_NAME + suffix
    try:
        return check_segment(name)
    except InvalidBlobKey:
        return FALLBACK_NAME


def unique_name(name: str, taken: Collection[str]) -> str:
    """`name`, or `stem (n).ext` with the smallest n that is not taken."""
    if name not in taken:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    suffix = "." + extension if extension else ""
    number = 1
    while (candidate := f"{stem} ({number}){suffix}") in taken:
        number += 1
    return candidate


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` of at most max_bytes in UTF-8 (never half a character)."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max(0, max_bytes)].decode(errors="ignore").rstrip()


class Step(StrEnum):
    NAME = "name"  # the file <guid> is complete: rename it to `name`
    CANCEL = "cancel"  # the download runs past the limit: cancel it (Browser.cancelDownload)
    DISCARD = "discard"  # the complete file <guid> took the session past its limit: delete it


@dataclass(frozen=True, slots=True)
class Action:
    step: Step
    guid: str
    name: str = ""


@dataclass(slots=True)
class _Download:
    name: str
    received: int = 0
    refused: bool = False  # cancelled, or to be discarded, for the limit
    done: bool = False


@dataclass(slots=True)
class DownloadLedger:
    """One session's downloads, from the browser's events; `max_total_bytes` counts every
    kept file plus what the downloads in progress have received."""

    max_total_bytes: int
    _downloads: dict[str, _Download] = field(default_factory=dict)
    _kept_bytes: int = 0
    over_limit: int = 0  # how many downloads the limit refused

    @property
    def kept_bytes(self) -> int:
        return self._kept_bytes

    def _in_flight(self) -> int:
        return sum(d.received for d in self._downloads.values() if not d.done and not d.refused)

    def begin(self, guid: object, suggested: object) -> list[Action]:
        if not isinstance(guid, str) or not is_guid(guid) or guid in self._downloads:
            return []
        download = _Download(safe_name(suggested))
        self._downloads[guid] = download
        if self._kept_bytes >= self.max_total_bytes:
            return self._refuse(guid, download, Step.CANCEL)
        return []

    def progress(self, guid: object, received: object, state: object) -> list[Action]:
        download = self._downloads.get(guid) if isinstance(guid, str) else None
        if download is None or download.done or not isinstance(guid, str):
            return []
        if isinstance(received, int) and received >= 0:
            download.received = received
        if state == "canceled":
            download.done = True
        if download.done or download.refused:
            return []
        over = self._kept_bytes + self._in_flight() > self.max_total_bytes
        if state == "completed":
            download.done = True
            if not over:
                self._kept_bytes += download.received
                return [Action(Step.NAME, guid, download.name)]
        if over:
            step = Step.DISCARD if download.done else Step.CANCEL
            return self._refuse(guid, download, step)
        return []

    def _refuse(self, guid: str, download: _Download, step: Step) -> list[Action]:
        download.refused = True
        self.over_limit += 1
        return [Action(step, guid, download.name)]
