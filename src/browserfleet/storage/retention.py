"""Retention: delete what is older than its keep time. The choice is pure (values in, keys out);
the sweep around it only lists and deletes, a page at a time.

An S3 lifecycle rule can do the same inside the bucket; this sweep works on every store and
follows the server's own setting (see the README on choosing between them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from browserfleet.storage.model import BlobInfo
from browserfleet.storage.port import MAX_PAGE, BlobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    examined: int
    deleted: int
    bytes_freed: int


def expired(items: Iterable[BlobInfo], *, now: datetime, max_age: timedelta) -> list[BlobInfo]:
    """The items last written at least `max_age` before `now`."""
    if max_age < timedelta(0):
        raise ValueError("max_age must not be negative")
    cutoff = now - max_age
    return [item for item in items if item.last_modified <= cutoff]


async def sweep(
    store: BlobStore, prefix: str, *, now: datetime, max_age: timedelta, page_size: int = MAX_PAGE
) -> SweepReport:
    """Delete every object under `prefix` older than `max_age` at `now`, a page at a time."""
    examined = deleted = freed = 0
    start_after: str | None = None
    while True:
        page = await store.list_page(prefix, start_after=start_after, limit=page_size)
        doomed = expired(page.items, now=now, max_age=max_age)
        if doomed:
            await store.delete_many([item.key for item in doomed])
        examined += len(page.items)
        deleted += len(doomed)
        freed += sum(item.size for item in doomed)
        if page.next_start_after is None:
            break
        start_after = page.next_start_after
    if deleted:
        log.info(
            "retention: deleted %d of %d objects under %r (%d bytes)",
            deleted,
            examined,
            prefix,
            freed,
        )
    return SweepReport(examined, deleted, freed)
