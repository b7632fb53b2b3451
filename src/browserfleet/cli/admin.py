"""Operator commands on the shared database: migrate, keys, projects. Safe while a server runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from browserfleet.auth.keys import mint_key
from browserfleet.auth.model import DEFAULT_PROJECT_NAME
from browserfleet.auth.ports import UNSET, Unset
from browserfleet.billing.pricing import format_usd, usd_to_micros
from browserfleet.bootstrap import open_stores
from browserfleet.cli.doctor import redact
from browserfleet.errors import ProjectNotFound
from browserfleet.settings import Settings
from browserfleet.store.projects import SqlProjectStore

AddSettings = Callable[[argparse.ArgumentParser], None]


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _run(settings: Settings, work: Callable[[SqlProjectStore], Coroutine[Any, Any, None]]) -> int:
    async def main() -> None:
        async with open_stores(settings) as (projects, _sessions):
            await work(projects)

    asyncio.run(main())
    return 0


def migrate(settings: Settings, _args: argparse.Namespace) -> int:
    async def nothing(_projects: SqlProjectStore) -> None:
        _out(f"database {redact(settings.effective_database_url())} is up to date")

    return _run(settings, nothing)


def _credits(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal amount: {text!r}") from None
    if value < 0 or not value.is_finite():
        raise argparse.ArgumentTypeError("credits must be a non-negative amount in USD")
    return value


def _limit(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("the concurrent limit must be at least 1")
    return value


def add_key_commands(parser: argparse.ArgumentParser, settings_args: AddSettings) -> None:
    sub = parser.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key; prints it once, on the last line")
    create.add_argument("--project", default=DEFAULT_PROJECT_NAME)
    create.set_defaults(run=create_key)
    listing = sub.add_parser("list", help="list keys (prefixes only)")
    listing.add_argument("--project")
    listing.set_defaults(run=list_keys)
    revoke = sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    revoke.add_argument(
        "--stop-sessions",
        action="store_true",
        help="also stop the active sessions created with this key",
    )
    revoke.set_defaults(run=revoke_key)
    for p in (create, listing, revoke):
        settings_args(p)


def add_project_commands(parser: argparse.ArgumentParser, settings_args: AddSettings) -> None:
    sub = parser.add_subparsers(dest="projects_command", required=True)
    create = sub.add_parser("create", help="create a project")
    set_ = sub.add_parser("set", help="change a project's limit or credits")
    for p in (create, set_):
        p.add_argument("name")
        p.add_argument("--concurrent-limit", type=_limit)
        p.add_argument("--credits", type=_credits, help="credit balance in USD")
        p.add_argument("--unlimited-credits", action="store_true", help="remove the credit cap")
    create.set_defaults(run=create_project)
    set_.set_defaults(run=set_project)
    listing = sub.add_parser("list", help="list projects")
    listing.set_defaults(run=list_projects)
    for p in (create, set_, listing):
        settings_args(p)


async def _project_id(projects: SqlProjectStore, name: str) -> Any:
    project = await projects.project_by_name(name)
    if project is None:
        raise ProjectNotFound(name)
    return project.id


def create_key(settings: Settings, args: argparse.Namespace) -> int:
    async def work(projects: SqlProjectStore) -> None:
        project_id = await _project_id(projects, args.project)
        minted = mint_key()
        record = await projects.add_api_key(project_id, minted.digest, minted.prefix)
        _out(f"# key {record.id} for project {args.project}; store it now, it is not shown again")
        _out(minted.secret)

    return _run(settings, work)


def list_keys(settings: Settings, args: argparse.Namespace) -> int:
    async def work(projects: SqlProjectStore) -> None:
        project_id = await _project_id(projects, args.project) if args.project else None
        names = {p.id: p.name for p in await projects.list_projects()}
        for key in await projects.list_keys(project_id):
            state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
            _out(
                f"{key.id}  {key.prefix}…  {names.get(key.project_id, '?')}  "
                f"{key.created_at.isoformat()}  {state}"
            )

    return _run(settings, work)


def revoke_key(settings: Settings, args: argparse.Namespace) -> int:
    async def main() -> None:
        async with open_stores(settings) as (projects, sessions):
            record = await projects.revoke_key(args.key)
            _out(f"revoked {record.id} ({record.prefix}…)")
            if args.stop_sessions:
                stopped = await sessions.stop_created_by(record.id, datetime.now(UTC))
                _out(f"asked {len(stopped)} session(s) created with it to stop")

    asyncio.run(main())
    return 0


def _credit_change(args: argparse.Namespace) -> int | Unset | None:
    if args.unlimited_credits:
        return None
    if args.credits is not None:
        return usd_to_micros(args.credits)
    return UNSET


def create_project(settings: Settings, args: argparse.Namespace) -> int:
    async def work(projects: SqlProjectStore) -> None:
        change = _credit_change(args)
        project = await projects.create_project(
            args.name,
            concurrent_limit=args.concurrent_limit,
            credits_micros=None if isinstance(change, Unset) else change,
        )
        _out(f"created project {project.name} ({project.id})")

    return _run(settings, work)


def set_project(settings: Settings, args: argparse.Namespace) -> int:
    async def work(projects: SqlProjectStore) -> None:
        project = await projects.update_project(
            args.name,
            concurrent_limit=args.concurrent_limit if args.concurrent_limit else UNSET,
            credits_micros=_credit_change(args),
        )
        _out(_describe(project.name, project.concurrent_limit, project.credit_balance_micros))

    return _run(settings, work)


def _describe(name: str, limit: int | None, credits: int | None) -> str:
    shown_limit = "default" if limit is None else str(limit)
    shown_credits = "unlimited" if credits is None else f"${format_usd(credits)}"
    return f"{name}: concurrent limit {shown_limit}, credits {shown_credits}"


def list_projects(settings: Settings, _args: argparse.Namespace) -> int:
    async def work(projects: SqlProjectStore) -> None:
        for p in await projects.list_projects():
            _out(
                f"{p.id}  {_describe(p.name, p.concurrent_limit, p.credit_balance_micros)}  "
                f"active {p.active_count}"
            )

    return _run(settings, work)
