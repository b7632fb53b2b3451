"""Projects, API keys and credit adjustments on the ledger."""

from __future__ import annotations

from uuid import uuid4

import pytest

from browserfleet.auth.ports import ProjectStore
from browserfleet.errors import ApiKeyNotFound, ProjectNotFound
from browserfleet.ids import ProjectId
from browserfleet.store.ledger import LedgerKind, replay_balance
from browserfleet.store.projects import SqlProjectStore


def test_sql_project_store_satisfies_the_port(project_store: SqlProjectStore) -> None:
    port: ProjectStore = project_store  # checked by mypy
    assert port is project_store


async def test_create_and_read_projects(project_store: SqlProjectStore) -> None:
    created = await project_store.create_project("acme", concurrent_limit=4, credits_micros=500)

    assert await project_store.get_project(created.id) == created
    assert await project_store.project_by_name("acme") == created
    assert await project_store.list_projects() == [created]
    assert await project_store.count_projects() == 1
    assert created.created_at.tzinfo is not None
    entries = await project_store.ledger_for_project(created.id)
    assert [(e.kind, e.amount_micros) for e in entries] == [(LedgerKind.CREDIT_SET, 500)]


async def test_duplicate_project_names_are_refused(project_store: SqlProjectStore) -> None:
    await project_store.create_project("acme")

    with pytest.raises(ValueError, match="acme"):
        await project_store.create_project("acme")
    assert await project_store.count_projects() == 1


async def test_update_sets_limit_and_credits_and_records_each_credit_change(
    project_store: SqlProjectStore,
) -> None:
    project = await project_store.create_project("acme")

    limited = await project_store.update_project("acme", concurrent_limit=2, credits_micros=900)
    unchanged = await project_store.update_project("acme")
    unlimited = await project_store.update_project("acme", credits_micros=None)

    assert (limited.concurrent_limit, limited.credit_balance_micros) == (2, 900)
    assert unchanged == limited
    assert (unlimited.concurrent_limit, unlimited.credit_balance_micros) == (2, None)
    entries = await project_store.ledger_for_project(project.id)
    assert [(e.kind, e.amount_micros) for e in entries] == [
        (LedgerKind.CREDIT_SET, 900),
        (LedgerKind.CREDIT_SET, None),
    ]
    assert len({e.idempotency_key for e in entries}) == 2
    assert replay_balance(entries) is None
    with pytest.raises(ProjectNotFound):
        await project_store.update_project("nope", credits_micros=1)


async def test_keys_are_found_by_digest_until_revoked(
    project_store: SqlProjectStore, project_id: ProjectId
) -> None:
    key = await project_store.add_api_key(project_id, digest="d1", prefix="bf_abc")

    assert await project_store.key_by_digest("d1") == key
    revoked = await project_store.revoke_key(str(key.id))
    assert revoked.revoked_at is not None
    assert await project_store.key_by_digest("d1") is None
    assert await project_store.revoke_key(str(key.id)) == revoked  # idempotent
    assert await project_store.list_keys(project_id) == [revoked]


async def test_revoke_by_prefix_needs_exactly_one_match(
    project_store: SqlProjectStore, project_id: ProjectId
) -> None:
    other = await project_store.create_project("other")
    await project_store.add_api_key(project_id, digest="d1", prefix="bf_same")
    await project_store.add_api_key(other.id, digest="d2", prefix="bf_same")
    single = await project_store.add_api_key(project_id, digest="d3", prefix="bf_one")

    with pytest.raises(ApiKeyNotFound):
        await project_store.revoke_key("bf_same")
    with pytest.raises(ApiKeyNotFound):
        await project_store.revoke_key("bf_missing")
    assert (await project_store.revoke_key("bf_one")).id == single.id
    assert len(await project_store.list_keys()) == 3
    assert len(await project_store.list_keys(other.id)) == 1


async def test_add_api_key_refuses_unknown_projects_and_reused_digests(
    project_store: SqlProjectStore, project_id: ProjectId
) -> None:

    await project_store.add_api_key(project_id, digest="d1", prefix="bf_a")

    with pytest.raises(ValueError, match="digest"):
        await project_store.add_api_key(project_id, digest="d1", prefix="bf_b")
    with pytest.raises(ProjectNotFound):
        await project_store.add_api_key(ProjectId(uuid4()), digest="d2", prefix="bf_c")
