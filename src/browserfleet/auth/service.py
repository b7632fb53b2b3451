"""Authentication: an API key in, the caller's Principal out."""

from __future__ import annotations

from browserfleet.auth.keys import hash_key
from browserfleet.auth.model import Principal
from browserfleet.auth.ports import ProjectStore
from browserfleet.errors import InvalidApiKey, NotAuthenticated


class Authenticator:
    def __init__(self, projects: ProjectStore) -> None:
        self._projects = projects

    async def authenticate(self, presented: str | None) -> Principal:
        if not presented:
            raise NotAuthenticated()
        record = await self._projects.key_by_digest(hash_key(presented))
        if record is None or record.revoked_at is not None:
            raise InvalidApiKey()
        return Principal(project_id=record.project_id, api_key_id=record.id)
