"""End-of-session steps: order, phases, and each step bounded and isolated."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from browserfleet.ids import ProjectId, SessionId
from browserfleet.sessions.ending import (
    EndPhase,
    SessionEnd,
    run_steps,
    wants_graceful_close,
)
from browserfleet.sessions.model import Session, SessionRequest, SessionStatus
from browserfleet.tasks import TaskSet

T0 = datetime(2026, 7, 15, 20, 0, tzinfo=UTC)


def _session(profile: str | None = None) -> Session:
    return Session(
        id=SessionId(uuid.uuid4()),
        project_id=ProjectId(uuid.uuid4()),
        status=SessionStatus.STOPPED,
        token="",
        request=SessionRequest(profile_id=profile),
        created_at=T0,
        started_at=T0,
        timeout_at=T0 + timedelta(minutes=1),
        upfront_micros=0,
    )


@dataclass
class Step:
    name: str
    phase: EndPhase
    log: list[str]
    timeout_s: float = 1.0
    behaviour: str = "ok"  # ok, fail, hang
    only_profiles: bool = False
    seen: list[SessionEnd] = field(default_factory=list)

    def wanted(self, session: Session) -> bool:
        return not self.only_profiles or session.request.profile_id is not None

    async def run(self, end: SessionEnd) -> None:
        self.seen.append(end)
        self.log.append(self.name)
        if self.behaviour == "fail":
            raise RuntimeError("boom")
        if self.behaviour == "hang":
            await asyncio.Event().wait()


async def test_steps_of_a_phase_run_in_order_and_others_wait() -> None:
    log: list[str] = []
    steps = [
        Step("a", EndPhase.LIVE, log),
        Step("closed", EndPhase.CLOSED, log),
        Step("b", EndPhase.LIVE, log),
    ]
    end = SessionEnd(_session(), None, Path("/nonexistent"))
    await run_steps(steps, EndPhase.LIVE, end)
    assert log == ["a", "b"]
    await run_steps(steps, EndPhase.CLOSED, end)
    assert log == ["a", "b", "closed"]
    assert steps[0].seen == [end]


async def test_a_failing_or_hanging_step_does_not_stop_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    steps = [
        Step("fails", EndPhase.CLOSED, log, behaviour="fail"),
        Step("hangs", EndPhase.CLOSED, log, behaviour="hang", timeout_s=0.05),
        Step("last", EndPhase.CLOSED, log),
    ]
    await run_steps(steps, EndPhase.CLOSED, SessionEnd(_session(), None, None))
    assert log == ["fails", "hangs", "last"]
    assert "end step fails failed" in caplog.text
    assert "end step hangs timed out" in caplog.text


async def test_cancelling_the_caller_goes_through() -> None:
    log: list[str] = []
    steps = [Step("hangs", EndPhase.LIVE, log, behaviour="hang", timeout_s=60)]
    tasks = TaskSet("test")
    task = tasks.spawn(
        run_steps(steps, EndPhase.LIVE, SessionEnd(_session(), None, None)), name="end"
    )
    while not log:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_only_wanted_steps_run_and_ask_for_a_graceful_close() -> None:
    log: list[str] = []
    steps = [Step("save", EndPhase.CLOSED, log, only_profiles=True)]
    plain, with_profile = _session(), _session(profile="p")
    assert not wants_graceful_close(steps, plain)
    assert wants_graceful_close(steps, with_profile)
    await run_steps(steps, EndPhase.CLOSED, SessionEnd(plain, None, None))
    assert log == []
    await run_steps(steps, EndPhase.CLOSED, SessionEnd(with_profile, None, None))
    assert log == ["save"]
