"""The append-only money ledger and the project balance it moves, inside the caller's transaction.

Sign convention: `amount_micros` of a charge or refund is its signed effect on the project's
balance (a charge is negative, a refund positive); a credit_set entry holds the new absolute
balance, NULL meaning unlimited. Replaying a project's entries in id order therefore reproduces
its balance. Every entry has a unique idempotency key, so a retried step never books twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import RowMapping, bindparam, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from browserfleet.ids import ProjectId, SessionId
from browserfleet.store.tables import ledger_entries, projects


class LedgerKind(StrEnum):
    CHARGE = "charge"  # the upfront charge when a session is reserved
    REFUND = "refund"  # unused upfront money given back at stop, or all of it on a failed launch
    CREDIT_SET = "credit_set"  # an operator set the balance
    EGRESS = "egress"  # traffic through the session's egress proxy, charged at stop


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    project_id: ProjectId
    session_id: SessionId | None
    kind: LedgerKind
    amount_micros: int | None  # signed delta; for CREDIT_SET the new balance (None: unlimited)
    idempotency_key: str
    created_at: datetime


def charge_key(session_id: SessionId) -> str:
    return f"charge:{session_id}"


def refund_key(session_id: SessionId) -> str:
    return f"refund:{session_id}"


def egress_key(session_id: SessionId) -> str:
    return f"egress:{session_id}"


async def append(
    conn: AsyncConnection,
    *,
    project_id: ProjectId,
    kind: LedgerKind,
    amount_micros: int | None,
    idempotency_key: str,
    session_id: SessionId | None = None,
    at: datetime | None = None,
) -> None:
    """Append one entry (stamped `at`, else now); a repeated idempotency key violates the
    unique constraint."""
    await conn.execute(
        _APPEND,
        {
            "project_id": project_id,
            "session_id": session_id,
            "kind": kind.value,
            "amount_micros": amount_micros,
            "idempotency_key": idempotency_key,
            "created_at": at or datetime.now(UTC),
        },
    )


async def release_slot(conn: AsyncConnection, project_id: ProjectId, refund_micros: int) -> None:
    """Give a session's slot back and credit a refund to a limited (non-NULL) balance."""
    await conn.execute(_RELEASE_SLOT, {"slot_project": project_id, "refund": refund_micros})


# Built once (statements are immutable, so SQLAlchemy keys and compiles each once), executed
# with parameters: these run in every stop.
_APPEND = insert(ledger_entries)
_BALANCE = projects.c.credit_balance_micros
_RELEASE_SLOT = (
    update(projects)
    .where(projects.c.id == bindparam("slot_project"))
    .values(
        active_count=projects.c.active_count - 1,
        credit_balance_micros=case(
            (_BALANCE.is_(None), None),
            else_=_BALANCE + bindparam("refund", type_=_BALANCE.type),
        ),
    )
)


async def entries_for_session(conn: AsyncConnection, session_id: SessionId) -> list[LedgerEntry]:
    rows = await conn.execute(
        select(ledger_entries)
        .where(ledger_entries.c.session_id == session_id)
        .order_by(ledger_entries.c.id)
    )
    return [_entry(row) for row in rows.mappings()]


async def entries_for_project(conn: AsyncConnection, project_id: ProjectId) -> list[LedgerEntry]:
    rows = await conn.execute(
        select(ledger_entries)
        .where(ledger_entries.c.project_id == project_id)
        .order_by(ledger_entries.c.id)
    )
    return [_entry(row) for row in rows.mappings()]


def replay_balance(entries: Sequence[LedgerEntry]) -> int | None:
    """The balance a project's entries imply (None: unlimited), per the sign convention above."""
    balance: int | None = None
    for entry in entries:
        if entry.kind is LedgerKind.CREDIT_SET:
            balance = entry.amount_micros
        elif balance is not None and entry.amount_micros is not None:
            balance += entry.amount_micros
    return balance


def _entry(m: RowMapping) -> LedgerEntry:
    session_id = m["session_id"]
    return LedgerEntry(
        id=int(m["id"]),
        project_id=ProjectId(m["project_id"]),
        session_id=None if session_id is None else SessionId(session_id),
        kind=LedgerKind(m["kind"]),
        amount_micros=m["amount_micros"],
        idempotency_key=m["idempotency_key"],
        created_at=m["created_at"],
    )
