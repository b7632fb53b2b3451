"""The sandbox uid range and the record a uid's holder leaves (pure)."""

from __future__ import annotations

import pytest

from browserfleet.sandbox.uids import LeaseRecord, UidRange


def test_a_range_holds_count_uids_from_first() -> None:
    uids = UidRange(1879048192, 4)
    assert list(uids) == [1879048192, 1879048193, 1879048194, 1879048195]
    assert len(uids) == 4
    assert uids.last == 1879048195
    assert 1879048195 in uids and 1879048196 not in uids and 1879048191 not in uids
    assert "1879048192" not in uids
    assert str(uids) == "1879048192-1879048195"


@pytest.mark.parametrize(
    ("first", "count"),
    [(1000, 10), (65535, 1), (2**31 - 2, 3), (100000, 0)],
    ids=["user-range", "nobody", "past-2^31", "empty"],
)
def test_a_range_must_avoid_users_and_stay_below_2_to_the_31(first: int, count: int) -> None:
    with pytest.raises(ValueError, match="uid"):
        UidRange(first, count)


def test_the_highest_allowed_range_ends_at_2_to_the_31_minus_1() -> None:
    assert UidRange(2**31 - 2, 1).last == 2**31 - 2
    assert UidRange(65536, 1).first == 65536


def test_a_record_survives_json() -> None:
    record = LeaseRecord("/data/sessions/x", "/run/browserfleet/boxes/7", ("/cg/a", "/cg/b"))
    assert LeaseRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b'{"workdir": "/x"}', b'{"workdir": "/x", "staging": "/y", "cgroups": [1]}'],
)
def test_an_empty_or_broken_record_is_none(raw: bytes) -> None:
    assert LeaseRecord.from_json(raw) is None
