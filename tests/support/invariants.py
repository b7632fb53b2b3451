"""What must hold in a server's database after any crash, once it has restarted or swept:
no session in an intermediate status, every charge settled exactly once, slots and balances
equal to what the ledger says. Read with the sqlite3 module, outside the server."""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

INTERMEDIATE = ("starting", "stopping")


def ledger_problems(db_path: Path) -> list[str]:
    """Every broken invariant, in words; empty when the books balance."""
    problems: list[str] = []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        sessions = db.execute(
            "SELECT id, project_id, status, upfront_micros, cost_micros FROM sessions"
        ).fetchall()
        entries = db.execute(
            "SELECT session_id, kind, amount_micros FROM ledger_entries"
            " WHERE session_id IS NOT NULL"
        ).fetchall()
        projects = db.execute(
            "SELECT id, name, active_count, credit_balance_micros FROM projects"
        ).fetchall()
        project_entries = db.execute(
            "SELECT project_id, kind, amount_micros FROM ledger_entries ORDER BY id"
        ).fetchall()
    problems += _session_problems(sessions, entries)
    active = Counter(project for _id, project, status, *_ in sessions if status == "active")
    for pid, name, active_count, balance in projects:
        if active_count != active[pid]:
            problems.append(f"project {name} holds {active_count} slots, runs {active[pid]}")
        if balance is not None:
            replayed = _replay([(k, a) for p, k, a in project_entries if p == pid])
            if replayed != balance:
                problems.append(f"project {name} balance {balance}, ledger says {replayed}")
    return problems


def _session_problems(sessions: list[Any], entries: list[Any]) -> list[str]:
    """Each session: not intermediate, charged once, refunded once (exactly) if finished."""
    problems: list[str] = []
    kinds = Counter((sid, kind) for sid, kind, _ in entries)
    amounts = {(sid, kind): amount for sid, kind, amount in entries}
    for sid, _project, status, upfront, cost in sessions:
        if status in INTERMEDIATE:
            problems.append(f"session {sid} is still {status}")
        if kinds[(sid, "charge")] != 1:
            problems.append(f"session {sid} has {kinds[(sid, 'charge')]} charges")
        refunds = kinds[(sid, "refund")]
        if status in ("stopped", "failed"):
            expected = upfront - (cost or 0)
            if refunds != 1 or amounts.get((sid, "refund")) != expected:
                problems.append(
                    f"{status} session {sid}: {refunds} refund(s) of "
                    f"{amounts.get((sid, 'refund'))}, expected one of {expected}"
                )
        elif refunds:
            problems.append(f"{status} session {sid} was refunded")
    return problems


def _replay(entries: list[tuple[str, int | None]]) -> int | None:
    balance: int | None = None
    for kind, amount in entries:
        if kind == "credit_set":
            balance = amount
        elif balance is not None and amount is not None:
            balance += amount
    return balance


def statuses(db_path: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, status FROM sessions").fetchall()
    return {str(uuid.UUID(sid)): status for sid, status in rows}
