"""Browser-time pricing against the contract's table (§6)."""

from datetime import UTC, datetime, timedelta

import pytest

from browserfleet.billing.pricing import (
    bill,
    billed_minutes,
    format_megabytes,
    format_usd,
    upfront_micros,
)

T0 = datetime(2026, 7, 15, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timeout", "elapsed", "upfront", "minutes", "cost", "refund"),
    [
        (60, timedelta(minutes=30), "0.02", 30, "0.01", "0.01"),
        (60, timedelta(seconds=10), "0.02", 1, "0.000333", "0.019667"),
        (60, timedelta(minutes=30, seconds=1), "0.02", 31, "0.010333", "0.009667"),
        (240, timedelta(minutes=61, seconds=1), "0.08", 62, "0.020667", "0.059333"),
        (15, timedelta(minutes=15), "0.005", 15, "0.005", "0"),
    ],
)
def test_contract_table(
    timeout: int, elapsed: timedelta, upfront: str, minutes: int, cost: str, refund: str
) -> None:
    result = bill(T0, T0 + elapsed, timeout)
    assert format_usd(result.upfront_micros) == upfront
    assert result.billed_minutes == minutes
    assert format_usd(result.cost_micros) == cost
    assert format_usd(result.refund_micros) == refund


def test_zero_elapsed_bills_one_minute() -> None:
    assert billed_minutes(0, 60) == 1


def test_negative_elapsed_bills_one_minute() -> None:
    assert billed_minutes(-5, 60) == 1


def test_exact_minute_is_not_rounded_up_further() -> None:
    assert billed_minutes(120, 60) == 2
    assert billed_minutes(120.001, 60) == 3


def test_never_bills_past_the_timeout() -> None:
    assert billed_minutes(10 * 3600, 60) == 60
    assert bill(T0, T0 + timedelta(hours=9), 60).refund_micros == 0


def test_charge_minus_refund_equals_cost_for_every_minute() -> None:
    for minute in range(1, 241):
        result = bill(T0, T0 + timedelta(minutes=minute), 240)
        assert result.upfront_micros - result.refund_micros == result.cost_micros
        assert result.refund_micros >= 0


def test_upfront_is_proportional_to_timeout() -> None:
    assert upfront_micros(60) == 20_000
    assert upfront_micros(240) == 80_000
    assert upfront_micros(1) == 333


@pytest.mark.parametrize(
    ("micros", "text"),
    [(0, "0"), (1, "0.000001"), (333, "0.000333"), (20_000, "0.02"), (12_340_000, "12.34")],
)
def test_usd_strings_are_plain_decimals(micros: int, text: str) -> None:
    assert format_usd(micros) == text
    assert "E" not in format_usd(micros)


@pytest.mark.parametrize(
    ("byte_count", "text"),
    [(0, "0"), (1, "0.000001"), (1_000_000, "1"), (5_242_880, "5.24288"), (10**12, "1000000")],
)
def test_megabytes_are_decimal_megabytes(byte_count: int, text: str) -> None:
    assert format_megabytes(byte_count) == text
