"""A CDP connection for browserfleet's own long-lived use: calls in flight at once, and events.

One websocket and one reader task. `post()` sends a command and returns the future of its
answer without waiting, so commands for a paused target can be pipelined (Chrome runs one
session's commands in order); events go to a handler the reader awaits in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from browserfleet.cdp.client import CdpError, JsonObject
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

# method, params, session id (None: the browser itself)
EventHandler = Callable[[str, JsonObject, str | None], Awaitable[None]]


class CdpLink:
    """Open with `await CdpLink.open(url, on_event)`; close with `await link.close()`."""

    def __init__(self, ws: ClientConnection, on_event: EventHandler, call_timeout_s: float) -> None:
        self._ws = ws
        self._on_event = on_event
        self._call_timeout_s = call_timeout_s
        self._next_id = 0
        self._pending: dict[int, tuple[str, str | None, asyncio.Future[JsonObject]]] = {}
        self._tasks = TaskSet("cdp-link")
        self._closed = asyncio.get_running_loop().create_future()
        self._tasks.spawn(self._read(), name="read")

    @classmethod
    async def open(
        cls,
        ws_url: str,
        on_event: EventHandler,
        *,
        dialer: DevtoolsDialer | None = None,
        open_timeout_s: float = 5.0,
        call_timeout_s: float = 10.0,
    ) -> Self:
        """Open ws_url; through `dialer` when given (a browser in another network namespace),
        else by its host and port."""
        async with asyncio.timeout(open_timeout_s):
            sock = await dialer.connect() if dialer is not None else None
        try:
            ws = await connect(
                ws_url,
                max_size=None,
                compression=None,
                open_timeout=open_timeout_s,
                proxy=None,
                sock=sock,
            )
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        return cls(ws, on_event, call_timeout_s)

    @property
    def is_open(self) -> bool:
        return not self._closed.done()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def post(
        self, method: str, params: JsonObject | None = None, *, session_id: str | None = None
    ) -> asyncio.Future[JsonObject]:
        """Send one command now; the future holds its result (or CdpError). Never blocks on
        the answer, so it is safe inside an event handler."""
        if self._closed.done():
            raise CdpError(method, "the connection is closed")
        self._next_id += 1
        answer: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        # Marks an error as seen: a caller that only wanted the command sent need not await.
        answer.add_done_callback(_retrieve)
        self._pending[self._next_id] = (method, session_id, answer)
        message: JsonObject = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        try:
            await self._ws.send(json.dumps(message))
        except ConnectionClosed:
            self._pending.pop(self._next_id, None)
            raise CdpError(method, "the connection closed") from None
        return answer

    async def call(
        self, method: str, params: JsonObject | None = None, *, session_id: str | None = None
    ) -> JsonObject:
        """Send one command and wait (bounded) for its result."""
        answer = await self.post(method, params, session_id=session_id)
        async with asyncio.timeout(self._call_timeout_s):
            return await answer

    async def settle(self, answers: list[asyncio.Future[JsonObject]]) -> list[CdpError]:
        """Wait (bounded) for posted commands; return the errors among their answers."""
        if not answers:
            return []
        async with asyncio.timeout(self._call_timeout_s):
            results = await asyncio.gather(*answers, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, CdpError):
                raise error
        return [e for e in errors if isinstance(e, CdpError)]

    def forget_session(self, session_id: str) -> None:
        """A detached target answers nothing more: fail its pending commands now."""
        for call_id, (method, owner, answer) in list(self._pending.items()):
            if owner == session_id:
                del self._pending[call_id]
                if not answer.done():
                    answer.set_exception(CdpError(method, "the target detached"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
        await self._tasks.close(grace_s=2.0)
        self._finish()

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                if isinstance(message, dict):
                    await self._dispatch(message)
        except ConnectionClosed:
            pass
        finally:
            self._finish()

    async def _dispatch(self, message: dict[str, object]) -> None:
        call_id = message.get("id")
        if isinstance(call_id, int):
            pending = self._pending.pop(call_id, None)
            if pending is None or pending[2].done():
                return
            called, _, answer = pending
            if (error := message.get("error")) is not None:
                answer.set_exception(CdpError(called, str(error)))
            else:
                result = message.get("result")
                answer.set_result(result if isinstance(result, dict) else {})
            return
        event, params = message.get("method"), message.get("params")
        session_id = message.get("sessionId")
        if isinstance(event, str):
            try:
                await self._on_event(
                    event,
                    params if isinstance(params, dict) else {},
                    session_id if isinstance(session_id, str) else None,
                )
            except CdpError as error:
                log.debug("cdp event %s: %s", event, error)

    def _finish(self) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        for method, _, answer in self._pending.values():
            if not answer.done():
                answer.set_exception(CdpError(method, "the connection closed"))
        self._pending.clear()


def _retrieve(answer: asyncio.Future[JsonObject]) -> None:
    if not answer.cancelled():
        answer.exception()
