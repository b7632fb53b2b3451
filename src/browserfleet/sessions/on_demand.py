"""Sessions created by connecting (connect-on-demand): they end when their last client leaves.

A client that connects to `/connect?apiKey=...` (or asks `/connect/json/version`) gets a session
created exactly as the REST create makes one (same limits, errors, charge), and that session is
stopped and billed once no CDP websocket of it has been open for the grace period; a client
that reconnects within it keeps the session. The session's own timeout still applies.
"""

from __future__ import annotations

import logging
from typing import Protocol

from browserfleet.auth.model import Principal
from browserfleet.errors import DomainError
from browserfleet.sessions.model import Session, SessionRequest
from browserfleet.sessions.service import SessionService
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)


class ClientWatch(Protocol):
    """What the gateway tells of a session's clients (cdp.gateway.CdpGatewayServer fits)."""

    async def idle_for(self, token: str, grace_s: float) -> bool:
        """True once `token` has had no websocket for `grace_s`; False once it is closed."""


class OnDemandSessions:
    """Creates sessions for connecting clients and ends each when its clients are gone."""

    def __init__(self, sessions: SessionService, clients: ClientWatch, grace_s: float) -> None:
        self._sessions = sessions
        self._clients = clients
        self._grace_s = grace_s
        self._tasks = TaskSet("on-demand")

    async def open(self, principal: Principal, request: SessionRequest) -> Session:
        """Create a session (raising what the REST create raises) and watch its clients."""
        session = await self._sessions.create(principal, request)
        self._tasks.spawn(self._end_when_idle(principal, session), name=f"idle-{session.id}")
        return session

    async def _end_when_idle(self, principal: Principal, session: Session) -> None:
        if not await self._clients.idle_for(session.token, self._grace_s):
            return  # stopped some other way (REST stop, timeout, shutdown)
        log.info(
            "last client gone for %.1fs: stopping the session",
            self._grace_s,
            extra={"session_id": str(session.id)},
        )
        try:
            await self._sessions.stop(principal, session.id)
        except DomainError as error:  # e.g. the project was deleted meanwhile
            log.warning(
                "stopping an idle session: %s", error, extra={"session_id": str(session.id)}
            )

    async def close(self) -> None:
        """Stop watching (at shutdown; the service stops its sessions itself)."""
        await self._tasks.close(grace_s=1.0)

    async def __aenter__(self) -> OnDemandSessions:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
