"""A session's end with a profile: its browser state saved as the profile's new version.

Two end-of-session steps (sessions/ending.py):
  capture (LIVE)   reads every cookie over the server's own CDP connection, to keep the session
                   cookies (no expiry) that a restarted Chromium would drop;
  save (CLOSED)    after the graceful close (Chromium has written its stores to disk) and once
                   nothing of the tenant runs: pack the state files only (profiles/snapshot.py),
                   never following anything planted there, upload the archive as a new object,
                   then move the profile's pointer to it in one conditional UPDATE. A crash before
                   the pointer moves leaves the previous version current; the version it replaced
                   is deleted, and leftovers of crashed saves are collected by age.
A save over the size limit is refused with a log line and the previous version stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from browserfleet.cdp.client import CdpError
from browserfleet.clock import Clock
from browserfleet.ids import SessionId
from browserfleet.profiles.model import SavedVersion
from browserfleet.profiles.ports import ProfileStore
from browserfleet.profiles.snapshot import STATE
from browserfleet.profiles.state import (
    check_profile_dir,
    cookie_domains,
    session_cookies,
    write_session_cookies,
)
from browserfleet.sessions.ending import EndPhase, SessionEnd
from browserfleet.sessions.model import Session
from browserfleet.storage import layout
from browserfleet.storage.archive import DEFAULT_FORMAT, ArchiveLimits, ArchiveStats, pack
from browserfleet.storage.errors import ArchiveTooLarge, StorageError, UnsafeSource
from browserfleet.storage.port import BlobStore

log = logging.getLogger(__name__)
PROFILE_DIR = "profile"
# Versions no pointer names (a save that crashed before moving it) are removed past this age:
# long enough that no save still on its way to its pointer is caught.
LEFTOVER_AGE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SavingConfig:
    limits: ArchiveLimits
    scratch: Path  # the server's own directory for archives on their way
    capture_timeout_s: float = 5.0
    save_timeout_s: float = 120.0


class ProfileSaving:
    """The two end steps of sessions with a profile (give both to the session service)."""

    def __init__(
        self, profiles: ProfileStore, blobs: BlobStore, config: SavingConfig, clock: Clock
    ) -> None:
        self._profiles = profiles
        self._blobs = blobs
        self._config = config
        self._clock = clock
        self._captured: dict[SessionId, list[dict[str, object]]] = {}
        self.capture = _Step(
            "profile-capture", EndPhase.LIVE, config.capture_timeout_s, self._capture
        )
        self.save = _Step("profile-save", EndPhase.CLOSED, config.save_timeout_s, self._save)

    async def _capture(self, end: SessionEnd) -> None:
        assert end.browser is not None
        try:
            answer = await end.browser.call("Storage.getCookies")
        except CdpError as error:
            log.warning("cookies not read: %s", error, extra={"session_id": str(end.session.id)})
            return
        cookies = answer.get("cookies")
        every = cookies if isinstance(cookies, list) else []
        kept = session_cookies(every)
        self._captured[end.session.id] = kept
        log.info(
            "%d session cookies kept of %d",
            len(kept),
            len(every),
            extra={"session_id": str(end.session.id)},
        )

    async def _save(self, end: SessionEnd) -> None:
        cookies = self._captured.pop(end.session.id, [])
        if end.workdir is None:
            return
        session = end.session
        profile_id = session.request.profile_id
        assert profile_id is not None
        archive = self._config.scratch / f"save-{uuid.uuid4()}{DEFAULT_FORMAT.suffix}"
        try:
            packed = await asyncio.to_thread(
                self._pack, end.workdir / PROFILE_DIR, archive, cookies
            )
            if packed is None:
                return
            stats, domains = packed
            await self._publish(session, profile_id, archive, stats, domains)
        finally:
            with contextlib.suppress(FileNotFoundError):
                archive.unlink()

    def _pack(
        self, profile: Path, archive: Path, cookies: list[dict[str, object]]
    ) -> tuple[ArchiveStats, tuple[str, ...]] | None:
        """Blocking: the state files of `profile` into `archive`, and its cookie domains."""
        try:
            check_profile_dir(profile)
        except (FileNotFoundError, UnsafeSource) as error:
            log.error("profile not saved: %s", error)
            return None
        write_session_cookies(profile, cookies)
        try:
            stats = pack(profile, archive, limits=self._config.limits, select=STATE)
        except ArchiveTooLarge as error:
            log.error(
                "profile not saved, the previous version stays: %s (limit %d bytes)",
                error,
                self._config.limits.max_bytes,
            )
            return None
        return stats, cookie_domains(profile, self._config.scratch, cookies)

    async def _publish(
        self,
        session: Session,
        profile_id: str,
        archive: Path,
        stats: ArchiveStats,
        domains: tuple[str, ...],
    ) -> None:
        stopped_at = session.finished_at or self._clock()
        version = f"{stopped_at:%Y%m%dT%H%M%S%fZ}-{session.id}"
        key = layout.profile_version_key(session.project_id, profile_id, version, DEFAULT_FORMAT)
        size = await self._blobs.put_file(key, archive, move=True)
        made, replaced = await self._profiles.set_version(
            session.project_id,
            profile_id,
            SavedVersion(key, size, domains, stopped_at),
            self._clock(),
        )
        extra = {"session_id": str(session.id)}
        if not made:
            log.info(
                "profile %s deleted or saved by a later session: save dropped",
                profile_id,
                extra=extra,
            )
            await self._blobs.delete(key)
            return
        log.info(
            "profile %s saved: %d files, %d bytes (%d stored)",
            profile_id,
            stats.files,
            stats.content_bytes,
            size,
            extra=extra,
        )
        if replaced is not None and replaced != key:
            await self._blobs.delete(replaced)
        await self._collect(session, profile_id, keep=key)

    async def _collect(self, session: Session, profile_id: str, keep: str) -> None:
        """Remove versions of crashed saves (named by no pointer) once they are old enough."""
        prefix = layout.profile_prefix(session.project_id, profile_id)
        old = self._clock() - LEFTOVER_AGE
        try:
            page = await self._blobs.list_page(prefix)
            stale = [b.key for b in page.items if b.key != keep and b.last_modified < old]
            if stale:
                await self._blobs.delete_many(stale)
        except StorageError as error:
            log.warning("old profile versions not collected: %s", error)


def _wants_profile(session: Session) -> bool:
    return session.request.profile_id is not None


class _Step:
    """One EndStep of sessions with a profile."""

    def __init__(
        self,
        name: str,
        phase: EndPhase,
        timeout_s: float,
        run: Callable[[SessionEnd], Awaitable[None]],
    ) -> None:
        self._name, self._phase, self._timeout_s, self._run = name, phase, timeout_s, run

    @property
    def name(self) -> str:
        return self._name

    @property
    def phase(self) -> EndPhase:
        return self._phase

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def wanted(self, session: Session) -> bool:
        return _wants_profile(session)

    async def run(self, end: SessionEnd) -> None:
        await self._run(end)
