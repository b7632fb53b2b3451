"""A minimal Chrome DevTools Protocol client: one websocket, one call (or batch) at a time.

Enough for the launcher's own checks (viewport, window bounds). Events are read and dropped;
anything that needs events or concurrent calls belongs elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TypeAlias

from websockets.asyncio.client import ClientConnection, connect

from browserfleet.cdp.dial import DevtoolsDialer

JsonObject: TypeAlias = dict[str, object]
Command: TypeAlias = tuple[str, JsonObject | None, str | None]  # method, params, session id


class CdpError(Exception):
    """The browser answered a call with an error, or the connection broke mid-call."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.detail = message

    def __reduce__(self) -> tuple[type[CdpError], tuple[str, str]]:
        # Pickled as it was made (a browser's actor raises it in another process).
        return type(self), (self.method, self.detail)


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
        cls,
        ws_url: str,
        *,
        dialer: DevtoolsDialer | None = None,
        open_timeout_s: float = 5.0,
        call_timeout_s: float = 10.0,
    ) -> AsyncIterator[CdpConnection]:
        """Open ws_url; through `dialer` when given (a browser in another network namespace),
        else by its host and port."""
        async with asyncio.timeout(open_timeout_s):
            sock = await dialer.connect() if dialer is not None else None
        # DevTools frames can be large (screenshots, DOM) and Chrome does not compress them.
        async with connect(
            ws_url,
            max_size=None,
            compression=None,
            open_timeout=open_timeout_s,
            proxy=None,
            sock=sock,
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

    async def call_many(self, commands: Sequence[Command]) -> list[JsonObject]:
        """Send every command at once (Chrome runs them in order), then collect the answers:
        one round trip instead of one per command."""
        async with self._lock:
            ids: dict[int, int] = {}
            for index, (method, params, session_id) in enumerate(commands):
                self._next_id += 1
                ids[self._next_id] = index
                message: JsonObject = {
                    "id": self._next_id,
                    "method": method,
                    "params": params or {},
                }
                if session_id is not None:
                    message["sessionId"] = session_id
                await self._ws.send(json.dumps(message))
            async with asyncio.timeout(self._call_timeout_s):
                return await self._answers(commands, ids)

    async def _answers(self, commands: Sequence[Command], ids: dict[int, int]) -> list[JsonObject]:
        results: list[JsonObject] = [{} for _ in commands]
        async for frame in self._ws:
            answer = json.loads(frame)
            index = ids.pop(answer.get("id"), None) if isinstance(answer, dict) else None  # type: ignore[arg-type]
            if index is None:
                continue
            if (error := answer.get("error")) is not None:
                raise CdpError(commands[index][0], str(error))
            result = answer.get("result", {})
            results[index] = result if isinstance(result, dict) else {}
            if not ids:
                return results
        raise CdpError(commands[0][0] if commands else "batch", "connection closed mid-batch")

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
