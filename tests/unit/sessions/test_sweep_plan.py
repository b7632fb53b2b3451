"""The reaper's sweep decisions: which sessions stop, why, as of when, when to look again."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from browserfleet.ids import ProjectId, SessionId
from browserfleet.sessions.model import Session, SessionRequest, SessionStatus, StopReason
from browserfleet.sessions.reaper import STARTING_DEADLINE, plan_sweep

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PROJECT = ProjectId(uuid.uuid5(uuid.NAMESPACE_URL, "p"))


def sid(name: str) -> SessionId:
    """A session id derived from a readable name (equal names, equal ids)."""
    return SessionId(uuid.uuid5(uuid.NAMESPACE_URL, name))


def session(
    name: str,
    status: SessionStatus,
    timeout_in: timedelta,
    stop_reason: StopReason | None = None,
) -> Session:
    return Session(
        id=sid(name),
        project_id=PROJECT,
        status=status,
        token="t",
        request=SessionRequest(),
        created_at=NOW - timedelta(minutes=1),
        started_at=NOW - timedelta(minutes=1),
        timeout_at=NOW + timeout_in,
        upfront_micros=0,
        stop_reason=stop_reason,
    )


def test_expired_sessions_stop_as_of_their_timeout_not_of_the_sweep() -> None:
    late = session("late", SessionStatus.ACTIVE, -timedelta(seconds=3))
    plan = plan_sweep([late], NOW)
    assert plan.stops == ((late, StopReason.TIMEOUT, late.timeout_at),)
    assert plan.next_timeout is None


def test_a_timeout_exactly_now_is_due() -> None:
    due = session("due", SessionStatus.ACTIVE, timedelta(0))
    assert [s.id for s, _, _ in plan_sweep([due], NOW).stops] == [due.id]


def test_stops_asked_elsewhere_keep_their_reason() -> None:
    asked = session("asked", SessionStatus.STOPPING, timedelta(minutes=5), StopReason.USER)
    unknown = session("unknown", SessionStatus.STOPPING, timedelta(minutes=5))
    plan = plan_sweep([asked, unknown], NOW)
    assert plan.stops == (
        (asked, StopReason.USER, NOW),
        (unknown, StopReason.USER, NOW),
    )


def test_the_next_sweep_comes_at_the_earliest_timeout_to_come() -> None:
    sessions = [
        session("soon", SessionStatus.ACTIVE, timedelta(seconds=40)),
        session("later", SessionStatus.ACTIVE, timedelta(minutes=9)),
        session("starting", SessionStatus.STARTING, timedelta(seconds=5)),  # not running yet
        session("stopping", SessionStatus.STOPPING, timedelta(seconds=1)),
    ]
    plan = plan_sweep(sessions, NOW)
    assert plan.next_timeout == NOW + timedelta(seconds=40)
    assert [s.id for s, _, _ in plan.stops] == [sid("stopping")]


def test_nothing_live_means_nothing_to_do() -> None:
    assert plan_sweep([], NOW) == plan_sweep([], NOW + timedelta(hours=1))
    assert plan_sweep([], NOW).stops == ()
    assert plan_sweep([], NOW).next_timeout is None


def test_a_starting_row_without_a_create_in_flight_is_stuck_at_once() -> None:
    lost = session("lost", SessionStatus.STARTING, timedelta(minutes=59))
    plan = plan_sweep([lost], NOW, creating=frozenset())
    assert (plan.stuck, plan.overdue, plan.stops) == ((lost,), (), ())


def test_a_starting_row_in_flight_is_left_alone_until_its_deadline() -> None:
    young = session("young", SessionStatus.STARTING, timedelta(minutes=59))
    old = replace(
        session("old", SessionStatus.STARTING, timedelta(minutes=59)),
        created_at=NOW - STARTING_DEADLINE - timedelta(seconds=1),
    )
    plan = plan_sweep([young, old], NOW, creating=frozenset({young.id, old.id}))
    assert (plan.stuck, plan.overdue) == ((), (old,))
    assert plan.next_timeout is None  # starting rows have no timeout to wake for


def test_fenced_sessions_stop_as_of_the_lease_end_within_start_and_timeout() -> None:
    lease_end = NOW - timedelta(seconds=20)
    fenced = session("fenced", SessionStatus.ACTIVE, timedelta(minutes=5))
    expired = session("expired", SessionStatus.ACTIVE, -timedelta(seconds=30))  # timed out first
    young = replace(session("young", SessionStatus.ACTIVE, timedelta(minutes=5)), started_at=NOW)
    other = session("other", SessionStatus.ACTIVE, timedelta(minutes=5))
    plan = plan_sweep(
        [fenced, expired, young, other],
        NOW,
        fenced={fenced.id: lease_end, expired.id: lease_end, young.id: lease_end},
    )
    assert plan.stops == (
        (fenced, StopReason.FENCED, lease_end),
        (expired, StopReason.FENCED, expired.timeout_at),
        (young, StopReason.FENCED, young.started_at),
    )
    assert plan.next_timeout == other.timeout_at


def test_a_fenced_session_already_stopping_keeps_its_own_reason() -> None:
    asked = session("asked", SessionStatus.STOPPING, timedelta(minutes=5), StopReason.USER)
    plan = plan_sweep([asked], NOW, fenced={asked.id: NOW - timedelta(seconds=5)})
    assert plan.stops == ((asked, StopReason.USER, NOW),)
