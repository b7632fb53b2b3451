"""SQLite statements run on the event loop's thread: a lock held by another process never
stalls the loop; a write waits for it asynchronously, then goes through, or fails as "database
is locked" once the busy timeout has passed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from browserfleet.store import sqlite_driver
from browserfleet.store.engine import create_engine, dispose, reader

only_sqlite = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

HELD_S = 0.6


@pytest.fixture
async def table(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url, busy_timeout_s=5)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        await conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield engine
    await dispose(engine)


@contextlib.asynccontextmanager
async def _write_lock_held(db_url: str) -> AsyncIterator[threading.Thread]:
    """Another connection (as another process would) takes SQLite's write lock, writes, and
    commits HELD_S later; the block runs once the lock is taken. Yields the holder's thread."""
    taken = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE counter SET n = n + 100 WHERE id = 1")
            taken.set()
            threading.Event().wait(HELD_S)
            db.execute("COMMIT")
        finally:
            db.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        await asyncio.to_thread(taken.wait)
        yield holder
    finally:
        await asyncio.to_thread(holder.join)


async def _loop_gaps(stop: asyncio.Event) -> list[float]:
    """The gaps between a 5 ms ticker's ticks: how long the loop was kept from it."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    last = loop.time()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = loop.time()
        gaps.append(now - last)
        last = now
    return gaps


@only_sqlite
async def test_a_write_waits_for_another_writer_without_stalling_the_loop(
    db_url: str, table: AsyncEngine
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with _write_lock_held(db_url), asyncio.TaskGroup() as group:
        ticker = group.create_task(_loop_gaps(stop))
        started = loop.time()
        async with table.begin() as conn:
            await conn.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
        waited = loop.time() - started
        stop.set()
    gaps = ticker.result()
    async with table.connect() as conn:
        assert await conn.scalar(text("SELECT n FROM counter")) == 101  # both writes landed
    assert waited >= HELD_S * 0.8  # it did wait for the lock ...
    # ... while the loop went on ticking (a wait on the lock itself would leave a gap as long
    # as the lock was held).
    assert len(gaps) > 10
    assert max(gaps) < HELD_S / 2


@only_sqlite
async def test_a_lock_held_past_the_busy_timeout_fails_as_locked_and_changes_nothing(
    db_url: str, table: AsyncEngine
) -> None:
    impatient = create_engine(db_url, busy_timeout_s=0.2)
    try:
        async with _write_lock_held(db_url):
            with pytest.raises(OperationalError, match="database is locked"):
                async with impatient.begin() as conn:
                    await conn.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
    finally:
        await dispose(impatient)
    async with table.connect() as conn:
        assert await conn.scalar(text("SELECT n FROM counter")) == 100  # only the holder's


@only_sqlite
async def test_reads_go_on_beside_a_writer_holding_the_lock(
    db_url: str, table: AsyncEngine
) -> None:
    async with _write_lock_held(db_url) as holder:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with reader(table).connect() as conn:
            # WAL: the last committed state, at once, while the write is still open.
            assert await conn.scalar(text("SELECT n FROM counter")) == 0
        assert loop.time() - started < HELD_S / 2
        assert holder.is_alive()


def test_only_a_busy_error_counts_as_locked() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            conn.execute("SELECT * FROM no_such_table")
    finally:
        conn.close()
    assert not sqlite_driver.is_locked(caught.value)
