"""The session state machine."""

import pytest

from browserfleet.sessions.lifecycle import (
    InvalidTransition,
    SessionEvent,
    allowed_from,
    next_status,
    wire_status,
)
from browserfleet.sessions.model import SessionStatus as S

E = SessionEvent


def test_happy_path_starting_to_stopped() -> None:
    status = next_status(S.STARTING, E.LAUNCHED)
    assert status is S.ACTIVE
    status = next_status(status, E.STOP_REQUESTED)
    assert status is S.STOPPING
    assert next_status(status, E.FINALIZED) is S.STOPPED


def test_launch_failure_ends_in_failed() -> None:
    assert next_status(S.STARTING, E.LAUNCH_FAILED) is S.FAILED


def test_stop_is_idempotent() -> None:
    assert next_status(S.STOPPING, E.STOP_REQUESTED) is S.STOPPING
    assert next_status(S.STOPPED, E.STOP_REQUESTED) is S.STOPPED
    assert next_status(S.STOPPED, E.FINALIZED) is S.STOPPED


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (S.ACTIVE, E.LAUNCHED),
        (S.STOPPED, E.LAUNCHED),
        (S.FAILED, E.STOP_REQUESTED),
        (S.ACTIVE, E.FINALIZED),
        (S.STARTING, E.STOP_REQUESTED),
        (S.STARTING, E.FINALIZED),
        (S.STOPPED, E.LAUNCH_FAILED),
    ],
)
def test_invalid_transitions_raise(status: S, event: SessionEvent) -> None:
    with pytest.raises(InvalidTransition):
        next_status(status, event)


def test_guards_match_the_table() -> None:
    assert allowed_from(E.FINALIZED) == {S.STOPPING, S.STOPPED}
    assert allowed_from(E.LAUNCHED) == {S.STARTING}
    assert allowed_from(E.STOP_REQUESTED) == {S.ACTIVE, S.STOPPING, S.STOPPED}


@pytest.mark.parametrize(
    ("status", "wire"),
    [
        (S.STARTING, "active"),
        (S.ACTIVE, "active"),
        (S.STOPPING, "active"),
        (S.STOPPED, "stopped"),
        (S.FAILED, "stopped"),
    ],
)
def test_wire_status_has_two_values(status: S, wire: str) -> None:
    assert wire_status(status) == wire
