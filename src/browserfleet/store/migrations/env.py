"""Alembic environment: migrates the connection that store.migrate.upgrade() hands over.

There is no alembic.ini and no URL here on purpose: the CLI and the server both migrate through
`browserfleet.store.migrate.upgrade(url)`, which also serialises concurrent callers.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from browserfleet.store.tables import metadata


def _run_online(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError("run migrations with browserfleet.store.migrate.upgrade(url)")
    _run_online(connection)


_main()
