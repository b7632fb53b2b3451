"""The profiles API's operations, scoped to the caller's project."""

from __future__ import annotations

import logging
import uuid

from browserfleet.auth.model import Principal
from browserfleet.clock import Clock
from browserfleet.profiles.model import Profile, ProfilePage, ProfilePatch, ProfileQuery
from browserfleet.profiles.ports import ProfileStore
from browserfleet.storage import layout
from browserfleet.storage.errors import StorageError
from browserfleet.storage.port import BlobStore

log = logging.getLogger(__name__)


class ProfileService:
    def __init__(
        self, store: ProfileStore, blobs: BlobStore, clock: Clock, *, cap: int | None = None
    ) -> None:
        """`cap`: the most profiles one project may have (None: no limit)."""
        self._store = store
        self._blobs = blobs
        self._clock = clock
        self._cap = cap

    async def create(
        self, principal: Principal, *, name: str | None = None, user_id: str | None = None
    ) -> Profile:
        now = self._clock()
        profile = Profile(
            id=str(uuid.uuid4()),
            project_id=principal.project_id,
            name=name,
            user_id=user_id,
            created_at=now,
            updated_at=now,
        )
        await self._store.create(profile, self._cap)
        return profile

    async def get(self, principal: Principal, profile_id: str) -> Profile:
        return await self._store.get(principal.project_id, profile_id)

    async def list(self, principal: Principal, query: ProfileQuery) -> ProfilePage:
        return await self._store.list(principal.project_id, query)

    async def update(self, principal: Principal, profile_id: str, patch: ProfilePatch) -> Profile:
        return await self._store.update(principal.project_id, profile_id, patch, self._clock())

    async def delete(self, principal: Principal, profile_id: str) -> None:
        """The row first (no session loads it or saves into it from then on), then its stored
        versions; a save still on its way finds no row and removes its own upload."""
        await self._store.delete(principal.project_id, profile_id)
        try:
            await self._blobs.delete_prefix(layout.profile_prefix(principal.project_id, profile_id))
        except StorageError as error:
            log.error("profile %s deleted, but its stored versions remain: %s", profile_id, error)
