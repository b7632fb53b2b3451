"""Every store transaction runs here: a conflict the database resolved by aborting us is retried
(bounded), and a database that cannot serve us becomes one error, DatabaseUnavailable, whatever
the backend said.

Only conflicts that guarantee a rollback are retried: PostgreSQL's serialization failure
(40001) and deadlock (40P01). A lost connection is never retried: a COMMIT may have landed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from browserfleet.errors import DatabaseUnavailable
from browserfleet.store.engine import reader

log = logging.getLogger(__name__)
T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]

ATTEMPTS = 5
_BACKOFF_S = 0.02  # doubled each attempt, with jitter: 20, 40, 80, 160 ms
CONFLICTS = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
# SQLSTATE classes and codes that say "not now" rather than "wrong": connection exceptions,
# credentials refused (an operator's change), insufficient resources (disk full, too many
# connections), operator intervention (shutdown, starting up, statement cancelled), system
# errors (I/O); a lock not granted within
# lock_timeout; a read-only server (a standby after a failover); conflicts past the retries.
UNAVAILABLE_CLASSES = frozenset({"08", "28", "53", "57", "58"})
UNAVAILABLE_CODES = frozenset({"55P03", "25006"}) | CONFLICTS


class Transactions:
    """Runs units of work in short transactions on one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader(engine)

    async def write(self, work: Work[T]) -> T:
        """`work` in one read-write transaction, committed when it returns; run again from
        the start (a fresh transaction) after a conflict, at most ATTEMPTS times."""
        attempt = 1
        while True:
            try:
                async with self._engine.begin() as conn:
                    return await work(conn)
            except DBAPIError as error:
                if attempt >= ATTEMPTS or sqlstate(error) not in CONFLICTS:
                    if is_unavailable(error):
                        raise _unavailable(error) from error
                    raise
                log.info("transaction conflict (%s), retrying", sqlstate(error))
            except (OSError, TimeoutError, PoolTimeout) as error:
                raise _unavailable(error) from error
            await asyncio.sleep(_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            attempt += 1

    async def read(self, work: Work[T]) -> T:
        """`work` in one read-only transaction (one snapshot on PostgreSQL)."""
        try:
            async with self._reader.connect() as conn:
                return await work(conn)
        except DBAPIError as error:
            if is_unavailable(error):
                raise _unavailable(error) from error
            raise
        except (OSError, TimeoutError, PoolTimeout) as error:
            raise _unavailable(error) from error


def sqlstate(error: DBAPIError) -> str | None:
    """The PostgreSQL SQLSTATE behind a driver error (None for SQLite and client errors)."""
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_unavailable(error: DBAPIError) -> bool:
    """Whether the error says the database cannot serve us now (rather than a bad statement,
    a constraint, or a bug): SQLite's OperationalError (locked, disk full, I/O), a connection
    that was lost, or one of the SQLSTATEs above."""
    if isinstance(error, OperationalError) or error.connection_invalidated:
        return True
    code = sqlstate(error)
    return code is not None and (code[:2] in UNAVAILABLE_CLASSES or code in UNAVAILABLE_CODES)


def _unavailable(error: BaseException) -> DatabaseUnavailable:
    """A short reason, never the statement, its parameters or the URL."""
    if isinstance(error, DBAPIError):
        cause = error.orig if error.orig is not None else error
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        code = sqlstate(error)
        reason = f"{type(cause).__name__}{f' [{code}]' if code else ''}: {first_line}"
    elif isinstance(error, PoolTimeout):
        reason = "no free database connection in the pool in time"
    elif isinstance(error, TimeoutError):
        reason = "the database did not answer in time"
    else:
        reason = f"{type(error).__name__}: {error}"
    return DatabaseUnavailable(reason[:300])
