"""Reading sessions back: visibility, listing, time zones, secrets, instances and orphans."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from store_builders import T0, Maker

from browserfleet.errors import SessionNotFound
from browserfleet.ids import InstanceId, ProjectId, SessionId
from browserfleet.sessions.model import CustomProxy, SessionQuery, SessionStatus, StopReason
from browserfleet.sessions.ports import SessionStore
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore
from browserfleet.store.tables import sessions

OTHER = InstanceId("instance-b")


def test_sql_session_store_satisfies_the_port(session_store: SqlSessionStore) -> None:
    port: SessionStore = session_store  # checked by mypy; isinstance cannot see Protocols' shapes
    assert port is session_store


async def test_get_hides_starting_sessions_and_other_projects(
    session_store: SqlSessionStore,
    project_store: SqlProjectStore,
    make: Maker,
    project_id: ProjectId,
) -> None:
    other = await project_store.create_project("other")
    starting = make.session(project_id)
    await session_store.reserve(starting, 10)
    active = await make.active(project_id)

    assert (await session_store.get(project_id, active.id)) == active
    with pytest.raises(SessionNotFound):
        await session_store.get(other.id, active.id)
    with pytest.raises(SessionNotFound):
        await session_store.get(project_id, starting.id)


async def test_datetimes_come_back_aware_and_in_utc(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    plus_two = timezone(timedelta(hours=2))
    session = await make.active(project_id, started_at=T0.astimezone(plus_two))
    stopped = await session_store.request_stop(session.id, StopReason.USER, T0.astimezone(plus_two))

    for value in (stopped.created_at, stopped.started_at, stopped.timeout_at, stopped.finished_at):
        assert value is not None
        assert value.tzinfo is UTC
    assert stopped.started_at == T0
    assert stopped.timeout_at == T0 + timedelta(minutes=60)


async def test_every_request_field_round_trips_but_the_proxy_password_is_never_stored(
    database: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    engine: AsyncEngine,
    session_store: SqlSessionStore,
    make: Maker,
    project_id: ProjectId,
) -> None:
    proxy = CustomProxy(
        host="proxy.example", port=3128, username="u", password="s3cret-pw", ignore_cert_errors=True
    )
    session = make.session(project_id, custom_proxy=proxy, metadata={"env": "prod"})
    await session_store.reserve(session, 10)

    stored = await session_store.get_any(session.id)

    assert stored is not None
    assert stored.request.custom_proxy == CustomProxy("proxy.example", 3128, "u", None, True)
    assert stored.request.metadata == {"env": "prod"}
    async with engine.connect() as conn:
        row = (await conn.execute(select(sessions).where(sessions.c.id == session.id))).one()
    assert "s3cret-pw" not in repr(tuple(row))
    await engine.dispose()  # flush WAL pages into the file before grepping it
    if database == "sqlite":
        files = tmp_path  # the database file and its -wal/-shm companions
    else:
        cluster = request.getfixturevalue("postgres")
        await cluster.admin("CHECKPOINT")  # every page on disk, in the tables and the WAL
        files = cluster.pgdata
    assert not _any_file_contains(files, b"s3cret-pw")


def _any_file_contains(directory: Path, secret: bytes) -> bool:
    """Every file under `directory`, searched byte for byte."""
    return any(secret in path.read_bytes() for path in directory.rglob("*") if path.is_file())


async def _fleet(make: Maker, project_id: ProjectId) -> list[SessionId]:
    """Sessions started one minute apart, tagged; returns ids by start time (oldest first)."""
    tags = [{"env": "prod", "team": "growth"}, {"env": "prod"}, {"env": "dev"}, {}, {"env": "prod"}]
    ids = []
    for minute, tag in enumerate(tags):
        session = await make.active(
            project_id, started_at=T0 + timedelta(minutes=minute), metadata=tag
        )
        ids.append(session.id)
    return ids


async def test_list_is_newest_first_with_paging_and_total(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    ids = await _fleet(make, project_id)
    await session_store.reserve(make.session(project_id), 10)  # STARTING: never listed

    first = await session_store.list(project_id, SessionQuery(page_size=2, page_number=1))
    third = await session_store.list(project_id, SessionQuery(page_size=2, page_number=3))
    beyond = await session_store.list(project_id, SessionQuery(page_size=2, page_number=9))

    assert [s.id for s in first.items] == [ids[4], ids[3]]
    assert [s.id for s in third.items] == [ids[0]]
    assert (first.total, third.total, beyond.total, beyond.items) == (5, 5, 5, ())


async def test_list_ties_on_started_at_are_ordered_by_id_descending(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    made = [await make.active(project_id) for _ in range(4)]

    page = await session_store.list(project_id, SessionQuery())

    assert [s.id for s in page.items] == sorted((s.id for s in made), reverse=True)


async def test_list_status_filter_counts_stopping_as_active(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    ids = await _fleet(make, project_id)
    await session_store.request_stop(ids[0], StopReason.USER, T0)
    await session_store.request_stop(ids[1], StopReason.USER, T0)
    await session_store.finalize(ids[1], cost_micros=0, proxy_bytes=0)

    active = await session_store.list(project_id, SessionQuery(status=SessionStatus.ACTIVE))
    stopped = await session_store.list(project_id, SessionQuery(status=SessionStatus.STOPPED))

    assert [s.id for s in active.items] == [ids[4], ids[3], ids[2], ids[0]]
    assert [s.id for s in stopped.items] == [ids[1]]


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ((("env", None),), [4, 2, 1, 0]),
        ((("env", "prod"),), [4, 1, 0]),
        ((("env", "prod"), ("team", None)), [0]),
        ((("env", "prod"), ("team", "growth")), [0]),
        ((("env", "dev"), ("team", None)), []),
        ((("missing", None),), []),
    ],
)
async def test_list_metadata_terms_are_anded(
    session_store: SqlSessionStore,
    make: Maker,
    project_id: ProjectId,
    terms: tuple[tuple[str, str | None], ...],
    expected: list[int],
) -> None:
    ids = await _fleet(make, project_id)

    page = await session_store.list(project_id, SessionQuery(metadata_terms=terms))

    assert [s.id for s in page.items] == [ids[i] for i in expected]
    assert page.total == len(expected)


async def test_live_owned_by_lists_this_instances_live_sessions(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    starting = make.session(project_id)
    await session_store.reserve(starting, 10)
    short = await make.active(project_id, timeout_minutes=5)
    long = await make.active(project_id, timeout_minutes=60)
    elsewhere = await make.active(project_id, owner=OTHER, timeout_minutes=5)
    done = await make.stopped(project_id)

    live = await session_store.live_owned_by(make.owner)

    assert {s.id for s in live} == {starting.id, short.id, long.id}
    assert elsewhere.id not in {s.id for s in live} and done.id not in {s.id for s in live}


async def test_orphaned_lists_live_sessions_of_silent_or_unknown_instances(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    mine = await make.active(project_id, owner=make.owner)
    theirs = await make.active(project_id, owner=OTHER)
    unknown = await make.active(project_id, owner=InstanceId("never-heartbeat"))
    await make.stopped(project_id, owner=InstanceId("never-heartbeat"))
    await session_store.heartbeat(make.owner, "host-a", 1, T0)
    await session_store.heartbeat(OTHER, "host-b", 2, T0)
    await session_store.heartbeat(OTHER, "host-b", 2, T0 + timedelta(minutes=1))  # an upsert

    fresh = await session_store.orphaned(T0 + timedelta(seconds=30), exclude=make.owner)
    stale = await session_store.orphaned(T0 + timedelta(minutes=2), exclude=make.owner)
    await session_store.forget_instance(OTHER)
    forgotten = await session_store.orphaned(T0, exclude=make.owner)

    assert [s.id for s in fresh] == [unknown.id]
    assert {s.id for s in stale} == {theirs.id, unknown.id}
    assert {s.id for s in forgotten} == {theirs.id, unknown.id}
    assert mine.id not in {s.id for s in stale}


async def test_instances_and_live_pids(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    await session_store.heartbeat(OTHER, "host-b", 2, T0, "https://b.example.com")
    await session_store.heartbeat(make.owner, "host-a", 1, T0)
    live = await make.active(project_id, owner=OTHER)
    mine = await make.active(project_id)
    await make.stopped(project_id)

    records = await session_store.instances()

    assert [(r.id, r.host, r.pid, r.heartbeat_at, r.public_url) for r in records] == [
        (make.owner, "host-a", 1, T0, None),
        (OTHER, "host-b", 2, T0, "https://b.example.com"),
    ]
    assert live.browser_pid is not None and mine.browser_pid is not None
    # A pid names a process only on its own host.
    assert await session_store.live_pids("host-b") == frozenset({live.browser_pid})
    assert await session_store.live_pids("host-a") == frozenset({mine.browser_pid})
    assert await session_store.live_pids("host-c") == frozenset()


async def test_adopt_takes_a_silent_owners_session_once(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    now = datetime.now(UTC)
    session = await make.active(project_id, owner=OTHER)
    await session_store.heartbeat(OTHER, "host-b", 2, now - timedelta(minutes=5))
    await session_store.heartbeat(make.owner, "host-a", 1, now)
    late = InstanceId("instance-c")
    await session_store.heartbeat(late, "host-c", 3, now)

    adopted = await session_store.adopt(session.id, make.owner)
    again = await session_store.adopt(session.id, make.owner)
    stolen = await session_store.adopt(session.id, late)  # the new owner is alive: refused

    assert adopted is not None and adopted.owner == make.owner
    assert again == adopted
    assert stolen is None


async def test_adopt_refuses_a_session_whose_owner_is_alive_or_that_is_not_live(
    session_store: SqlSessionStore, make: Maker, project_id: ProjectId
) -> None:
    alive = await make.active(project_id, owner=OTHER)
    await session_store.heartbeat(OTHER, "host-b", 2, datetime.now(UTC))
    done = await make.stopped(project_id, owner=InstanceId("gone"))

    assert await session_store.adopt(alive.id, make.owner) is None
    assert await session_store.adopt(done.id, make.owner) is None


async def test_concurrent_adopters_have_exactly_one_winner(
    session_store: SqlSessionStore, make: Maker, project_store: SqlProjectStore
) -> None:
    # Several rounds: the race that let several adopters win on PostgreSQL (a blocked UPDATE
    # re-checking its WHERE clause) needs the updates to overlap, which one round rarely does.
    claimants = [InstanceId(f"claimant-{i}") for i in range(6)]
    for claimant in claimants:
        await session_store.heartbeat(claimant, "host", 1, datetime.now(UTC))

    for round_ in range(25):
        project = await project_store.create_project(f"round-{round_}")
        session = await make.active(project.id, owner=InstanceId("crashed"))
        results = await asyncio.gather(*(session_store.adopt(session.id, c) for c in claimants))

        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        final = await session_store.get_any(session.id)
        assert final is not None and final.owner == winners[0].owner
