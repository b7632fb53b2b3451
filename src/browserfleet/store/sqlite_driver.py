"""SQLite for SQLAlchemy's aiosqlite dialect, run on the event loop's own thread.

aiosqlite runs each connection's sqlite3 calls on a thread of its own: every call is a hop there
and back, two wakeups, and its cursor makes four of each statement (open, execute, fetch, close).
On a small host whose cores are busy with browsers a hop costs 0.5-1.5 ms, so an API key lookup
took ~4.5 ms and a stop's two transactions ~12 ms, nearly all of it waiting for threads to be
scheduled. SQLite itself answers these statements in microseconds: a WAL database in the page
cache, short transactions, indexed lookups. So here each statement runs where it is awaited, and
the loop never waits on a lock: the connection's own busy timeout is 0.

* A statement that would start a transaction (BEGIN IMMEDIATE of a write, or any statement
  outside a transaction) and finds the database locked by another connection is retried
  asynchronously, yielding the loop, until the busy timeout has passed; then it fails as before
  ("database is locked").
* Inside a transaction nothing waits on other connections under WAL: a write holds the write
  lock from its BEGIN IMMEDIATE on, and readers never block. Should SQLite still answer "locked"
  there, the statement fails at once rather than stall the loop.

What SQLAlchemy sees is aiosqlite's interface (the dialect, its pool and its error mapping are
unchanged); PostgreSQL (asyncpg) is not concerned.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

# Retries of a statement that found the database locked: the first wait, doubled up to the last.
RETRY_FIRST_S = 0.002
RETRY_MAX_S = 0.05


def connector(database: str, busy_timeout_s: float) -> Callable[[], Awaitable[InlineConnection]]:
    """SQLAlchemy's `async_creator` for this database: each call opens a new connection."""

    async def connect() -> InlineConnection:
        # check_same_thread=False: SQLAlchemy may close a connection from a garbage collector
        # running on another thread; every other use is on the loop's thread, one at a time.
        conn = sqlite3.connect(database, timeout=0, check_same_thread=False)
        return InlineConnection(conn, busy_timeout_s)

    return connect


def is_locked(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY: another connection holds the lock this statement needs."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(error)


class _RunNow:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's dialect writes to directly
    (to set isolation_level): the function runs at once, here."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:  # delivered to whoever awaits the future
            future.set_exception(error)


class InlineConnection:
    """The part of aiosqlite's Connection that SQLAlchemy uses, over a sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout_s: float) -> None:
        self._connection: sqlite3.Connection | None = conn
        self.busy_timeout_s = busy_timeout_s
        self._tx = _RunNow()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_Result = tuple[list[Any], Any, int, int | None]


class InlineCursor:
    """The part of aiosqlite's Cursor that SQLAlchemy uses; rows are read at execute."""

    arraysize = 1

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        params = () if parameters is None else parameters
        await self._run(lambda cursor: cursor.execute(sql, params), fetch=True)
        return self

    async def executemany(self, sql: str, seq_of_parameters: Any) -> InlineCursor:
        await self._run(lambda cursor: cursor.executemany(sql, seq_of_parameters), fetch=False)
        return self

    async def _run(self, statement: Callable[[sqlite3.Cursor], object], *, fetch: bool) -> None:
        conn = self._connection._conn
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connection.busy_timeout_s
        wait = RETRY_FIRST_S
        while True:
            starts_transaction = not conn.in_transaction
            try:
                self._take(_once(conn, statement, fetch))
                return
            except sqlite3.OperationalError as error:
                # Only a statement that began no transaction can simply be run again.
                if not (starts_transaction and is_locked(error)) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_MAX_S)

    def _take(self, result: _Result) -> None:
        self._rows, self.description, self.rowcount, self.lastrowid = result

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> list[Any]:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []


def _once(
    conn: sqlite3.Connection, statement: Callable[[sqlite3.Cursor], object], fetch: bool
) -> _Result:
    cursor = conn.cursor()
    try:
        statement(cursor)
        rows = cursor.fetchall() if fetch and cursor.description is not None else []
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()
