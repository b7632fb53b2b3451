"""Migrations on real databases (SQLite files and PostgreSQL): fresh, re-run, concurrent (in
one process and from several), equal to tables.py, and the 0002 data migration."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.migrate import _PG_MIGRATION_LOCK, _config, is_current, upgrade
from browserfleet.store.tables import metadata

HEAD = "0005"
TABLES = {
    "projects",
    "api_keys",
    "sessions",
    "session_metadata",
    "ledger_entries",
    "instances",
    "shared_settings",
    "profiles",
}


async def _schema(url: str) -> tuple[dict[str, object], list[str]]:
    """Every table's columns, indexes and constraints as the database reports them, and the
    revisions alembic recorded."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_inspect)
    finally:
        await dispose(engine)


def _inspect(conn: Connection) -> tuple[dict[str, object], list[str]]:
    inspector = sa.inspect(conn)
    schema: dict[str, object] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted(str(sorted(i.items())) for i in inspector.get_indexes(table)),
            sorted(str(sorted(u.items())) for u in inspector.get_unique_constraints(table)),
            sorted(str(sorted(f.items())) for f in inspector.get_foreign_keys(table)),
            sorted(str(c["sqltext"]) for c in inspector.get_check_constraints(table)),
        )
    revisions = []
    if "alembic_version" in schema:
        revisions = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    return schema, revisions


async def test_upgrade_creates_every_table_on_an_empty_database(blank_database_url: str) -> None:
    assert not await is_current(blank_database_url)

    await upgrade(blank_database_url)

    schema, revisions = await _schema(blank_database_url)
    assert set(schema) >= TABLES | {"alembic_version"}
    assert revisions == [HEAD]
    assert await is_current(blank_database_url)


async def test_upgrade_twice_changes_nothing(blank_database_url: str) -> None:
    await upgrade(blank_database_url)
    before = await _schema(blank_database_url)
    sqlite_file = _sqlite_file(blank_database_url)
    file_before = sqlite_file.read_bytes() if sqlite_file else b""

    await upgrade(blank_database_url)

    assert await _schema(blank_database_url) == before
    if sqlite_file:
        assert sqlite_file.read_bytes() == file_before


async def test_concurrent_upgrades_in_one_process_all_succeed(blank_database_url: str) -> None:
    await asyncio.gather(*(upgrade(blank_database_url) for _ in range(4)))

    schema, revisions = await _schema(blank_database_url)
    assert set(schema) >= TABLES
    assert revisions == [HEAD]


async def test_concurrent_upgrades_from_separate_processes_all_succeed(
    blank_database_url: str,
) -> None:
    script = (
        "import asyncio, sys; from browserfleet.store.migrate import upgrade; "
        "asyncio.run(upgrade(sys.argv[1]))"
    )
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, blank_database_url)
        for _ in range(3)
    ]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=60)

    assert codes == [0, 0, 0]
    assert (await _schema(blank_database_url))[1] == [HEAD]


async def test_migrated_schema_matches_the_tables_module(database_url: str) -> None:
    """Types, nullability, server defaults, indexes, unique and foreign keys: the migrations
    build on each backend exactly what tables.py declares."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
    finally:
        await dispose(engine)
    assert diff == []


def _schema_diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_database_runs_in_wal_mode_after_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert mode == ("wal",)


async def test_upgrading_from_0001_keeps_only_a_digest_of_each_token(
    blank_database_url: str,
) -> None:
    engine = create_engine(blank_database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_config(sync), "0001"))
            await conn.run_sync(_insert_0001_rows)
    finally:
        await dispose(engine)

    await upgrade(blank_database_url)

    schema, revisions = await _schema(blank_database_url)
    columns = schema["sessions"][0]  # type: ignore[index]
    assert "token" not in {name for name, *_ in columns}
    assert ("token_digest", "VARCHAR(64)", False) in columns
    assert revisions == [HEAD]
    engine = create_engine(blank_database_url)
    try:
        async with engine.connect() as conn:
            digest = await conn.scalar(sa.text("SELECT token_digest FROM sessions"))
    finally:
        await dispose(engine)
    assert digest == hashlib.sha256(b"plain-token").hexdigest()


def _insert_0001_rows(conn: Connection) -> None:
    """A project and a stopped session as revision 0001 stored them (with the plain token)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    project_id, session_id = uuid.uuid4(), uuid.uuid4()
    projects = sa.table(
        "projects", sa.column("id", sa.Uuid()), sa.column("name"), sa.column("created_at")
    )
    conn.execute(projects.insert().values(id=project_id, name="p", created_at=at))
    flags = ("allow_resizing", "pdf_viewer", "enable_recording", "solve_captchas")
    numbers = ("timeout_minutes", "screen_width", "screen_height", "upfront_micros")
    times = ("created_at", "started_at", "timeout_at")
    sessions = sa.table(
        "sessions",
        sa.column("id", sa.Uuid()),
        sa.column("project_id", sa.Uuid()),
        sa.column("status"),
        sa.column("token"),
        sa.column("metadata_json", sa.JSON()),
        *(sa.column(name, sa.Boolean()) for name in flags),
        *(sa.column(name, sa.Integer()) for name in numbers),
        *(sa.column(name, sa.DateTime(timezone=True)) for name in times),
    )
    conn.execute(
        sessions.insert().values(
            id=session_id,
            project_id=project_id,
            status="stopped",
            token="plain-token",
            metadata_json={},
            **dict.fromkeys(flags, False),
            **dict.fromkeys(numbers, 1),
            **dict.fromkeys(times, at),
        )
    )


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database)
    return None


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_postgresql_migration_is_serialised_by_an_advisory_lock(
    blank_database_url: str,
) -> None:
    """While another session holds the migration lock, upgrade() waits for it (seen in
    pg_locks) instead of racing, then runs once it is released."""
    dsn = make_url(blank_database_url).set(drivername="postgresql").render_as_string(False)
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", _PG_MIGRATION_LOCK)
        async with asyncio.TaskGroup() as group:
            waiting = group.create_task(upgrade(blank_database_url))
            await _until_someone_waits_for_an_advisory_lock(holder)
            assert not waiting.done()
            await holder.execute("SELECT pg_advisory_unlock($1)", _PG_MIGRATION_LOCK)
    finally:
        await holder.close()
    assert (await _schema(blank_database_url))[1] == [HEAD]


async def _until_someone_waits_for_an_advisory_lock(conn: asyncpg.Connection) -> None:
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    async with asyncio.timeout(30):
        while await conn.fetchval(query) != 1:
            await asyncio.sleep(0.05)
