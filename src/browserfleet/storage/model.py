"""The values a blob store hands out: frozen, slotted, comparable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One stored object: its key (without the store's own prefix), size and age.

    `etag` changes whenever the content may have changed; HTTP serving can use it for
    `ETag`/`If-Range`. S3 gives its own; the local store derives one from inode, size and mtime.
    """

    key: str
    size: int
    last_modified: datetime  # timezone-aware, UTC
    etag: str


@dataclass(frozen=True, slots=True)
class BlobPage:
    """One page of a listing in key order; `next_start_after` is None on the last page."""

    items: tuple[BlobInfo, ...]
    next_start_after: str | None


@dataclass(frozen=True, slots=True)
class Usage:
    """What is stored under a prefix."""

    objects: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ServeHeaders:
    """The response headers a blob must be served with (the same for both stores)."""

    content_type: str
    content_disposition: str | None


@dataclass(frozen=True, slots=True)
class PresignedUrl:
    """A URL the client fetches from the object store itself, valid until `expires_at`.

    The store serves it with `headers` and answers range requests (206) on its own.
    """

    url: str
    expires_at: datetime
    info: BlobInfo
    headers: ServeHeaders


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A blob on this host's disk, for the API to serve itself (with range requests).

    The file is replaced atomically by a later put (its old content stays readable through an
    already open descriptor) and may vanish on delete: open it once, then serve from that fd.
    """

    path: Path
    info: BlobInfo
    headers: ServeHeaders


BlobAccess = PresignedUrl | LocalFile
