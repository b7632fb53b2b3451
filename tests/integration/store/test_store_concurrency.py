"""Writers that meet: several engines (as several servers would), a lock held by someone else,
a deadlock, a transaction left idle. The books must balance whatever the interleaving."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator

import asyncpg
import pytest
from postgres_cluster import PostgresCluster
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from store_builders import OWNER, T0, Maker

from browserfleet.errors import ConcurrencyLimitReached, DatabaseUnavailable
from browserfleet.ids import ProjectId
from browserfleet.sessions.model import StopReason
from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.ledger import replay_balance
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore
from browserfleet.store.tables import projects
from browserfleet.store.transactions import ATTEMPTS, Transactions

only_postgresql = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


def _dsn(url: str) -> str:
    """The app's URL as asyncpg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def _project_row_held(url: str, project_id: ProjectId) -> AsyncIterator[None]:
    """Another process's transaction holding the project's row (PostgreSQL) or the whole
    database (SQLite's write lock) until the block ends."""
    if make_url(url).get_backend_name() == "sqlite":
        db = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
        return
    conn = await asyncpg.connect(_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", project_id)
            yield
    finally:
        await conn.close()


async def test_a_lock_held_past_the_busy_timeout_is_database_unavailable_and_writes_nothing(
    db_url: str, project_store: SqlProjectStore, make: Maker
) -> None:
    project = await project_store.create_project("held", credits_micros=100_000)
    impatient = create_engine(db_url, busy_timeout_s=0.3)
    try:
        store = SqlSessionStore(impatient)
        async with _project_row_held(db_url, project.id):
            with pytest.raises(DatabaseUnavailable):
                await store.reserve(make.session(project.id), 10)
        reread = await project_store.get_project(project.id)
        assert reread is not None
        assert (reread.active_count, reread.credit_balance_micros) == (0, 100_000)
        entries = await project_store.ledger_for_project(project.id)
        assert [e.kind.value for e in entries] == ["credit_set"]
        await store.reserve(make.session(project.id), 10)  # released: it goes through
    finally:
        await dispose(impatient)


async def test_many_writers_on_several_engines_keep_the_books_balanced(
    db_url: str, engine: AsyncEngine, project_store: SqlProjectStore, make: Maker
) -> None:
    """Creates, stops and credit changes at once from three engines (three servers' pools):
    no slot overshoot, every session settled once, and the ledger replays to the balance."""
    project = await project_store.create_project("busy", concurrent_limit=4, credits_micros=10**7)
    engines = [engine, create_engine(db_url), create_engine(db_url)]
    stores = [SqlSessionStore(e) for e in engines]
    admins = [SqlProjectStore(e) for e in engines]
    rng = random.Random(14)

    async def lifecycle(i: int) -> None:
        store = stores[i % len(stores)]
        session = make.session(project.id, timeout_minutes=rng.randint(1, 30))
        try:
            await store.reserve(session, 100)
        except ConcurrencyLimitReached:
            return
        await store.mark_active(session.id, pid=i, session_dir=f"/s/{i}")
        await store.request_stop(session.id, StopReason.USER, T0)
        cost = rng.randint(0, session.upfront_micros)
        await store.finalize(session.id, cost_micros=cost, proxy_bytes=i, proxy_cost_micros=i)

    async def credit(i: int) -> None:
        await admins[i % len(admins)].update_project("busy", credits_micros=10**7 + i)

    try:
        work = [lifecycle(i) for i in range(40)] + [credit(i) for i in range(10)]
        rng.shuffle(work)
        await asyncio.gather(*work)
    finally:
        for extra in engines[1:]:
            await dispose(extra)

    reread = await project_store.get_project(project.id)
    assert reread is not None
    assert reread.active_count == 0
    entries = await project_store.ledger_for_project(project.id)
    assert replay_balance(entries) == reread.credit_balance_micros
    charges = [e for e in entries if e.kind.value == "charge"]
    refunds = {e.session_id for e in entries if e.kind.value == "refund"}
    assert charges and {e.session_id for e in charges} == refunds


@only_postgresql
async def test_a_refund_queued_behind_a_credit_change_replays_in_commit_order(
    db_url: str, session_store: SqlSessionStore, project_store: SqlProjectStore, make: Maker
) -> None:
    """The interleaving that breaks a ledger whose ids are taken before the project's lock:
    a credit change waits for the project's row, then a stop's refund queues behind it. The
    refund must get its ledger id after the credit change's (replay == balance)."""
    project = await project_store.create_project("order", credits_micros=1_000_000)
    session = await make.active(project.id, timeout_minutes=60)
    await session_store.request_stop(session.id, StopReason.USER, T0)
    watcher = await asyncpg.connect(_dsn(db_url))
    try:
        # The row is let go before the group waits for its two writers.
        async with asyncio.TaskGroup() as group, _project_row_held(db_url, project.id):
            group.create_task(project_store.update_project("order", credits_micros=500_000))
            await _until_waiting_for_locks(watcher, 1)
            group.create_task(session_store.finalize(session.id, cost_micros=0, proxy_bytes=0))
            await _until_waiting_for_locks(watcher, 2)
    finally:
        await watcher.close()

    reread = await project_store.get_project(project.id)
    assert reread is not None
    assert reread.credit_balance_micros == 500_000 + session.upfront_micros
    assert replay_balance(await project_store.ledger_for_project(project.id)) == (
        reread.credit_balance_micros
    )


async def _until_waiting_for_locks(conn: asyncpg.Connection, count: int) -> None:
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(30):
        while await conn.fetchval(query) < count:
            await asyncio.sleep(0.02)


@only_postgresql
async def test_a_deadlock_victim_is_run_again_and_succeeds(
    postgres: PostgresCluster, db_url: str, engine: AsyncEngine, project_store: SqlProjectStore
) -> None:
    """A real deadlock: our transaction locks A then B, another locks B then A. PostgreSQL
    aborts ours (the other waits longer before it checks); the runner starts it again."""
    a = (await project_store.create_project("a")).id
    b = (await project_store.create_project("b")).id
    ours_has_a, theirs_has_b = asyncio.Event(), asyncio.Event()
    attempts = 0

    async def ours(conn: AsyncConnection) -> None:
        nonlocal attempts
        attempts += 1
        await _touch(conn, a)
        if attempts == 1:
            ours_has_a.set()
            await theirs_has_b.wait()
        await _touch(conn, b)

    async def theirs() -> None:
        conn = await asyncpg.connect(postgres.admin_dsn(make_url(db_url).database or ""))
        try:
            await conn.execute("SET deadlock_timeout = '20s'")  # we are not the one to give up
            async with conn.transaction():
                await conn.execute("UPDATE projects SET active_count = 0 WHERE id = $1", b)
                theirs_has_b.set()
                await ours_has_a.wait()
                await conn.execute("UPDATE projects SET active_count = 0 WHERE id = $1", a)
        finally:
            await conn.close()

    async with asyncio.timeout(60), asyncio.TaskGroup() as group:
        group.create_task(theirs())
        group.create_task(Transactions(engine).write(ours))

    assert attempts == 2


async def _touch(conn: AsyncConnection, project_id: ProjectId) -> None:
    await conn.execute(update(projects).where(projects.c.id == project_id).values(active_count=0))


async def test_conflicts_past_the_retries_are_database_unavailable(engine: AsyncEngine) -> None:
    attempts = 0

    class Conflict(Exception):
        sqlstate = "40001"

    async def always_conflicting(conn: AsyncConnection) -> None:
        nonlocal attempts
        attempts += 1
        await conn.execute(text("SELECT 1"))
        raise DBAPIError("COMMIT", None, Conflict("could not serialize access"))

    with pytest.raises(DatabaseUnavailable, match="40001"):
        await Transactions(engine).write(always_conflicting)
    assert attempts == ATTEMPTS


@only_postgresql
async def test_a_transaction_left_idle_is_ended_by_the_server_and_frees_its_row(
    db_url: str, project_store: SqlProjectStore, make: Maker, session_store: SqlSessionStore
) -> None:
    """A server frozen inside a transaction (here: one that stops talking after locking the
    project's row) loses it after the busy timeout; others are not blocked for ever."""
    project = await project_store.create_project("frozen")
    frozen = create_engine(db_url, busy_timeout_s=0.5)
    watcher = await asyncpg.connect(_dsn(db_url))
    try:
        async with frozen.connect() as conn:
            await conn.begin()
            await _touch(conn, project.id)
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            async with asyncio.timeout(30):
                while await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
                ):
                    await asyncio.sleep(0.05)
            await session_store.reserve(make.session(project.id), 10)  # not blocked
            with pytest.raises(DBAPIError) as ended:
                await conn.execute(text("SELECT 1"))
            assert ended.value.connection_invalidated
    finally:
        await watcher.close()
        await dispose(frozen)


async def test_heartbeats_of_one_instance_at_once_all_succeed(
    session_store: SqlSessionStore, db_url: str
) -> None:
    """The heartbeat loop and a readiness probe may beat together, before the row exists."""
    other_engine = create_engine(db_url)
    try:
        other = SqlSessionStore(other_engine)
        beats = [store.heartbeat(OWNER, "host", 1, T0) for store in (session_store, other)]
        await asyncio.gather(*(beats * 5))
    finally:
        await dispose(other_engine)
    assert [i.id for i in await session_store.instances()] == [OWNER]
