"""Pure money math for browser time (docs/api.md, "Billing").

Amounts are integer micro-dollars (1 USD = 1_000_000). A cost is computed exactly with Decimal
and rounded once, half up, to the micro-dollar; a refund is the difference of two rounded amounts,
so charge - refund always equals the reported cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

MICROS_PER_USD = 1_000_000
BROWSER_USD_PER_HOUR = Decimal("0.02")


@dataclass(frozen=True, slots=True)
class BrowserBill:
    upfront_micros: int
    billed_minutes: int
    cost_micros: int

    @property
    def refund_micros(self) -> int:
        return self.upfront_micros - self.cost_micros


def _minutes_to_micros(minutes: int, usd_per_hour: Decimal) -> int:
    exact = usd_per_hour * minutes / 60 * MICROS_PER_USD
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def upfront_micros(timeout_minutes: int, usd_per_hour: Decimal = BROWSER_USD_PER_HOUR) -> int:
    """The full charge taken when a session starts."""
    return _minutes_to_micros(timeout_minutes, usd_per_hour)


def billed_minutes(elapsed_seconds: float, timeout_minutes: int) -> int:
    """Round up to the minute, at least one, never past the timeout."""
    whole = max(1, math.ceil(max(0.0, elapsed_seconds) / 60))
    return min(timeout_minutes, whole)


def bill(
    started_at: datetime,
    ended_at: datetime,
    timeout_minutes: int,
    usd_per_hour: Decimal = BROWSER_USD_PER_HOUR,
) -> BrowserBill:
    """The browser bill of a session that ran from started_at to ended_at (or is still running)."""
    minutes = billed_minutes((ended_at - started_at).total_seconds(), timeout_minutes)
    return BrowserBill(
        upfront_micros=upfront_micros(timeout_minutes, usd_per_hour),
        billed_minutes=minutes,
        cost_micros=_minutes_to_micros(minutes, usd_per_hour),
    )


def egress_cost_micros(byte_count: int, micros_per_gb: int) -> int:
    """Traffic cost: bytes / 10^9 x the per-GB rate, rounded half up to the micro-dollar."""
    exact = Decimal(byte_count) * micros_per_gb / 1_000_000_000
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_USD


def format_usd(micros: int) -> str:
    """A plain decimal string for the wire: never exponent form, trailing zeros trimmed."""
    if micros == 0:
        return "0"
    text = format(micros_to_usd(micros).quantize(Decimal("0.000001")), "f")
    return text.rstrip("0").rstrip(".")


def format_megabytes(byte_count: int) -> str:
    """Bytes as MB (10^6 bytes), plain decimal string, up to 6 places."""
    if byte_count == 0:
        return "0"
    text = format((Decimal(byte_count) / 1_000_000).quantize(Decimal("0.000001")), "f")
    return text.rstrip("0").rstrip(".")


def usd_to_micros(usd: Decimal) -> int:
    return int((usd * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))
