"""Frame relay between one gateway client and Chrome's DevTools websocket.

Two pumps, owned by a TaskGroup, copy messages as they are (text stays text, binary stays
binary); when either side closes, or the gateway closes the token, both sides are closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from browserfleet.cdp.intercept import intercept

# Close codes sent to clients. The token was closed (session stopped): the endpoint goes away
# for good, which is what 1001 means; 1011 is kept for the browser side failing unexpectedly.
SESSION_CLOSED = 1001
BROWSER_LOST = 1011
_MIRRORED_CODES = frozenset({1000, 1001})


class ClientGone(Exception):
    """The client's socket is closed; nothing more can be sent to it."""


class ClientSocket(Protocol):
    """The server side of a client's websocket, as the web framework hands it to us."""

    async def accept(self) -> None:
        """Complete the upgrade; raises ClientGone if the client has gone."""

    async def receive(self) -> str | bytes | None:
        """The next message (text as str, binary as bytes); None once the client has gone."""

    async def send(self, message: str | bytes) -> None:
        """Send as text (str) or binary (bytes); raises ClientGone if the client has gone."""

    async def close(self, code: int, reason: str) -> None:
        """Close the socket; a no-op when it is already closed."""


@dataclass(slots=True)
class Counters:
    """Per-token traffic counters; lengths are characters for text frames, bytes for binary."""

    open_connections: int = 0
    bytes_to_browser: int = 0
    bytes_to_client: int = 0


async def relay(
    client: ClientSocket,
    upstream: ClientConnection,
    *,
    allow_resizing: bool,
    counters: Counters,
    stop: asyncio.Event,
) -> tuple[int, str]:
    """Copy frames both ways until one side closes or `stop` is set.

    Returns the close code and reason to send to the client; the caller closes both sides.
    """
    async with asyncio.TaskGroup() as group:
        from_client = group.create_task(
            _client_to_browser(client, upstream, allow_resizing, counters)
        )
        from_browser = group.create_task(_browser_to_client(upstream, client, counters))
        stopped = group.create_task(stop.wait())
        pumps = (from_client, from_browser, stopped)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
    return _client_close_code(stop.is_set(), upstream)


def _client_close_code(stopped: bool, upstream: ClientConnection) -> tuple[int, str]:
    if stopped:
        return SESSION_CLOSED, "session closed"
    if upstream.close_code in _MIRRORED_CODES:
        return upstream.close_code or 1000, upstream.close_reason or ""
    if upstream.close_code is None:
        return 1000, ""  # the client left first; this close is only a formality
    return BROWSER_LOST, "browser connection lost"


async def _client_to_browser(
    client: ClientSocket, upstream: ClientConnection, allow_resizing: bool, counters: Counters
) -> None:
    try:
        while (message := await client.receive()) is not None:
            reply = intercept(message, allow_resizing)
            if reply is None:
                counters.bytes_to_browser += len(message)
                await upstream.send(message)
            else:
                await client.send(reply)
    except (ConnectionClosed, ClientGone):
        return


async def _browser_to_client(
    upstream: ClientConnection, client: ClientSocket, counters: Counters
) -> None:
    try:
        async for message in upstream:
            counters.bytes_to_client += len(message)
            await client.send(message)
    except (ConnectionClosed, ClientGone):
        return
