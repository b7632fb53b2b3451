"""Session values for store tests, built as the session service would build them."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from browserfleet.billing.pricing import upfront_micros
from browserfleet.ids import InstanceId, ProjectId, SessionId
from browserfleet.sessions.model import (
    CustomProxy,
    Session,
    SessionRequest,
    SessionStatus,
    StopReason,
)
from browserfleet.store.sessions import SqlSessionStore

OWNER = InstanceId("instance-a")
DEFAULT_LIMIT = 10
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Maker:
    """Builds session values as the session service would, and drives them into the store."""

    def __init__(self, store: SqlSessionStore) -> None:
        self.store = store
        self.owner = OWNER
        self._next_pid = 40_000

    def session(
        self,
        project_id: ProjectId,
        *,
        started_at: datetime = T0,
        timeout_minutes: int = 60,
        metadata: Mapping[str, str] | None = None,
        owner: InstanceId | None = OWNER,
        custom_proxy: CustomProxy | None = None,
    ) -> Session:
        """A STARTING session, not yet in the store."""
        return Session(
            id=SessionId(uuid4()),
            project_id=project_id,
            status=SessionStatus.STARTING,
            token=secrets.token_urlsafe(24),
            request=SessionRequest(
                timeout_minutes=timeout_minutes,
                metadata=dict(metadata or {}),
                custom_proxy=custom_proxy,
            ),
            created_at=started_at,
            started_at=started_at,
            timeout_at=started_at + timedelta(minutes=timeout_minutes),
            upfront_micros=upfront_micros(timeout_minutes),
            owner=owner,
        )

    async def active(self, project_id: ProjectId, **kwargs: Any) -> Session:
        """A session reserved and marked ACTIVE."""
        session = self.session(project_id, **kwargs)
        await self.store.reserve(session, DEFAULT_LIMIT)
        self._next_pid += 1
        return await self.store.mark_active(
            session.id, pid=self._next_pid, session_dir=f"/tmp/{session.id}"
        )

    async def stopped(self, project_id: ProjectId, cost_micros: int = 0, **kwargs: Any) -> Session:
        session = await self.active(project_id, **kwargs)
        await self.store.request_stop(session.id, StopReason.USER, session.started_at)
        return await self.store.finalize(session.id, cost_micros=cost_micros, proxy_bytes=0)
