"""The BlobStore protocol: what profiles, recordings and downloads may ask of a store.

Keys are checked by keys.check_key (InvalidBlobKey otherwise); listings are in key order (UTF-8
byte order, as S3 lists). Every method is safe to call concurrently from many tasks; writes are
atomic: a reader sees the old object or the new one, never part of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from browserfleet.storage.model import BlobAccess, BlobInfo, BlobPage, Usage

MAX_PAGE = 1000  # S3 lists at most 1000 keys a request
MAX_LINK_LIFETIME = timedelta(days=7)  # the longest an S3 (SigV4) presigned URL can live


class BlobStore(Protocol):
    def describe(self) -> str:
        """Where blobs go, for logs and `doctor` (never credentials)."""
        ...

    async def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        """Store the regular file `source` under `key`, streamed, replacing any object there;
        return its size. `move=True` consumes `source` (renamed into place when possible): only
        for files nothing else can still write. UnsafeSource if `source` is not a regular file
        (symlinks are never followed)."""
        ...

    async def get_file(self, key: str, dest: Path) -> BlobInfo:
        """Write the object to `dest` (appearing complete or not at all). BlobNotFound."""
        ...

    async def stat(self, key: str) -> BlobInfo | None:
        """The object's size, age and etag, or None if there is none."""
        ...

    async def list_page(
        self, prefix: str, *, start_after: str | None = None, limit: int = MAX_PAGE
    ) -> BlobPage:
        """Up to `limit` (1..1000) objects whose key starts with `prefix`, in key order, after
        the key `start_after` when given."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object if there is one (deleting nothing is not an error)."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove every listed object that exists (in batches where the store allows)."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object under the folder `prefix` (it must end with '/'); return how
        many were removed."""
        ...

    async def usage(self, prefix: str) -> Usage:
        """How many objects, and how many bytes, are stored under `prefix`."""
        ...

    async def access(
        self, key: str, *, expires_in: timedelta, download_name: str | None = None
    ) -> BlobAccess:
        """How a client gets the object: a presigned URL valid for `expires_in` (at most 7 days)
        or a local file the API serves itself; with `download_name` the client's browser saves
        it under that name. BlobNotFound."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        ...


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}, not {limit}")
    return limit


def check_lifetime(expires_in: timedelta) -> timedelta:
    if not timedelta(0) < expires_in <= MAX_LINK_LIFETIME:
        raise ValueError(f"a link lives more than 0 s and at most {MAX_LINK_LIFETIME}")
    return expires_in
