"""A session's start with a profile: its current saved state made ready for one launch.

The lookup comes first (unknown, deleted or another project's: ProfileNotFound, before anything
starts). A save of the same profile still in flight, on any server sharing the database, is
waited for (bounded), so a session never starts from the state before the previous one's. The
saved archive is fetched to the server's scratch directory; the launcher unpacks it into the new
browser's profile before Chromium starts; the session cookies the archive carries are set over
the server's own CDP connection once the browser answers, and lastUsedAt is stamped then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from browserfleet.cdp.client import CdpError
from browserfleet.clock import Clock
from browserfleet.errors import BrowserLaunchFailed, StorageFailed
from browserfleet.ids import ProjectId
from browserfleet.profiles.model import Profile
from browserfleet.profiles.ports import ProfileStore
from browserfleet.profiles.seed import ArchiveSeed
from browserfleet.sessions.ports import BrowserHandle, ProfileSeed, SessionStore
from browserfleet.storage.archive import ArchiveLimits
from browserfleet.storage.errors import BlobNotFound, StorageError
from browserfleet.storage.port import BlobStore

log = logging.getLogger(__name__)
PENDING_POLL_S = 0.05


class ProfileLoads:
    """The ProfileLoader port: profiles from the database and the blob store."""

    def __init__(
        self,
        profiles: ProfileStore,
        sessions: SessionStore,
        blobs: BlobStore,
        *,
        scratch: Path,
        limits: ArchiveLimits,
        save_wait_s: float,
        clock: Clock,
    ) -> None:
        self._profiles = profiles
        self._sessions = sessions
        self._blobs = blobs
        self._scratch = scratch
        self._limits = limits
        self._save_wait_s = save_wait_s
        self._clock = clock

    async def load(self, project_id: ProjectId, profile_id: str) -> ProfileLoad:
        profile = await self._profiles.get(project_id, profile_id)
        await self._wait_for_saves(project_id, profile_id)
        for _attempt in range(3):
            profile = await self._profiles.get(project_id, profile_id)
            if profile.version_key is None:
                return ProfileLoad(self, profile, None)  # never saved: an empty profile
            archive = self._scratch / f"load-{uuid.uuid4()}"
            try:
                await self._blobs.get_file(profile.version_key, archive)
            except BlobNotFound:
                continue  # replaced and collected meanwhile: read the pointer again
            except StorageError as error:
                raise StorageFailed(
                    f"profile {profile_id} could not be fetched: {error}"
                ) from error
            return ProfileLoad(self, profile, archive)
        raise StorageFailed(f"profile {profile_id}: its saved state keeps disappearing")

    async def _wait_for_saves(self, project_id: ProjectId, profile_id: str) -> None:
        """Until no session of this profile is still saving, or save_wait_s has passed."""
        deadline = time.monotonic() + self._save_wait_s
        since = self._clock() - timedelta(seconds=self._save_wait_s * 4)
        while await self._sessions.ending_with_profile(project_id, profile_id, since):
            if time.monotonic() >= deadline:
                log.warning(
                    "profile %s: a save is still in flight after %.0f s; loading the last saved "
                    "state",
                    profile_id,
                    self._save_wait_s,
                )
                return
            await asyncio.sleep(PENDING_POLL_S)

    @property
    def limits(self) -> ArchiveLimits:
        return self._limits

    async def mark_used(self, profile: Profile, at: datetime) -> None:
        await self._profiles.mark_used(profile.project_id, profile.id, at)

    @property
    def clock(self) -> Clock:
        return self._clock


class ProfileLoad:
    """One profile made ready for one launch (the ProfileLoad port)."""

    def __init__(self, loads: ProfileLoads, profile: Profile, archive: Path | None) -> None:
        self._loads = loads
        self._profile = profile
        self._archive = archive
        self._seed = None if archive is None else ArchiveSeed(archive, loads.limits)

    @property
    def seed(self) -> ProfileSeed | None:
        return self._seed

    async def apply(self, browser: BrowserHandle) -> None:
        """Once the browser answers: its session cookies back, and lastUsedAt."""
        cookies = self._seed.session_cookies if self._seed is not None else []
        if cookies:
            log.info("restoring %d session cookies", len(cookies))
            try:
                await browser.call("Storage.setCookies", {"cookies": cookies})
            except (CdpError, TimeoutError) as error:
                raise BrowserLaunchFailed(
                    f"could not restore the session cookies: {error}"
                ) from error
        await self._loads.mark_used(self._profile, self._loads.clock())

    async def discard(self) -> None:
        if self._archive is not None:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(self._archive.unlink)
