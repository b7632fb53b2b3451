"""SqlProfileStore: a project's profiles and the pointer to each one's current saved state.

The pointer moves in one conditional UPDATE (the row must exist, and must not hold the state of a
session that stopped later), so a save racing a delete never brings the profile back, and of two
concurrent sessions the last to stop wins whichever save finishes first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from browserfleet.errors import ProfileLimitReached, ProfileNotFound
from browserfleet.ids import ProjectId
from browserfleet.profiles.model import (
    UNSET,
    Profile,
    ProfilePage,
    ProfilePatch,
    ProfileQuery,
    SavedVersion,
)
from browserfleet.store.tables import profiles, projects
from browserfleet.store.transactions import Transactions


class SqlProfileStore:
    """The ProfileStore port on a SQLAlchemy async engine (SQLite or PostgreSQL), through the
    same transaction runner as the other stores (conflicts retried, an unavailable database
    raised as DatabaseUnavailable)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._tx = Transactions(engine)

    async def create(self, profile: Profile, cap: int | None) -> None:
        async def work(conn: AsyncConnection) -> None:
            if cap is not None:
                # The project's row lock serializes creates of one project (PostgreSQL), so
                # two concurrent creates cannot both see room for one more.
                await conn.execute(
                    select(projects.c.id)
                    .where(projects.c.id == profile.project_id)
                    .with_for_update()
                )
                count = await conn.scalar(
                    select(func.count())
                    .select_from(profiles)
                    .where(profiles.c.project_id == profile.project_id)
                )
                if (count or 0) >= cap:
                    raise ProfileLimitReached(f"{count} of at most {cap} profiles")
            await conn.execute(insert(profiles).values(_values(profile)))

        await self._tx.write(work)

    async def get(self, project_id: ProjectId, profile_id: str) -> Profile:
        where = _one(project_id, profile_id)

        async def work(conn: AsyncConnection) -> RowMapping | None:
            return (await conn.execute(select(profiles).where(*where))).mappings().first()

        row = await self._tx.read(work)
        if row is None:
            raise ProfileNotFound(profile_id)
        return _profile(row)

    async def list(self, project_id: ProjectId, query: ProfileQuery) -> ProfilePage:
        if query.page_size < 1 or query.page_number < 1:
            raise ValueError("page_size and page_number start at 1")
        conditions: list[ColumnElement[bool]] = [profiles.c.project_id == project_id]
        if query.text:
            pattern = "%" + _escape_like(query.text.lower()) + "%"
            conditions.append(
                or_(
                    func.lower(profiles.c.name).like(pattern, escape="\\"),
                    func.lower(profiles.c.user_id).like(pattern, escape="\\"),
                )
            )
        page = (
            select(profiles)
            .where(*conditions)
            .order_by(profiles.c.created_at.desc(), profiles.c.id.desc())
            .limit(query.page_size)
            .offset((query.page_number - 1) * query.page_size)
        )

        async def work(conn: AsyncConnection) -> ProfilePage:
            total = await conn.scalar(select(func.count()).select_from(profiles).where(*conditions))
            rows = (await conn.execute(page)).mappings().all()
            return ProfilePage(items=tuple(_profile(r) for r in rows), total=total or 0)

        return await self._tx.read(work)

    async def update(
        self, project_id: ProjectId, profile_id: str, patch: ProfilePatch, at: datetime
    ) -> Profile:
        values: dict[str, object] = {"updated_at": at}
        if patch.name is not UNSET:
            values["name"] = patch.name
        if patch.user_id is not UNSET:
            values["user_id"] = patch.user_id
        where = _one(project_id, profile_id)

        async def work(conn: AsyncConnection) -> RowMapping | None:
            statement = update(profiles).where(*where).values(**values).returning(*profiles.c)
            return (await conn.execute(statement)).mappings().first()

        row = await self._tx.write(work)
        if row is None:
            raise ProfileNotFound(profile_id)
        return _profile(row)

    async def delete(self, project_id: ProjectId, profile_id: str) -> None:
        where = _one(project_id, profile_id)

        async def work(conn: AsyncConnection) -> int:
            return (await conn.execute(delete(profiles).where(*where))).rowcount

        if await self._tx.write(work) == 0:
            raise ProfileNotFound(profile_id)

    async def mark_used(self, project_id: ProjectId, profile_id: str, at: datetime) -> None:
        where = _one(project_id, profile_id)

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(update(profiles).where(*where).values(last_used_at=at))

        await self._tx.write(work)

    async def set_version(
        self, project_id: ProjectId, profile_id: str, version: SavedVersion, at: datetime
    ) -> tuple[bool, str | None]:
        where = _one(project_id, profile_id)

        async def work(conn: AsyncConnection) -> tuple[bool, str | None]:
            # Locked (PostgreSQL), so the version read here is the one this update replaces.
            before = await conn.scalar(
                select(profiles.c.version_key).where(*where).with_for_update()
            )
            result = await conn.execute(
                update(profiles)
                .where(
                    *where,
                    or_(profiles.c.saved_at.is_(None), profiles.c.saved_at <= version.stopped_at),
                )
                .values(
                    version_key=version.key,
                    version_bytes=version.size,
                    cookie_domains=list(version.cookie_domains),
                    saved_at=version.stopped_at,
                    updated_at=at,
                )
            )
            if result.rowcount == 0:
                return False, None
            return True, before

        return await self._tx.write(work)


def _one(project_id: ProjectId, profile_id: str) -> Sequence[ColumnElement[bool]]:
    try:
        key = uuid.UUID(profile_id)
    except ValueError:
        raise ProfileNotFound(profile_id) from None
    return (profiles.c.id == key, profiles.c.project_id == project_id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _values(profile: Profile) -> dict[str, object]:
    return {
        "id": uuid.UUID(profile.id),
        "project_id": profile.project_id,
        "name": profile.name,
        "user_id": profile.user_id,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
        "last_used_at": profile.last_used_at,
        "cookie_domains": None if profile.cookie_domains is None else list(profile.cookie_domains),
        "version_key": profile.version_key,
        "version_bytes": profile.version_bytes,
        "saved_at": profile.saved_at,
    }


def _profile(row: RowMapping) -> Profile:
    domains = row["cookie_domains"]
    return Profile(
        id=str(row["id"]),
        project_id=ProjectId(row["project_id"]),
        name=row["name"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_used_at=row["last_used_at"],
        cookie_domains=None if domains is None else tuple(str(d) for d in domains),
        version_key=row["version_key"],
        version_bytes=row["version_bytes"],
        saved_at=row["saved_at"],
    )
