"""The headers a stored file is served with: one security table for both stores.

Downloads hold whatever a page made the browser save, and they are served from the API's own
origin (local store) or the bucket's (S3). A saved HTML or SVG file served as such would run its
scripts there, so only types a browser never executes are named; everything else is
`application/octet-stream`, which a browser saves instead of rendering. The API adds
`X-Content-Type-Options: nosniff` when it serves a file itself.
"""

from __future__ import annotations

from urllib.parse import quote

from browserfleet.storage.keys import SEPARATOR
from browserfleet.storage.model import ServeHeaders

OCTET_STREAM = "application/octet-stream"

# Longest suffix first wins (".tar.gz" before ".gz"); compared in lower case.
SAFE_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".tar.gz": "application/gzip",
    ".tgz": "application/gzip",
    ".gz": "application/gzip",
    ".tar.zst": "application/zstd",
    ".zst": "application/zstd",
    ".zip": "application/zip",
}
_BY_LENGTH = sorted(SAFE_TYPES.items(), key=lambda item: -len(item[0]))


def content_type(key: str) -> str:
    """The Content-Type for a key: a listed safe type, else application/octet-stream."""
    name = key.rsplit(SEPARATOR, 1)[-1].lower()
    return next((kind for suffix, kind in _BY_LENGTH if name.endswith(suffix)), OCTET_STREAM)


def serve_headers(key: str, download_name: str | None = None) -> ServeHeaders:
    """Headers for serving `key`; with a download name the browser saves it under that name."""
    disposition = attachment(download_name) if download_name is not None else None
    return ServeHeaders(content_type(key), disposition)


def attachment(filename: str) -> str:
    """`Content-Disposition: attachment` with an ASCII fallback name and the exact UTF-8 name."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in filename)
    exact = quote(filename, safe="", errors="replace")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"
