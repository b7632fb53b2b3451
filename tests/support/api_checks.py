"""Assertions on API answers shared by the ASGI and the end-to-end tests."""

from __future__ import annotations

from typing import Any


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
