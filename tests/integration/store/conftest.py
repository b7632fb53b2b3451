"""Fixtures for store tests: a migrated SQLite file per test, its stores, and session values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from store_builders import Maker

from browserfleet.ids import ProjectId
from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.migrate import upgrade
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "browserfleet.sqlite3"


@pytest.fixture
async def db_url(db_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{db_path}"
    await upgrade(url)
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await dispose(engine)


@pytest.fixture
def session_store(engine: AsyncEngine) -> SqlSessionStore:
    return SqlSessionStore(engine)


@pytest.fixture
def project_store(engine: AsyncEngine) -> SqlProjectStore:
    return SqlProjectStore(engine)


@pytest.fixture
async def project_id(project_store: SqlProjectStore) -> ProjectId:
    return (await project_store.create_project("acme")).id


@pytest.fixture
def make(session_store: SqlSessionStore) -> Maker:
    return Maker(session_store)
