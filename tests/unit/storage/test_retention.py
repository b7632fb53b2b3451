"""Which blobs the retention sweep deletes: a pure choice on their age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from browserfleet.storage.model import BlobInfo
from browserfleet.storage.retention import expired

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def blob(key: str, age: timedelta) -> BlobInfo:
    return BlobInfo(key, 10, NOW - age, f"etag-{key}")


def test_only_what_is_at_least_max_age_old_expires() -> None:
    items = [
        blob("just-now", timedelta(0)),
        blob("six-days", timedelta(days=6, hours=23, minutes=59, seconds=59)),
        blob("exactly-a-week", WEEK),
        blob("a-month", timedelta(days=30)),
    ]
    assert [b.key for b in expired(items, now=NOW, max_age=WEEK)] == ["exactly-a-week", "a-month"]


def test_a_zero_age_expires_everything_written_until_now() -> None:
    items = [blob("past", timedelta(seconds=1)), blob("future", timedelta(seconds=-5))]
    assert [b.key for b in expired(items, now=NOW, max_age=timedelta(0))] == ["past"]


def test_a_negative_age_is_refused() -> None:
    with pytest.raises(ValueError):
        expired([], now=NOW, max_age=timedelta(seconds=-1))
