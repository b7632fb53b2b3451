"""Bring a database to the newest schema (alembic `upgrade head`), from code, idempotently.

Concurrent callers are serialised by the database itself: the whole upgrade runs in one
transaction that first takes a database-wide lock, and alembic reads the current revision only
after it holds it, so a second caller waits and then finds nothing to do.
  * SQLite: the engine opens every transaction with BEGIN IMMEDIATE (the write lock), and
    SQLite's DDL is transactional, so the lock covers the whole upgrade.
  * PostgreSQL: a transaction-scoped advisory lock (pg_advisory_xact_lock), released at commit.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from browserfleet.store.engine import create_engine
from browserfleet.store.transactions import Transactions

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number, the same in every browserfleet process ("bfleet" in ASCII).
_PG_MIGRATION_LOCK = 0x62666C656574


async def upgrade(url: str) -> None:
    """Migrate the database at `url` to head; safe to run from several processes at once."""
    engine = create_engine(url)

    async def work(conn: AsyncConnection) -> None:
        await _take_migration_lock(conn)
        await conn.run_sync(_upgrade_to_head)

    try:
        await Transactions(engine).write(work)
    finally:
        await engine.dispose()


async def is_current(url: str) -> bool:
    """Whether the database at `url` is at the newest revision (for readiness checks)."""
    engine = create_engine(url)
    try:
        current = await Transactions(engine).read(lambda conn: conn.run_sync(_current_heads))
    finally:
        await engine.dispose()
    return current == set(_script_directory().get_heads())


async def _take_migration_lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


def _current_heads(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())
