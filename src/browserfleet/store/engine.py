"""Build the async engine; on SQLite, WAL plus write transactions that take the lock up front.

Every SQLite transaction opens with BEGIN IMMEDIATE (SQLAlchemy's documented recipe for the
sqlite3/aiosqlite drivers) so concurrent writers queue on busy_timeout instead of failing with
"database is locked" when a reader tries to upgrade. Read-only work can use `reader(engine)`,
whose transactions open with a plain (deferred) BEGIN and run beside a writer under WAL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

BUSY_TIMEOUT_SECONDS = 30
_READ_ONLY = "browserfleet_read_only"


def create_engine(url: str, busy_timeout_s: float = BUSY_TIMEOUT_SECONDS) -> AsyncEngine:
    """An engine for `url` (e.g. `sqlite+aiosqlite:////var/lib/browserfleet/db.sqlite3`).

    `busy_timeout_s`: how long a statement waits for another process's lock before failing
    (the API answers that failure with a 503)."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_s})
    event.listen(
        engine.sync_engine,
        "connect",
        lambda conn, record: _on_sqlite_connect(conn, record, busy_timeout_s),
    )
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for transactions that never write (no up-front write lock)."""
    return engine.execution_options(**{_READ_ONLY: True})


async def dispose(engine: AsyncEngine) -> None:
    """Close every pooled connection (call once, at shutdown)."""
    await engine.dispose()


def _on_sqlite_connect(
    dbapi_connection: Any, _record: ConnectionPoolEntry, busy_timeout_s: float
) -> None:
    # The driver must not issue BEGIN itself: _on_sqlite_begin does, with the mode we want.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, much faster
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get(_READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
