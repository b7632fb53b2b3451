"""Storage the auth and project logic needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from browserfleet.auth.model import ApiKeyRecord, Project
from browserfleet.ids import ProjectId


class Unset:
    """Marker for 'leave this field unchanged' in updates."""


UNSET = Unset()


class ProjectStore(Protocol):
    async def create_project(
        self, name: str, *, concurrent_limit: int | None = None, credits_micros: int | None = None
    ) -> Project:
        """Raises ValueError if the name is taken. Setting credits appends a ledger entry."""

    async def get_project(self, project_id: ProjectId) -> Project | None: ...

    async def project_by_name(self, name: str) -> Project | None: ...

    async def list_projects(self) -> Sequence[Project]: ...

    async def update_project(
        self,
        name: str,
        *,
        concurrent_limit: int | Unset | None = UNSET,
        credits_micros: int | Unset | None = UNSET,
    ) -> Project:
        """credits_micros sets the balance (None = unlimited), recorded on the ledger as an
        adjustment. Raises ProjectNotFound."""

    async def add_api_key(
        self, project_id: ProjectId, digest: str, prefix: str
    ) -> ApiKeyRecord: ...

    async def key_by_digest(self, digest: str) -> ApiKeyRecord | None:
        """Only keys that are not revoked."""

    async def list_keys(self, project_id: ProjectId | None = None) -> Sequence[ApiKeyRecord]: ...

    async def revoke_key(self, id_or_prefix: str) -> ApiKeyRecord:
        """Raises ApiKeyNotFound."""
