"""Migrations on real SQLite files: fresh, re-run, concurrent, and equal to tables.py."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.migrate import is_current, upgrade
from browserfleet.store.tables import metadata

TABLES = {"projects", "api_keys", "sessions", "session_metadata", "ledger_entries", "instances"}


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _tables_and_revision(path: Path) -> tuple[set[str], list[str]]:
    with sqlite3.connect(path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        revisions = [r[0] for r in db.execute("SELECT version_num FROM alembic_version")]
    db.close()
    return names, revisions


async def test_upgrade_creates_every_table_on_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    assert not await is_current(_url(path))

    await upgrade(_url(path))

    names, revisions = _tables_and_revision(path)
    assert names >= TABLES | {"alembic_version"}
    assert revisions == ["0001"]
    assert await is_current(_url(path))


async def test_upgrade_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await upgrade(_url(path))
    before = path.read_bytes()

    await upgrade(_url(path))

    assert _tables_and_revision(path)[1] == ["0001"]
    assert path.read_bytes() == before


async def test_concurrent_upgrades_in_one_process_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    await asyncio.gather(*(upgrade(_url(path)) for _ in range(4)))

    names, revisions = _tables_and_revision(path)
    assert names >= TABLES
    assert revisions == ["0001"]


async def test_concurrent_upgrades_from_separate_processes_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    script = (
        "import asyncio, sys; from browserfleet.store.migrate import upgrade; "
        "asyncio.run(upgrade(sys.argv[1]))"
    )
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, _url(path))
        for _ in range(3)
    ]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=60)

    assert codes == [0, 0, 0]
    assert _tables_and_revision(path)[1] == ["0001"]


async def test_migrated_schema_matches_the_tables_module(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await upgrade(_url(path))
    engine = create_engine(_url(path))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
    finally:
        await dispose(engine)
    assert diff == []


async def test_database_runs_in_wal_mode_after_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await upgrade(_url(path))
    with sqlite3.connect(path) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert mode == ("wal",)


def _schema_diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))
