"""Status changes after reserve: each happens once, books its money once, frees its slot once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from store_builders import T0, Maker

from browserfleet.errors import SessionNotFound
from browserfleet.ids import ProjectId
from browserfleet.sessions.lifecycle import InvalidTransition
from browserfleet.sessions.model import SessionStatus, StopReason
from browserfleet.store.ledger import LedgerKind, replay_balance
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore


async def _balance_and_slots(
    store: SqlProjectStore, project_id: ProjectId
) -> tuple[int | None, int]:
    project = await store.get_project(project_id)
    assert project is not None
    return project.credit_balance_micros, project.active_count


async def test_mark_active_records_the_browser(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    session = make.session(project_id)
    await session_store.reserve(session, 10)

    active = await session_store.mark_active(session.id, pid=99, session_dir="/data/s1")

    assert (active.status, active.browser_pid, active.session_dir) == (
        SessionStatus.ACTIVE,
        99,
        "/data/s1",
    )
    with pytest.raises(InvalidTransition):
        await session_store.mark_active(session.id, pid=100, session_dir="/data/s2")


async def test_stop_then_finalize_twice_refunds_once(
    session_store: SqlSessionStore, project_store: SqlProjectStore, make: Maker
) -> None:
    project = await project_store.create_project("paid", credits_micros=50_000)
    session = await make.active(project.id, timeout_minutes=60)
    at = T0 + timedelta(minutes=30)

    stopping = await session_store.request_stop(session.id, StopReason.USER, at)
    first = await session_store.finalize(session.id, cost_micros=10_000, proxy_bytes=1234)
    second = await session_store.finalize(session.id, cost_micros=999, proxy_bytes=1)

    assert (stopping.status, stopping.stop_reason, stopping.finished_at) == (
        SessionStatus.STOPPING,
        StopReason.USER,
        at,
    )
    assert (first.status, first.cost_micros, first.proxy_bytes) == (
        SessionStatus.STOPPED,
        10_000,
        1234,
    )
    assert second == first
    entries = await project_store.ledger_for_session(session.id)
    assert [(e.kind, e.amount_micros, e.idempotency_key) for e in entries] == [
        (LedgerKind.CHARGE, -20_000, f"charge:{session.id}"),
        (LedgerKind.REFUND, 10_000, f"refund:{session.id}"),
    ]
    assert await _balance_and_slots(project_store, project.id) == (40_000, 0)
    assert replay_balance(await project_store.ledger_for_project(project.id)) == 40_000


async def test_concurrent_finalizes_book_one_refund(
    session_store: SqlSessionStore, project_store: SqlProjectStore, make: Maker
) -> None:
    project = await project_store.create_project("race", credits_micros=20_000)
    session = await make.active(project.id)
    await session_store.request_stop(session.id, StopReason.TIMEOUT, T0)

    results = await asyncio.gather(
        *(session_store.finalize(session.id, cost_micros=20_000, proxy_bytes=0) for _ in range(8))
    )

    assert {r.status for r in results} == {SessionStatus.STOPPED}
    refunds = [
        e for e in await project_store.ledger_for_session(session.id) if e.kind is LedgerKind.REFUND
    ]
    assert [e.amount_micros for e in refunds] == [0]  # a zero refund is still booked, once
    assert await _balance_and_slots(project_store, project.id) == (0, 0)


async def test_request_stop_is_idempotent_and_keeps_the_first_reason(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    session = await make.active(project_id)
    first = await session_store.request_stop(session.id, StopReason.USER, T0 + timedelta(minutes=1))

    again = await session_store.request_stop(
        session.id, StopReason.TIMEOUT, T0 + timedelta(minutes=9)
    )
    await session_store.finalize(session.id, cost_micros=0, proxy_bytes=0)
    after_stop = await session_store.request_stop(
        session.id, StopReason.SHUTDOWN, T0 + timedelta(hours=1)
    )

    assert again == first
    assert (after_stop.status, after_stop.stop_reason, after_stop.finished_at) == (
        SessionStatus.STOPPED,
        StopReason.USER,
        T0 + timedelta(minutes=1),
    )


async def test_stopping_a_starting_or_unknown_session_is_not_found(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    starting = make.session(project_id)
    await session_store.reserve(starting, 10)

    with pytest.raises(SessionNotFound):
        await session_store.request_stop(starting.id, StopReason.USER, T0)
    with pytest.raises(SessionNotFound):
        await session_store.request_stop(make.session(project_id).id, StopReason.USER, T0)


async def test_finalize_before_stop_is_an_invalid_transition(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    session = await make.active(project_id)

    with pytest.raises(InvalidTransition):
        await session_store.finalize(session.id, cost_micros=0, proxy_bytes=0)
    with pytest.raises(SessionNotFound):
        await session_store.finalize(make.session(project_id).id, cost_micros=0, proxy_bytes=0)


async def test_finalize_rejects_a_cost_above_the_upfront_and_writes_nothing(
    session_store: SqlSessionStore,
    project_store: SqlProjectStore,
    make: Maker,
    project_id: ProjectId,
) -> None:
    session = await make.active(project_id, timeout_minutes=60)
    await session_store.request_stop(session.id, StopReason.USER, T0)

    with pytest.raises(ValueError, match="exceeds"):
        await session_store.finalize(session.id, cost_micros=20_001, proxy_bytes=0)

    reread = await session_store.get_any(session.id)
    assert reread is not None
    assert reread.status is SessionStatus.STOPPING
    assert len(await project_store.ledger_for_session(session.id)) == 1


async def test_mark_failed_refunds_in_full_and_frees_the_slot(
    session_store: SqlSessionStore, project_store: SqlProjectStore, make: Maker
) -> None:
    project = await project_store.create_project("fail", concurrent_limit=1, credits_micros=20_000)
    session = make.session(project.id, timeout_minutes=60)
    await session_store.reserve(session, 10)

    await session_store.mark_failed(session.id)
    await session_store.mark_failed(session.id)  # a retry changes nothing

    failed = await session_store.get_any(session.id)
    assert failed is not None
    assert (failed.status, failed.cost_micros) == (SessionStatus.FAILED, 0)
    entries = await project_store.ledger_for_session(session.id)
    assert [(e.kind, e.amount_micros) for e in entries] == [
        (LedgerKind.CHARGE, -20_000),
        (LedgerKind.REFUND, 20_000),
    ]
    assert await _balance_and_slots(project_store, project.id) == (20_000, 0)
    await session_store.reserve(make.session(project.id), 10)  # the slot is free again


async def test_mark_failed_after_launch_is_an_invalid_transition(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    session = await make.active(project_id)

    with pytest.raises(InvalidTransition):
        await session_store.mark_failed(session.id)


async def test_unlimited_balance_stays_unlimited_through_a_whole_session(
    session_store: SqlSessionStore,
    project_store: SqlProjectStore,
    make: Maker,
    project_id: ProjectId,
) -> None:
    stopped = await make.stopped(project_id, cost_micros=333)

    assert stopped.cost_micros == 333
    assert await _balance_and_slots(project_store, project_id) == (None, 0)
    entries = await project_store.ledger_for_session(stopped.id)
    assert [e.amount_micros for e in entries] == [-20_000, 19_667]
