"""Saving and loading a profile's versions over the real SQLite store and local blob store:
the pointer moves only for a profile that exists and a session that stopped last, a save over
the size limit keeps the previous version, and a load always finds the current one."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from s3_server import S3TestServer

from browserfleet.auth.model import Principal
from browserfleet.errors import ProfileNotFound
from browserfleet.ids import ApiKeyId, SessionId
from browserfleet.profiles.loading import ProfileLoads
from browserfleet.profiles.saving import ProfileSaving, SavingConfig
from browserfleet.profiles.service import ProfileService
from browserfleet.sessions.ending import EndPhase, SessionEnd
from browserfleet.sessions.model import Session, SessionRequest, SessionStatus
from browserfleet.storage.archive import ArchiveLimits
from browserfleet.storage.local import LocalBlobStore
from browserfleet.storage.port import BlobStore
from browserfleet.storage.s3 import S3BlobStore
from browserfleet.store.engine import create_engine
from browserfleet.store.migrate import upgrade
from browserfleet.store.profiles import SqlProfileStore
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.sessions import SqlSessionStore

T0 = datetime(2026, 7, 15, 20, 0, tzinfo=UTC)
LIMIT = 64 * 1024


@dataclass
class World:
    profiles: ProfileService
    saving: ProfileSaving
    loads: ProfileLoads
    blobs: BlobStore
    caller: Principal
    root: Path


@pytest.fixture
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """Profiles on a local blob store, or on the S3 one (`indirect` param "s3")."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade(url)
    engine = create_engine(url)
    project = await SqlProjectStore(engine).create_project("p")
    blobs: BlobStore
    if getattr(request, "param", "local") == "s3":
        s3_server: S3TestServer = request.getfixturevalue("s3_server")
        bucket: str = request.getfixturevalue("bucket")
        blobs = S3BlobStore(
            s3_server.store_config(bucket), session=request.getfixturevalue("boto_session")
        )
    else:
        blobs = LocalBlobStore(tmp_path / "blobs")
    store = SqlProfileStore(engine)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    limits = ArchiveLimits(max_bytes=LIMIT)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    world = World(
        ProfileService(store, blobs, clock),
        ProfileSaving(store, blobs, SavingConfig(limits, scratch), clock),
        ProfileLoads(
            store,
            SqlSessionStore(engine),
            blobs,
            scratch=scratch,
            limits=limits,
            save_wait_s=0,
            clock=clock,
        ),
        blobs,
        Principal(project.id, ApiKeyId(project.id)),
        tmp_path,
    )
    try:
        yield world
    finally:
        await blobs.aclose()
        await engine.dispose()


def _ended(
    world: World, profile_id: str, marker: str, stopped_at: datetime, size: int = 10
) -> SessionEnd:
    """A stopped session whose browser left a profile holding `marker` (padded to `size`)."""
    session_id = SessionId(uuid.uuid4())
    workdir = world.root / "sessions" / str(session_id)
    default = workdir / "profile" / "Default"
    default.mkdir(parents=True)
    (default / "Preferences").write_text(marker.ljust(size))
    (default / "Cache").mkdir()
    (default / "Cache" / "data_0").write_bytes(b"c" * 1000)
    session = Session(
        id=session_id,
        project_id=world.caller.project_id,
        status=SessionStatus.STOPPED,
        token="",
        request=SessionRequest(profile_id=profile_id),
        created_at=T0,
        started_at=T0,
        timeout_at=T0 + timedelta(hours=1),
        upfront_micros=0,
        finished_at=stopped_at,
    )
    return SessionEnd(session, None, workdir)


async def _loaded(world: World, profile_id: str) -> str | None:
    load = await world.loads.load(world.caller.project_id, profile_id)
    try:
        if load.seed is None:
            return None
        dest = world.root / f"loaded-{uuid.uuid4()}"
        load.seed(dest)
        assert not (dest / "Default" / "Cache").exists()  # caches are never saved
        return (dest / "Default" / "Preferences").read_text().strip()
    finally:
        await load.discard()


async def _versions(world: World, profile_id: str) -> int:
    page = await world.blobs.list_page(f"profiles/{world.caller.project_id}/{profile_id}/")
    return len(page.items)


async def test_the_last_session_to_stop_wins_whichever_save_ends_first(world: World) -> None:
    profile = (await world.profiles.create(world.caller)).id
    assert await _loaded(world, profile) is None  # never saved: an empty profile
    later = _ended(world, profile, "later", T0 + timedelta(minutes=2))
    earlier = _ended(world, profile, "earlier", T0 + timedelta(minutes=1))
    assert world.saving.save.phase is EndPhase.CLOSED
    await world.saving.save.run(later)
    await world.saving.save.run(earlier)  # finishes last, but its session stopped first
    assert await _loaded(world, profile) == "later"
    assert await _versions(world, profile) == 1  # the dropped upload is removed
    newest = _ended(world, profile, "newest", T0 + timedelta(minutes=3))
    await world.saving.save.run(newest)
    assert await _loaded(world, profile) == "newest"
    assert await _versions(world, profile) == 1  # the replaced version is removed


@pytest.mark.parametrize("world", ["local", "s3"], indirect=True)
async def test_a_save_over_the_limit_keeps_the_previous_version(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    profile = (await world.profiles.create(world.caller)).id
    await world.saving.save.run(_ended(world, profile, "small", T0))
    before = await world.blobs.list_page(f"profiles/{world.caller.project_id}/{profile}/")
    huge = _ended(world, profile, "huge", T0 + timedelta(minutes=1), size=LIMIT + 1)
    with caplog.at_level(logging.WARNING, logger="browserfleet.profiles.saving"):
        await world.saving.save.run(huge)
    refusals = [
        r
        for r in caplog.records
        if r.message.startswith("profile not saved, the previous version stays")
    ]
    assert len(refusals) == 1, caplog.text
    assert f"limit {LIMIT} bytes" in refusals[0].message
    assert await _loaded(world, profile) == "small"
    # Nothing of the refused save reached the store: the same single object as before.
    after = await world.blobs.list_page(f"profiles/{world.caller.project_id}/{profile}/")
    assert [i.key for i in after.items] == [i.key for i in before.items] and len(after.items) == 1


async def test_a_deleted_profile_is_not_brought_back_by_a_save(world: World) -> None:
    profile = (await world.profiles.create(world.caller)).id
    end = _ended(world, profile, "late", T0)
    await world.profiles.delete(world.caller, profile)
    await world.saving.save.run(end)
    assert await _versions(world, profile) == 0
    with pytest.raises(ProfileNotFound):
        await world.profiles.get(world.caller, profile)


async def test_a_planted_link_in_place_of_the_profile_saves_nothing(world: World) -> None:
    profile = (await world.profiles.create(world.caller)).id
    end = _ended(world, profile, "x", T0)
    assert end.workdir is not None
    secret = world.root / "host-secrets"
    (secret / "Default").mkdir(parents=True)
    (secret / "Default" / "Preferences").write_text("host secret")
    profile_dir = end.workdir / "profile"
    (profile_dir / "Default" / "Preferences").unlink()
    (profile_dir / "Default" / "Cache" / "data_0").unlink()
    (profile_dir / "Default" / "Cache").rmdir()
    (profile_dir / "Default").rmdir()
    profile_dir.rmdir()
    profile_dir.symlink_to(secret)
    await world.saving.save.run(end)
    assert await _versions(world, profile) == 0
    assert await _loaded(world, profile) is None
