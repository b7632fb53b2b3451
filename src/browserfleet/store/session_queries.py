"""Filters for listing sessions: visibility, the wire status filter and metadata terms."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, select

from browserfleet.ids import ProjectId
from browserfleet.sessions.lifecycle import wire_status
from browserfleet.sessions.model import SessionQuery, SessionStatus
from browserfleet.store.tables import session_metadata, sessions

_S = SessionStatus
VISIBLE = frozenset(s for s in SessionStatus if s not in (_S.STARTING, _S.FAILED))
LIVE = frozenset((_S.STARTING, _S.ACTIVE, _S.STOPPING))


def values_of(statuses: Iterable[SessionStatus]) -> list[str]:
    return sorted(s.value for s in statuses)


def listed_statuses(status: SessionStatus | None) -> frozenset[SessionStatus]:
    """Visible statuses that match a filter as clients see it: ACTIVE also means STOPPING."""
    if status is None:
        return VISIBLE
    return frozenset(s for s in VISIBLE if wire_status(s) == wire_status(status))


def list_conditions(project_id: ProjectId, query: SessionQuery) -> list[ColumnElement[bool]]:
    return [
        sessions.c.project_id == project_id,
        sessions.c.status.in_(values_of(listed_statuses(query.status))),
        *(_has_metadata(key, value) for key, value in query.metadata_terms),
    ]


def _has_metadata(key: str, value: str | None) -> ColumnElement[bool]:
    """The session has `key` (with any value when `value` is None, else exactly `value`)."""
    term = and_(session_metadata.c.session_id == sessions.c.id, session_metadata.c.key == key)
    if value is not None:
        term = and_(term, session_metadata.c.value == value)
    return select(session_metadata.c.session_id).where(term).exists()
