"""The atomic reserve: slots and upfront charges under concurrency, credits, refusals."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from store_builders import Maker

from browserfleet.errors import AccountNotFound, ConcurrencyLimitReached, InsufficientCredits
from browserfleet.ids import ProjectId
from browserfleet.sessions.model import SessionStatus
from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.ledger import LedgerKind
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore
from browserfleet.store.tables import ledger_entries, session_metadata, sessions


async def _row_counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """(sessions, session_metadata rows, charges) in the whole database."""
    async with engine.connect() as conn:
        counts = [
            await conn.scalar(select(func.count()).select_from(table))
            for table in (sessions, session_metadata)
        ]
        charges = await conn.scalar(
            select(func.count())
            .select_from(ledger_entries)
            .where(ledger_entries.c.kind == LedgerKind.CHARGE.value)
        )
    return counts[0] or 0, counts[1] or 0, charges or 0


async def _reserve_all(
    stores: list[SqlSessionStore], make: Maker, project_id: ProjectId, n: int, limit: int
) -> list[BaseException | None]:
    attempts = [
        stores[i % len(stores)].reserve(make.session(project_id), default_limit=limit)
        for i in range(n)
    ]
    return list(await asyncio.gather(*attempts, return_exceptions=True))


async def test_twenty_concurrent_reserves_against_limit_three_take_exactly_three_slots(
    engine: AsyncEngine,
    session_store: SqlSessionStore,
    project_store: SqlProjectStore,
    project_id: ProjectId,
    make: Maker,
) -> None:
    outcomes = await _reserve_all([session_store], make, project_id, n=20, limit=3)

    assert outcomes.count(None) == 3
    assert sum(isinstance(o, ConcurrencyLimitReached) for o in outcomes) == 17
    assert await _row_counts(engine) == (3, 0, 3)
    project = await project_store.get_project(project_id)
    assert project is not None
    assert project.active_count == 3
    assert await project_store.active_session_count(project_id) == 3


async def test_reserves_from_two_engines_on_one_file_never_exceed_the_limit(
    db_url: str, engine: AsyncEngine, project_store: SqlProjectStore, make: Maker
) -> None:
    # Two engines, two connection pools: as close to two server processes as one test gets.
    project = await project_store.create_project("race", concurrent_limit=3)
    other = create_engine(db_url)
    try:
        stores = [SqlSessionStore(engine), SqlSessionStore(other)]
        outcomes = await _reserve_all(stores, make, project.id, n=20, limit=50)
    finally:
        await dispose(other)

    assert outcomes.count(None) == 3
    assert sum(isinstance(o, ConcurrencyLimitReached) for o in outcomes) == 17
    assert await _row_counts(engine) == (3, 0, 3)
    reread = await project_store.get_project(project.id)
    assert reread is not None
    assert reread.active_count == 3


async def test_reserve_inserts_a_starting_session_with_its_charge_and_metadata(
    engine: AsyncEngine,
    session_store: SqlSessionStore,
    project_store: SqlProjectStore,
    make: Maker,
) -> None:
    project = await project_store.create_project("paid", credits_micros=100_000)
    session = make.session(project.id, timeout_minutes=60, metadata={"env": "prod", "team": "x"})

    await session_store.reserve(session, default_limit=10)

    stored = await session_store.get_any(session.id)
    assert stored == session
    assert stored.status is SessionStatus.STARTING
    entries = await project_store.ledger_for_session(session.id)
    assert [(e.kind, e.amount_micros, e.idempotency_key) for e in entries] == [
        (LedgerKind.CHARGE, -20_000, f"charge:{session.id}")
    ]
    reread = await project_store.get_project(project.id)
    assert reread is not None
    assert (reread.credit_balance_micros, reread.active_count) == (80_000, 1)
    assert await _row_counts(engine) == (1, 2, 1)


async def test_reserve_without_enough_credits_writes_nothing(
    engine: AsyncEngine,
    session_store: SqlSessionStore,
    project_store: SqlProjectStore,
    make: Maker,
) -> None:
    project = await project_store.create_project("poor", credits_micros=19_999)

    with pytest.raises(InsufficientCredits):
        await session_store.reserve(make.session(project.id, metadata={"k": "v"}), 10)

    assert await _row_counts(engine) == (0, 0, 0)
    reread = await project_store.get_project(project.id)
    assert reread is not None
    assert (reread.credit_balance_micros, reread.active_count) == (19_999, 0)


async def test_credits_are_checked_before_the_concurrency_limit(
    session_store: SqlSessionStore, project_store: SqlProjectStore, make: Maker
) -> None:
    project = await project_store.create_project("both", concurrent_limit=0, credits_micros=1)

    with pytest.raises(InsufficientCredits):
        await session_store.reserve(make.session(project.id), 10)


async def test_exact_balance_is_enough_and_then_runs_out(
    session_store: SqlSessionStore, project_store: SqlProjectStore, make: Maker
) -> None:
    project = await project_store.create_project("exact", credits_micros=20_000)

    await session_store.reserve(make.session(project.id, timeout_minutes=60), 10)
    with pytest.raises(InsufficientCredits):
        await session_store.reserve(make.session(project.id, timeout_minutes=1), 10)

    reread = await project_store.get_project(project.id)
    assert reread is not None
    assert reread.credit_balance_micros == 0


async def test_project_limit_overrides_the_server_default(
    session_store: SqlSessionStore, project_store: SqlProjectStore, make: Maker
) -> None:
    project = await project_store.create_project("one", concurrent_limit=1)

    await session_store.reserve(make.session(project.id), default_limit=10)
    with pytest.raises(ConcurrencyLimitReached):
        await session_store.reserve(make.session(project.id), default_limit=10)


async def test_reserve_for_a_missing_project_is_account_not_found(
    engine: AsyncEngine, session_store: SqlSessionStore, make: Maker
) -> None:

    with pytest.raises(AccountNotFound):
        await session_store.reserve(make.session(ProjectId(uuid4())), 10)
    assert await _row_counts(engine) == (0, 0, 0)


async def test_reserve_refuses_a_session_that_is_not_starting(
    session_store: SqlSessionStore, project_id: ProjectId, make: Maker
) -> None:
    active = await make.active(project_id)

    with pytest.raises(ValueError, match="STARTING"):
        await session_store.reserve(active, 10)
