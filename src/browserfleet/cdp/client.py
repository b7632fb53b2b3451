"""A minimal Chrome DevTools Protocol client: one websocket, one call at a time.

Enough for the launcher's own checks (viewport, window bounds). Events are read and dropped;
anything that needs events or concurrent calls belongs elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

from websockets.asyncio.client import ClientConnection, connect

JsonObject: TypeAlias = dict[str, object]


class CdpError(Exception):
    """The browser answered a call with an error, or the connection broke mid-call."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method


class CdpConnection:
    def __init__(self, ws: ClientConnection, call_timeout_s: float) -> None:
        self._ws = ws
        self._call_timeout_s = call_timeout_s
        self._next_id = 0
        # Responses are matched by reading in call(); a second caller would steal them.
        self._lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, ws_url: str, *, open_timeout_s: float = 5.0, call_timeout_s: float = 10.0
    ) -> AsyncIterator[CdpConnection]:
        # DevTools frames can be large (screenshots, DOM) and Chrome does not compress them.
        async with connect(
            ws_url, max_size=None, compression=None, open_timeout=open_timeout_s, proxy=None
        ) as ws:
            yield cls(ws, call_timeout_s)

    async def call(
        self, method: str, params: JsonObject | None = None, *, session_id: str | None = None
    ) -> JsonObject:
        """Send one command and return its result; raises CdpError on an error answer."""
        async with self._lock:
            self._next_id += 1
            message: JsonObject = {"id": self._next_id, "method": method, "params": params or {}}
            if session_id is not None:
                message["sessionId"] = session_id
            await self._ws.send(json.dumps(message))
            async with asyncio.timeout(self._call_timeout_s):
                return await self._answer(method, self._next_id)

    async def _answer(self, method: str, call_id: int) -> JsonObject:
        async for frame in self._ws:
            answer = json.loads(frame)
            if not isinstance(answer, dict) or answer.get("id") != call_id:
                continue  # an event, or an answer to a call given up on by timeout
            error = answer.get("error")
            if error is not None:
                raise CdpError(method, str(error))
            result = answer.get("result", {})
            return result if isinstance(result, dict) else {}
        raise CdpError(method, "connection closed before the answer")
