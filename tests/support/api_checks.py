"""Assertions on API answers shared by the ASGI and the end-to-end tests."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

# A plain decimal string: digits with at most one point, no exponent.
DECIMAL_RE = re.compile(r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def assert_validation_error(resp: Any, *loc_parts: str) -> list[dict[str, Any]]:
    """FastAPI's list form: {"detail": [{"type", "loc", "msg", "input"?...}]} naming the field."""
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail, resp.text
    for item in detail:
        assert {"type", "loc", "msg"} <= set(item), item
        assert isinstance(item["loc"], list) and isinstance(item["msg"], str)
    if loc_parts:
        locs = [[str(p) for p in item["loc"]] for item in detail]
        assert any(
            all(any(p in (part, camel(part)) for p in loc) for part in loc_parts) for loc in locs
        ), f"no error located at {loc_parts}: {locs}"
    return detail


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp without offset: {value}"
    return parsed


def money(value: object) -> Decimal:
    assert isinstance(value, str) and DECIMAL_RE.match(value), f"not a decimal string: {value!r}"
    assert "e" not in value.lower()
    return Decimal(value)


def cost6(value: object) -> Decimal:
    return money(value).quantize(Decimal("0.000001"))
