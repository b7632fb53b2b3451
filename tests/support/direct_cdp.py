"""A raw CDP connection straight to a sandboxed browser's DevTools server, past the gateway
(or, to compare, through it).

What a tenant could do if the gateway forwarded every command: the attack tests drive the
browser this way, so what they show holds whatever the gateway's policy. It enters the
sandbox's network namespace (as root) through the session's workdir, and keeps every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from browserfleet.cdp.dial import get_json
from browserfleet.sandbox.reach import devtools_dialer

Json = dict[str, Any]


class CdpFailed(Exception):
    """The browser answered a command with an error."""


class DirectCdp:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next = 0
        self._answers: dict[int, asyncio.Future[Json]] = {}
        self.events: list[Json] = []
        self._arrived = asyncio.Event()
        self._targets: list[str] = []  # closed again on exit: tabs cost the sandbox's pids

    @classmethod
    @asynccontextmanager
    async def open(cls, workdir: Path) -> AsyncIterator[DirectCdp]:
        dialer = devtools_dialer(workdir)
        try:
            version = await get_json(dialer, "/json/version")
            assert isinstance(version, dict)
            sock = await dialer.connect()
            async with connect(
                str(version["webSocketDebuggerUrl"]), sock=sock, max_size=None, proxy=None
            ) as ws:
                cdp = cls(ws)
                async with asyncio.TaskGroup() as group:
                    reader = group.create_task(cdp._read())
                    try:
                        yield cdp
                    finally:
                        await cdp._close_targets()
                        reader.cancel()
        finally:
            dialer.close()

    @classmethod
    @asynccontextmanager
    async def via_gateway(cls, cdp_url: str) -> AsyncIterator[DirectCdp]:
        """The same, through browserfleet's gateway (a session's cdpUrl)."""
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            version = (await http.get(f"{cdp_url}/json/version")).json()
        async with connect(str(version["webSocketDebuggerUrl"]), max_size=None, proxy=None) as ws:
            cdp = cls(ws)
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(cdp._read())
                try:
                    yield cdp
                finally:
                    await cdp._close_targets()
                    reader.cancel()

    async def call(
        self,
        method: str,
        params: Json | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> Json:
        self._next += 1
        message: Json = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        answer = asyncio.get_running_loop().create_future()
        self._answers[self._next] = answer
        await self._ws.send(json.dumps(message))
        async with asyncio.timeout(timeout):
            result = await answer
        if "error" in result:
            raise CdpFailed(f"{method}: {result['error']}")
        found: Json = result.get("result", {})
        return found

    async def launch(self, session: str, expression: str) -> None:
        """Start evaluating an expression without waiting for its answer (a bomb may never
        answer: its renderer dies)."""
        self._next += 1
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        message = {"id": self._next, "method": "Runtime.evaluate", "params": params}
        await self._ws.send(json.dumps({**message, "sessionId": session}))

    async def page(self, context: str | None = None) -> str:
        """A new about:blank tab (in a browser context, if given); its flat session id."""
        params: Json = {"url": "about:blank"}
        if context is not None:
            params["browserContextId"] = context
        target = (await self.call("Target.createTarget", params))["targetId"]
        self._targets.append(str(target))
        attached = await self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = str(attached["sessionId"])
        await self.call("Page.enable", session=session)
        await self.call("Inspector.enable", session=session)
        return session

    async def evaluate(self, session: str, expression: str, timeout: float = 30) -> Any:
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        answer = await self.call("Runtime.evaluate", params, session, timeout)
        if "exceptionDetails" in answer:
            raise CdpFailed(str(answer["exceptionDetails"]))
        return answer["result"].get("value")

    async def navigate(self, session: str, url: str) -> Json:
        """Page.navigate's answer, once the page (or the error page) stopped loading."""
        mark = len(self.events)
        answer = await self.call("Page.navigate", {"url": url}, session)
        await self.event(
            lambda e: (
                e.get("method") == "Page.frameStoppedLoading" and e.get("sessionId") == session
            ),
            after=mark,
        )
        return answer

    async def event(
        self, predicate: Callable[[Json], bool], timeout: float = 30, after: int = 0
    ) -> Json:
        """The first event (seen so far, from index `after`, or to come) for which predicate is
        true."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events[after:]:
                    if predicate(event):
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    async def _close_targets(self) -> None:
        for target in self._targets:
            with contextlib.suppress(CdpFailed, TimeoutError, ConnectionClosed):
                await self.call("Target.closeTarget", {"targetId": target}, timeout=10)

    async def _read(self) -> None:
        async for frame in self._ws:
            message = json.loads(frame)
            if "id" in message:
                answer = self._answers.pop(message["id"], None)
                if answer is not None and not answer.done():
                    answer.set_result(message)
            else:
                self.events.append(message)
                self._arrived.set()
