"""Build the async engine: SQLite (aiosqlite) or PostgreSQL (asyncpg), with the same meaning of
"busy": how long a statement may wait for another process's lock before it fails.

SQLite: statements run on the event loop's thread (store/sqlite_driver.py), WAL, and every
write transaction opens with BEGIN IMMEDIATE (SQLAlchemy's documented recipe for the sqlite3
drivers) so concurrent writers queue for the lock (for up to the busy timeout, without blocking
the loop) instead of failing with "database is locked" when a reader tries to upgrade.
`reader(engine)` transactions open with a plain (deferred) BEGIN and run beside a writer under
WAL.

PostgreSQL: READ COMMITTED writes (every decision is one conditional UPDATE, see
store/sessions.py), `lock_timeout` = the busy timeout, a server-side end to transactions left
idle (a frozen process must not hold a project's row lock for ever), and `reader(engine)`
transactions that are REPEATABLE READ READ ONLY: one snapshot for a page and its total, and
never a serialization failure.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from browserfleet.store import sqlite_driver

BUSY_TIMEOUT_SECONDS = 30
POOL_SIZE = 10
MAX_OVERFLOW = 10
# A PostgreSQL server that does not accept a connection within this long counts as down.
CONNECT_TIMEOUT_S = 10.0
# A statement may wait busy_timeout for a lock, then must finish within this margin; past it
# the client gives up (a server that stopped answering without closing the connection).
COMMAND_MARGIN_S = 30.0
APPLICATION_NAME = "browserfleet"
_READ_ONLY = "browserfleet_read_only"


def create_engine(
    url: str,
    busy_timeout_s: float = BUSY_TIMEOUT_SECONDS,
    *,
    pool_size: int = POOL_SIZE,
    max_overflow: int = MAX_OVERFLOW,
) -> AsyncEngine:
    """An engine for `url`: `sqlite+aiosqlite:////var/lib/browserfleet/db.sqlite3` or
    `postgresql+asyncpg://user:password@host:5432/browserfleet`.

    `busy_timeout_s`: how long a statement waits for another process's lock, and a request for
    a free pooled connection, before failing (the API answers that failure with a 503).
    `pool_size` connections stay open; up to `max_overflow` more are opened under load."""
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": busy_timeout_s}
    if make_url(url).get_backend_name() == "postgresql":
        return _postgresql_engine(url, busy_timeout_s, pool)
    database = make_url(url).database or ":memory:"
    engine = create_async_engine(
        url, async_creator=sqlite_driver.connector(database, busy_timeout_s), **pool
    )
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _postgresql_engine(url: str, busy_timeout_s: float, pool: dict[str, Any]) -> AsyncEngine:
    busy_ms = str(int(busy_timeout_s * 1000))
    connect_args = {
        "timeout": CONNECT_TIMEOUT_S,
        "command_timeout": busy_timeout_s + COMMAND_MARGIN_S,
        "server_settings": {
            "application_name": APPLICATION_NAME,
            "lock_timeout": busy_ms,
            # Our transactions never wait on anything but the database; one that sits idle
            # this long belongs to a frozen or partitioned process: the server ends it.
            "idle_in_transaction_session_timeout": busy_ms,
        },
    }
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args, **pool)


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for transactions that never write: no up-front write lock on
    SQLite; one consistent snapshot, read only, on PostgreSQL."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return engine.execution_options(**{_READ_ONLY: True})


async def dispose(engine: AsyncEngine) -> None:
    """Close every pooled connection (call once, at shutdown)."""
    await engine.dispose()


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # The driver must not issue BEGIN itself: _on_sqlite_begin does, with the mode we want.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        # Never wait on a lock here: the busy timeout is waited out by retrying, yielding the
        # loop meanwhile (sqlite_driver).
        cursor.execute("PRAGMA busy_timeout = 0")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, much faster
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get(_READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
