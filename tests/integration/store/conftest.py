"""Fixtures for store tests: a fresh migrated database per test (SQLite and PostgreSQL, see the
root conftest's `database_url`), its stores, and session values."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from store_builders import Maker

from browserfleet.ids import ProjectId
from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


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
