"""The pure session state machine: which status follows which event."""

from __future__ import annotations

from enum import StrEnum

from browserfleet.sessions.model import SessionStatus


class SessionEvent(StrEnum):
    LAUNCHED = "launched"
    LAUNCH_FAILED = "launch_failed"
    STOP_REQUESTED = "stop_requested"
    FINALIZED = "finalized"


class InvalidTransition(Exception):
    def __init__(self, status: SessionStatus, event: SessionEvent) -> None:
        super().__init__(f"{event} is not allowed from {status}")
        self.status = status
        self.event = event


_S = SessionStatus
_E = SessionEvent
_TRANSITIONS: dict[tuple[SessionStatus, SessionEvent], SessionStatus] = {
    (_S.STARTING, _E.LAUNCHED): _S.ACTIVE,
    (_S.STARTING, _E.LAUNCH_FAILED): _S.FAILED,
    (_S.ACTIVE, _E.STOP_REQUESTED): _S.STOPPING,
    (_S.STOPPING, _E.STOP_REQUESTED): _S.STOPPING,
    (_S.STOPPING, _E.FINALIZED): _S.STOPPED,
    (_S.STOPPED, _E.STOP_REQUESTED): _S.STOPPED,
    (_S.STOPPED, _E.FINALIZED): _S.STOPPED,
}


def next_status(status: SessionStatus, event: SessionEvent) -> SessionStatus:
    try:
        return _TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None


def allowed_from(event: SessionEvent) -> frozenset[SessionStatus]:
    """Statuses in which the event may happen (the store's conditional-update guard)."""
    return frozenset(s for (s, e) in _TRANSITIONS if e is event)


def wire_status(status: SessionStatus) -> str:
    """The two statuses clients know: a session stopping is still active until it is gone."""
    return "stopped" if status in (_S.STOPPED, _S.FAILED) else "active"
