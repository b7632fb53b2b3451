"""Migrations on real SQLite files: fresh, re-run, concurrent, and equal to tables.py."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.migrate import _config, is_current, upgrade
from browserfleet.store.tables import metadata

HEAD = "0003"
TABLES = {
    "projects",
    "api_keys",
    "sessions",
    "session_metadata",
    "ledger_entries",
    "instances",
    "profiles",
}


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
    assert revisions == [HEAD]
    assert await is_current(_url(path))


async def test_upgrade_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await upgrade(_url(path))
    before = path.read_bytes()

    await upgrade(_url(path))

    assert _tables_and_revision(path)[1] == [HEAD]
    assert path.read_bytes() == before


async def test_concurrent_upgrades_in_one_process_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    await asyncio.gather(*(upgrade(_url(path)) for _ in range(4)))

    names, revisions = _tables_and_revision(path)
    assert names >= TABLES
    assert revisions == [HEAD]


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
    assert _tables_and_revision(path)[1] == [HEAD]


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


async def test_upgrading_from_0001_keeps_only_a_digest_of_each_token(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    engine = create_engine(_url(path))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_config(sync), "0001"))
    finally:
        await dispose(engine)
    project, session = "a" * 32, "b" * 32
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO projects (id, name, created_at) VALUES (?, 'p', '2026-01-01')", (project,)
        )
        db.execute(
            "INSERT INTO sessions (id, project_id, status, token, timeout_minutes, screen_width,"
            " screen_height, allow_resizing, pdf_viewer, enable_recording, solve_captchas,"
            " metadata_json, created_at, started_at, timeout_at, upfront_micros)"
            " VALUES (?, ?, 'stopped', 'plain-token', 1, 1, 1, 0, 0, 0, 0, '{}',"
            " '2026-01-01', '2026-01-01', '2026-01-01', 0)",
            (session, project),
        )
    db.close()
    await upgrade(_url(path))
    with sqlite3.connect(path) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(sessions)")]
        digest = db.execute("SELECT token_digest FROM sessions").fetchone()[0]
    db.close()
    assert "token" not in columns
    assert digest == hashlib.sha256(b"plain-token").hexdigest()
