"""What the profile service needs from the outside world, as small Protocols."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from browserfleet.ids import ProjectId
from browserfleet.profiles.model import (
    Profile,
    ProfilePage,
    ProfilePatch,
    ProfileQuery,
    SavedVersion,
)


class ProfileStore(Protocol):
    async def create(self, profile: Profile, cap: int | None) -> None:
        """Insert the profile; ProfileLimitReached when the project already has `cap`."""

    async def get(self, project_id: ProjectId, profile_id: str) -> Profile:
        """ProfileNotFound unless it exists in that project."""

    async def list(self, project_id: ProjectId, query: ProfileQuery) -> ProfilePage: ...

    async def update(
        self, project_id: ProjectId, profile_id: str, patch: ProfilePatch, at: datetime
    ) -> Profile:
        """Apply the patch and bump updated_at; ProfileNotFound."""

    async def delete(self, project_id: ProjectId, profile_id: str) -> None:
        """ProfileNotFound."""

    async def mark_used(self, project_id: ProjectId, profile_id: str, at: datetime) -> None:
        """last_used_at = at (a deleted profile: nothing)."""

    async def set_version(
        self, project_id: ProjectId, profile_id: str, version: SavedVersion, at: datetime
    ) -> tuple[bool, str | None]:
        """Make `version` current, in one conditional UPDATE, unless the profile is gone (a
        deleted profile is never brought back) or already holds the state of a session that
        stopped later (the last to stop wins). (made current, the key it replaced)."""
