"""SqlSessionStore: sessions, their concurrency slots and their money, in short transactions.

Every status change is one conditional UPDATE guarded by the lifecycle's `allowed_from(event)`,
so when two processes race on one session exactly one of them moves it and books its money;
the other finds the row already moved and gets it back unchanged (or an error). On PostgreSQL
(READ COMMITTED) the loser's UPDATE waits for the winner's commit and then re-checks its WHERE
on the new row, so the check and the write are one atomic step there too.

Lock order, the same in every transaction that moves money: the session's row, then its
project's row, then the ledger entries. The ledger's ids are therefore handed out while the
project row is locked, and replaying a project's entries in id order gives its balance even
when servers on several hosts book at once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    Update,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from browserfleet.clock import Clock, utc_now
from browserfleet.errors import (
    AccountNotFound,
    ConcurrencyLimitReached,
    DomainError,
    InsufficientCredits,
    SessionNotFound,
)
from browserfleet.ids import ApiKeyId, InstanceId, ProjectId, SessionId
from browserfleet.sessions.lifecycle import (
    InvalidTransition,
    SessionEvent,
    allowed_from,
    next_status,
)
from browserfleet.sessions.model import (
    Session,
    SessionPage,
    SessionQuery,
    SessionStatus,
    StopReason,
)
from browserfleet.sessions.ports import InstanceRecord
from browserfleet.store import ledger
from browserfleet.store.ledger import LedgerKind
from browserfleet.store.session_queries import LIVE, list_conditions, values_of
from browserfleet.store.session_rows import session_from_row, session_values
from browserfleet.store.tables import instances, projects, session_metadata, sessions
from browserfleet.store.transactions import Transactions

_E = SessionEvent
DEFAULT_ORPHAN_AFTER = timedelta(seconds=60)


class SqlSessionStore:
    """The SessionStore port on a SQLAlchemy async engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        orphan_after: timedelta = DEFAULT_ORPHAN_AFTER,
        clock: Clock = utc_now,
    ) -> None:
        """`orphan_after`: how long an owner may stay silent before adopt() may take its
        sessions; give it the same value the reaper uses to compute orphaned()'s stale_before.
        `clock` stamps what the store decides by itself (failure times, ledger entries)."""
        self._engine = engine
        self._tx = Transactions(engine)
        self._orphan_after = orphan_after
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        """For other stores on the same database (profiles)."""
        return self._engine

    async def reserve(self, session: Session, default_limit: int) -> None:
        if session.status is not SessionStatus.STARTING:
            raise ValueError(f"reserve takes a STARTING session, not {session.status}")

        async def work(conn: AsyncConnection) -> None:
            if not await _take_slot(conn, session, default_limit):
                raise await _refusal(conn, session)
            await conn.execute(insert(sessions).values(session_values(session)))
            if session.request.metadata:
                await conn.execute(
                    insert(session_metadata),
                    [
                        {"session_id": session.id, "key": key, "value": value}
                        for key, value in session.request.metadata.items()
                    ],
                )
            await ledger.append(
                conn,
                project_id=session.project_id,
                session_id=session.id,
                kind=LedgerKind.CHARGE,
                amount_micros=-session.upfront_micros,
                idempotency_key=ledger.charge_key(session.id),
                at=self._clock(),
            )

        await self._tx.write(work)

    async def mark_active(self, session_id: SessionId, *, pid: int, session_dir: str) -> Session:
        async def work(conn: AsyncConnection) -> Session:
            moved = await _move(
                conn, session_id, _E.LAUNCHED, browser_pid=pid, session_dir=session_dir
            )
            if moved is not None:
                return moved
            raise _refused_move(await _current(conn, session_id), _E.LAUNCHED)

        return await self._tx.write(work)

    async def mark_failed(self, session_id: SessionId) -> None:
        """STARTING -> FAILED with a full refund; a session already FAILED is left as it is."""

        async def work(conn: AsyncConnection) -> None:
            if await self._fail(conn, session_id) is None:
                current = await _current(conn, session_id)
                if current is not None and current.status is SessionStatus.FAILED:
                    return
                raise _refused_move(current, _E.LAUNCH_FAILED)

        await self._tx.write(work)

    async def fail_if_starting(self, session_id: SessionId) -> Session | None:
        """A repair: STARTING -> FAILED with a full refund, if the row is (still) STARTING.

        Returns the failed session, or None when there is no such row or it has moved on
        (its create finished meanwhile, or another repair got there first)."""
        return await self._tx.write(lambda conn: self._fail(conn, session_id))

    async def _fail(self, conn: AsyncConnection, session_id: SessionId) -> Session | None:
        moved = await _move(
            conn, session_id, _E.LAUNCH_FAILED, finished_at=self._clock(), cost_micros=0
        )
        if moved is not None:
            await _refund_and_release(conn, moved, moved.upfront_micros, at=self._clock())
        return moved

    async def request_stop(
        self, session_id: SessionId, reason: StopReason, at: datetime
    ) -> Session:
        async def work(conn: AsyncConnection) -> Session:
            moved = await _move(
                conn, session_id, _E.STOP_REQUESTED, stop_reason=reason.value, finished_at=at
            )
            if moved is not None:
                return moved
            current = await _current(conn, session_id)
            if current is None or not current.is_visible:
                raise SessionNotFound(str(session_id))  # a STARTING session cannot be stopped yet
            return _unchanged(current, _E.STOP_REQUESTED)

        return await self._tx.write(work)

    async def mark_ended(self, session_id: SessionId) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
                .values(ended_at=self._clock())
            )

        await self._tx.write(work)

    async def ending_with_profile(
        self, project_id: ProjectId, profile_id: str, since: datetime
    ) -> int:
        async def work(conn: AsyncConnection) -> int:
            count = await conn.scalar(
                select(func.count())
                .select_from(sessions)
                .where(
                    sessions.c.project_id == project_id,
                    sessions.c.profile_id == profile_id,
                    # An end whose server died is never coming: not worth a wait.
                    sessions.c.owner.in_(
                        select(instances.c.id).where(
                            instances.c.heartbeat_at >= self._clock() - self._orphan_after
                        )
                    ),
                    or_(
                        sessions.c.status == SessionStatus.STOPPING.value,
                        (sessions.c.status == SessionStatus.STOPPED.value)
                        & sessions.c.ended_at.is_(None)
                        & (sessions.c.finished_at >= since),
                    ),
                )
            )
            return int(count or 0)

        return await self._tx.read(work)

    async def finalize(
        self,
        session_id: SessionId,
        *,
        cost_micros: int,
        proxy_bytes: int,
        proxy_cost_micros: int = 0,
    ) -> Session:
        """STOPPING -> STOPPED. The refund (upfront - cost) is booked even when it is 0, so every
        finished session has exactly one charge and one refund entry; egress traffic, when it
        cost anything, is one more entry. All in one transaction, all idempotent."""
        if min(cost_micros, proxy_bytes, proxy_cost_micros) < 0:
            raise ValueError("costs and proxy_bytes cannot be negative")

        async def work(conn: AsyncConnection) -> Session:
            moved = await _move(
                conn,
                session_id,
                _E.FINALIZED,
                cost_micros=cost_micros,
                proxy_bytes=proxy_bytes,
                proxy_cost_micros=proxy_cost_micros,
            )
            if moved is None:
                return _unchanged(await _current(conn, session_id), _E.FINALIZED)
            if cost_micros > moved.upfront_micros:
                raise ValueError(f"cost {cost_micros} exceeds the upfront {moved.upfront_micros}")
            await _refund_and_release(
                conn,
                moved,
                moved.upfront_micros - cost_micros,
                proxy_cost_micros,
                at=self._clock(),
            )
            return moved

        return await self._tx.write(work)

    async def get(self, project_id: ProjectId, session_id: SessionId) -> Session:
        session = await self.get_any(session_id)
        if session is None or session.project_id != project_id or not session.is_visible:
            raise SessionNotFound(str(session_id))
        return session

    async def get_any(self, session_id: SessionId) -> Session | None:
        return await self._tx.read(lambda conn: _current(conn, session_id))

    async def list(self, project_id: ProjectId, query: SessionQuery) -> SessionPage:
        if query.page_size < 1 or query.page_number < 1:
            raise ValueError("page_size and page_number start at 1")
        conditions = list_conditions(project_id, query)
        page = (
            select(sessions)
            .where(*conditions)
            .order_by(sessions.c.started_at.desc(), sessions.c.id.desc())
            .limit(query.page_size)
            .offset((query.page_number - 1) * query.page_size)
        )

        async def work(conn: AsyncConnection) -> SessionPage:
            total = await conn.scalar(select(func.count()).select_from(sessions).where(*conditions))
            items = await _sessions(conn, page)
            return SessionPage(items=tuple(items), total=total or 0)

        return await self._tx.read(work)

    async def stop_created_by(self, api_key_id: ApiKeyId, at: datetime) -> Sequence[SessionId]:
        """Ask every active session created with that key to stop (each owner's reaper then
        tears it down and bills it); returns their ids."""
        live = await self._select(
            sessions.c.api_key_id == api_key_id,
            sessions.c.status == SessionStatus.ACTIVE.value,
        )
        stopped: list[SessionId] = []
        for session in live:
            await self.request_stop(session.id, StopReason.USER, at)
            stopped.append(session.id)
        return stopped

    async def live_owned_by(self, owner: InstanceId) -> Sequence[Session]:
        return await self._select(sessions.c.owner == owner, sessions.c.status.in_(values_of(LIVE)))

    async def heartbeat(
        self,
        owner: InstanceId,
        host: str,
        pid: int,
        at: datetime,
        public_url: str | None = None,
    ) -> None:
        """Upsert this instance's row, in one statement (INSERT ... ON CONFLICT DO UPDATE):
        two heartbeats at once (the loop and a readiness probe) cannot both insert it."""
        values = {"host": host, "pid": pid, "heartbeat_at": at, "public_url": public_url}

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(_upsert_instance(conn.dialect.name, owner, values))

        await self._tx.write(work)

    async def forget_instance(self, owner: InstanceId) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(instances.delete().where(instances.c.id == owner))

        await self._tx.write(work)

    async def orphaned(
        self,
        stale_before: datetime,
        exclude: InstanceId,
        dead: frozenset[InstanceId] = frozenset(),
    ) -> Sequence[Session]:
        """Live sessions with no owner, or whose owner has no instance row or a stale one, or
        is among `dead` (instances known to be gone whatever their last heartbeat says)."""
        return await self._select(
            sessions.c.status.in_(values_of(LIVE)),
            or_(sessions.c.owner.is_(None), sessions.c.owner != exclude),
            or_(~_owner_heard_since(stale_before), sessions.c.owner.in_(sorted(dead))),
        )

    async def instances(self) -> Sequence[InstanceRecord]:
        async def work(conn: AsyncConnection) -> list[InstanceRecord]:
            rows = await conn.execute(select(instances).order_by(instances.c.id))
            return [
                InstanceRecord(
                    id=InstanceId(m["id"]),
                    host=m["host"],
                    pid=m["pid"],
                    heartbeat_at=m["heartbeat_at"],
                    public_url=m["public_url"],
                )
                for m in rows.mappings()
            ]

        return await self._tx.read(work)

    async def live_pids(self, host: str) -> frozenset[int]:
        """Browser pids of live sessions owned by an instance on `host`, or by no instance.

        A pid means something only on its own host: another host's browser pid must not save a
        local stray that happens to carry the same number from the sweep.
        """
        stmt = (
            select(sessions.c.browser_pid)
            .select_from(sessions.outerjoin(instances, instances.c.id == sessions.c.owner))
            .where(
                sessions.c.status.in_(values_of(LIVE)),
                sessions.c.browser_pid.is_not(None),
                or_(sessions.c.owner.is_(None), instances.c.host == host),
            )
        )

        async def work(conn: AsyncConnection) -> frozenset[int]:
            return frozenset((await conn.scalars(stmt)).all())

        return await self._tx.read(work)

    async def adopt(
        self, session_id: SessionId, new_owner: InstanceId, dead_owner: InstanceId | None = None
    ) -> Session | None:
        """Take over a live session whose owner is still silent, by compare-and-set.

        The session is read, then one conditional UPDATE takes it only if its owner is still
        the one read and that owner has sent no heartbeat within `orphan_after` (unless it is
        `dead_owner`, an instance known to be gone: its process no longer exists). When two
        instances race to adopt one orphan, the loser's UPDATE finds a different owner and
        changes nothing, so it gets None. The owner equality is what makes this hold on
        PostgreSQL: under READ COMMITTED a blocked UPDATE re-checks its WHERE clause against the
        winner's row, but re-uses the first evaluation of a NOT EXISTS over another table, so
        the heartbeat condition alone let several adopters win. Adopting a session one already
        owns returns it unchanged.
        """
        stale_before = self._clock() - self._orphan_after
        owner_gone = ~_owner_heard_since(stale_before)
        if dead_owner is not None:
            owner_gone = or_(owner_gone, sessions.c.owner == dead_owner)

        async def work(conn: AsyncConnection) -> Session | None:
            current = await _current(conn, session_id)
            if current is None or not current.is_live:
                return None
            if current.owner == new_owner:
                return current
            same_owner = (
                sessions.c.owner.is_(None)
                if current.owner is None
                else sessions.c.owner == current.owner
            )
            stmt = (
                update(sessions)
                .where(
                    sessions.c.id == session_id,
                    sessions.c.status.in_(values_of(LIVE)),
                    same_owner,
                    owner_gone,
                )
                .values(owner=new_owner)
                .returning(*sessions.c)
            )
            row = (await conn.execute(stmt)).mappings().first()
            return session_from_row(row) if row is not None else None

        return await self._tx.write(work)

    async def _select(self, *conditions: ColumnElement[bool]) -> Sequence[Session]:
        stmt = select(sessions).where(*conditions).order_by(sessions.c.started_at, sessions.c.id)
        return await self._tx.read(lambda conn: _sessions(conn, stmt))


def _upsert_instance(dialect: str, owner: InstanceId, values: dict[str, object]) -> Insert:
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = make(instances).values(id=owner, **values)
    return stmt.on_conflict_do_update(index_elements=[instances.c.id], set_=values)


def _owner_heard_since(stale_before: datetime) -> ColumnElement[bool]:
    """The session's owner has an instance row with a heartbeat at or after stale_before."""
    return (
        select(instances.c.id)
        .where(instances.c.id == sessions.c.owner, instances.c.heartbeat_at >= stale_before)
        .exists()
    )


async def _take_slot(conn: AsyncConnection, session: Session, default_limit: int) -> bool:
    """Take a concurrency slot and the upfront charge, if both are available (one UPDATE)."""
    balance = projects.c.credit_balance_micros
    upfront = session.upfront_micros
    hit = await conn.execute(
        update(projects)
        .where(
            projects.c.id == session.project_id,
            projects.c.active_count < func.coalesce(projects.c.concurrent_limit, default_limit),
            or_(balance.is_(None), balance >= upfront),
        )
        .values(
            active_count=projects.c.active_count + 1,
            credit_balance_micros=case((balance.is_(None), None), else_=balance - upfront),
        )
    )
    return hit.rowcount == 1


async def _refusal(conn: AsyncConnection, session: Session) -> DomainError:
    """Why _take_slot found no row: the project is gone, then credits, then concurrency."""
    balance = await conn.execute(
        select(projects.c.credit_balance_micros).where(projects.c.id == session.project_id)
    )
    row = balance.first()
    if row is None:
        return AccountNotFound(str(session.project_id))
    if row.credit_balance_micros is not None and row.credit_balance_micros < session.upfront_micros:
        return InsufficientCredits(str(session.project_id))
    return ConcurrencyLimitReached(str(session.project_id))


def _changing_statuses(event: SessionEvent) -> list[SessionStatus]:
    """Statuses the event changes; the others in allowed_from(event) stay as they are."""
    return [s for s in allowed_from(event) if next_status(s, event) is not s]


async def _move(
    conn: AsyncConnection, session_id: SessionId, event: SessionEvent, **values: object
) -> Session | None:
    """Apply `event` if the row is in a status it changes; the moved session, else None."""
    params = {f"new_{name}": value for name, value in values.items()}
    params["moved_id"] = session_id
    stmt = _move_statement(event, tuple(sorted(values)))
    row = (await conn.execute(stmt, params)).mappings().first()
    return None if row is None else session_from_row(row)


@functools.cache
def _move_statement(event: SessionEvent, names: tuple[str, ...]) -> Update:
    """The conditional UPDATE of `event` setting these columns, built once: a statement object
    is immutable, so SQLAlchemy's cache key for it is computed once too (building and keying
    it anew was most of a stop's database time). Parameters: moved_id, new_<column>."""
    changing = _changing_statuses(event)
    new_status = case(
        {s.value: next_status(s, event).value for s in changing}, value=sessions.c.status
    )
    return (
        update(sessions)
        .where(
            sessions.c.id == bindparam("moved_id"),
            sessions.c.status.in_(values_of(changing)),
        )
        .values(status=new_status, **{name: bindparam(f"new_{name}") for name in names})
        .returning(*sessions.c)
    )


def _unchanged(current: Session | None, event: SessionEvent) -> Session:
    """A session the event leaves as it is (a retried stop or finalize), else the error."""
    if current is not None and current.status in allowed_from(event):
        return current
    raise _refused_move(current, event)


def _refused_move(current: Session | None, event: SessionEvent) -> Exception:
    if current is None:
        return SessionNotFound(f"no session for {event}")
    return InvalidTransition(current.status, event)


async def _refund_and_release(
    conn: AsyncConnection, session: Session, refund: int, egress: int = 0, *, at: datetime
) -> None:
    """Free the slot and book the refund (and the egress charge, if any). The project's row
    is locked first (see the module docstring: ledger ids follow the project lock)."""
    await ledger.release_slot(conn, session.project_id, refund - egress)
    if egress:
        await ledger.append(
            conn,
            project_id=session.project_id,
            session_id=session.id,
            kind=LedgerKind.EGRESS,
            amount_micros=-egress,
            idempotency_key=ledger.egress_key(session.id),
            at=at,
        )
    await ledger.append(
        conn,
        project_id=session.project_id,
        session_id=session.id,
        kind=LedgerKind.REFUND,
        amount_micros=refund,
        idempotency_key=ledger.refund_key(session.id),
        at=at,
    )


async def _current(conn: AsyncConnection, session_id: SessionId) -> Session | None:
    found = await _sessions(conn, select(sessions).where(sessions.c.id == session_id))
    return found[0] if found else None


async def _sessions(conn: AsyncConnection, stmt: Select[tuple[object, ...]]) -> list[Session]:
    result = await conn.execute(stmt)
    return [session_from_row(row) for row in result.mappings()]
