"""SqlProjectStore: projects, their API keys and credit balances, plus read helpers for the app.

Setting a balance (at creation or later) appends a credit_set ledger entry holding the new
balance, so the ledger alone explains every balance (see store/ledger.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sqlalchemy import ColumnElement, Insert, RowMapping, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from browserfleet.auth.model import ApiKeyRecord, Project
from browserfleet.auth.ports import UNSET, Unset
from browserfleet.errors import ApiKeyNotFound, ProjectNotFound
from browserfleet.ids import ApiKeyId, ProjectId, SessionId
from browserfleet.store import ledger
from browserfleet.store.ledger import LedgerEntry, LedgerKind
from browserfleet.store.session_queries import LIVE, values_of
from browserfleet.store.tables import api_keys, projects, sessions, shared_settings
from browserfleet.store.transactions import Transactions

# Every request looks its key up: built once, so SQLAlchemy keys and compiles it once.
_KEY_BY_DIGEST = select(api_keys).where(
    api_keys.c.digest == bindparam("presented"), api_keys.c.revoked_at.is_(None)
)


class SqlProjectStore:
    """The ProjectStore port on a SQLAlchemy async engine, plus counts and ledger reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._tx = Transactions(engine)

    async def create_project(
        self, name: str, *, concurrent_limit: int | None = None, credits_micros: int | None = None
    ) -> Project:
        project = Project(
            id=ProjectId(uuid4()),
            name=name,
            created_at=datetime.now(UTC),
            concurrent_limit=concurrent_limit,
            credit_balance_micros=credits_micros,
        )

        async def work(conn: AsyncConnection) -> None:
            if await _project_where(conn, projects.c.name == name) is not None:
                raise ValueError(f"a project named {name!r} already exists")
            await conn.execute(insert(projects).values(_project_values(project)))
            if credits_micros is not None:
                await _record_credit_set(conn, project.id, credits_micros)

        try:
            await self._tx.write(work)
        except IntegrityError as exc:  # another process took the name since our check
            raise ValueError(f"a project named {name!r} already exists") from exc
        return project

    async def get_project(self, project_id: ProjectId) -> Project | None:
        return await self._tx.read(lambda conn: _project_where(conn, projects.c.id == project_id))

    async def project_by_name(self, name: str) -> Project | None:
        return await self._tx.read(lambda conn: _project_where(conn, projects.c.name == name))

    async def list_projects(self) -> Sequence[Project]:
        stmt = select(projects).order_by(projects.c.created_at, projects.c.name)

        async def work(conn: AsyncConnection) -> list[Project]:
            return [_project(row) for row in (await conn.execute(stmt)).mappings()]

        return await self._tx.read(work)

    async def update_project(
        self,
        name: str,
        *,
        concurrent_limit: int | Unset | None = UNSET,
        credits_micros: int | Unset | None = UNSET,
    ) -> Project:
        changes: dict[str, int | None] = {}
        if not isinstance(concurrent_limit, Unset):
            changes["concurrent_limit"] = concurrent_limit
        if not isinstance(credits_micros, Unset):
            changes["credit_balance_micros"] = credits_micros

        async def work(conn: AsyncConnection) -> Project | None:
            project = await _project_where(conn, projects.c.name == name)
            if project is None:
                raise ProjectNotFound(name)
            if not changes:
                return project
            # The row is locked by this UPDATE before the credit_set entry gets its id.
            await conn.execute(update(projects).where(projects.c.id == project.id).values(changes))
            if not isinstance(credits_micros, Unset):
                await _record_credit_set(conn, project.id, credits_micros)
            return await _project_where(conn, projects.c.id == project.id)

        updated = await self._tx.write(work)
        if updated is None:
            raise ProjectNotFound(name)
        return updated

    async def add_api_key(self, project_id: ProjectId, digest: str, prefix: str) -> ApiKeyRecord:
        """Raises ProjectNotFound for an unknown project, ValueError for a digest already used."""
        record = ApiKeyRecord(
            id=ApiKeyId(uuid4()), project_id=project_id, prefix=prefix, created_at=datetime.now(UTC)
        )

        async def work(conn: AsyncConnection) -> None:
            if await _project_where(conn, projects.c.id == project_id) is None:
                raise ProjectNotFound(str(project_id))
            await conn.execute(insert(api_keys).values(_key_values(record, digest)))

        try:
            await self._tx.write(work)
        except IntegrityError as exc:
            raise ValueError("an API key with that digest already exists") from exc
        return record

    async def key_by_digest(self, digest: str) -> ApiKeyRecord | None:
        async def work(conn: AsyncConnection) -> ApiKeyRecord | None:
            row = (await conn.execute(_KEY_BY_DIGEST, {"presented": digest})).mappings().first()
            return None if row is None else _key(row)

        return await self._tx.read(work)

    async def list_keys(self, project_id: ProjectId | None = None) -> Sequence[ApiKeyRecord]:
        stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if project_id is not None:
            stmt = stmt.where(api_keys.c.project_id == project_id)

        async def work(conn: AsyncConnection) -> list[ApiKeyRecord]:
            return [_key(row) for row in (await conn.execute(stmt)).mappings()]

        return await self._tx.read(work)

    async def revoke_key(self, id_or_prefix: str) -> ApiKeyRecord:
        """By id (a UUID string) or by a prefix that names exactly one key. Revoking a revoked
        key returns it unchanged: of two revocations at once, only the first sets the time."""

        async def work(conn: AsyncConnection) -> ApiKeyRecord:
            key = await _key_by_id_or_prefix(conn, id_or_prefix)
            revoked = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key.id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
                .returning(*api_keys.c)
            )
            row = revoked.mappings().first()
            return _key(row) if row is not None else await _key_by_id_or_prefix(conn, str(key.id))

        return await self._tx.write(work)

    async def claim_shared(self, name: str, value: str) -> str:
        """The value every server on this database uses for `name`: `value` if this is the
        first to claim it (servers starting at once all get the first writer's), else the
        value already stored."""

        async def work(conn: AsyncConnection) -> str:
            await conn.execute(_insert_if_absent(conn.dialect.name, name, value))
            stored = await conn.scalar(
                select(shared_settings.c.value).where(shared_settings.c.name == name)
            )
            assert isinstance(stored, str)
            return stored

        return await self._tx.write(work)

    async def count_projects(self) -> int:
        async def work(conn: AsyncConnection) -> int:
            return await conn.scalar(select(func.count()).select_from(projects)) or 0

        return await self._tx.read(work)

    async def active_session_count(self, project_id: ProjectId) -> int:
        """Live (STARTING, ACTIVE, STOPPING) sessions of the project, counted from their rows;
        equal to Project.active_count, the slot counter reserve() checks."""
        stmt = (
            select(func.count())
            .select_from(sessions)
            .where(sessions.c.project_id == project_id, sessions.c.status.in_(values_of(LIVE)))
        )

        async def work(conn: AsyncConnection) -> int:
            return await conn.scalar(stmt) or 0

        return await self._tx.read(work)

    async def ledger_for_session(self, session_id: SessionId) -> Sequence[LedgerEntry]:
        return await self._tx.read(lambda conn: ledger.entries_for_session(conn, session_id))

    async def ledger_for_project(self, project_id: ProjectId) -> Sequence[LedgerEntry]:
        return await self._tx.read(lambda conn: ledger.entries_for_project(conn, project_id))


def _insert_if_absent(dialect: str, name: str, value: str) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING: the loser of a race waits for the winner's commit
    and then inserts nothing (no unique-violation error to handle)."""
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = make(shared_settings).values(name=name, value=value)
    return stmt.on_conflict_do_nothing(index_elements=[shared_settings.c.name])


async def _record_credit_set(
    conn: AsyncConnection, project_id: ProjectId, balance: int | None
) -> None:
    await ledger.append(
        conn,
        project_id=project_id,
        kind=LedgerKind.CREDIT_SET,
        amount_micros=balance,
        idempotency_key=f"credit_set:{project_id}:{uuid4()}",
    )


async def _key_by_id_or_prefix(conn: AsyncConnection, id_or_prefix: str) -> ApiKeyRecord:
    try:
        condition = api_keys.c.id == UUID(id_or_prefix)
    except ValueError:
        condition = api_keys.c.prefix == id_or_prefix
    rows = (await conn.execute(select(api_keys).where(condition).limit(2))).mappings().all()
    if len(rows) != 1:
        raise ApiKeyNotFound(id_or_prefix)
    return _key(rows[0])


async def _project_where(conn: AsyncConnection, condition: ColumnElement[bool]) -> Project | None:
    row = (await conn.execute(select(projects).where(condition))).mappings().first()
    return None if row is None else _project(row)


def _project_values(project: Project) -> dict[str, object]:
    return {
        "id": project.id,
        "name": project.name,
        "created_at": project.created_at,
        "concurrent_limit": project.concurrent_limit,
        "credit_balance_micros": project.credit_balance_micros,
        "active_count": project.active_count,
    }


def _project(m: RowMapping) -> Project:
    return Project(
        id=ProjectId(m["id"]),
        name=m["name"],
        created_at=m["created_at"],
        concurrent_limit=m["concurrent_limit"],
        credit_balance_micros=m["credit_balance_micros"],
        active_count=m["active_count"],
    )


def _key_values(record: ApiKeyRecord, digest: str) -> dict[str, object]:
    return {
        "id": record.id,
        "project_id": record.project_id,
        "digest": digest,
        "prefix": record.prefix,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


def _key(m: RowMapping) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=ApiKeyId(m["id"]),
        project_id=ProjectId(m["project_id"]),
        prefix=m["prefix"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )
