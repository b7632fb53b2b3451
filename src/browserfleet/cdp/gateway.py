"""The CDP gateway: maps each session's secret token to its browser's DevTools server.

Serves the rewritten /json/* discovery answers and relays DevTools websockets; closing a token
closes every socket of it. Knows nothing of sessions: the session service opens and closes
routes through the `CdpGateway` port.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Protocol, Self

from browserfleet.cdp.client import CdpConnection, CdpError
from browserfleet.cdp.dial import DevtoolsDialer, fetch, get_json
from browserfleet.cdp.discovery import DISCOVERY_PATHS, PASSTHROUGH_PATHS, rewrite_body
from browserfleet.cdp.handshake import (
    HandshakeError,
    browser_request,
    browser_status,
    switching_protocols,
)
from browserfleet.cdp.policy import Count, Limit, SessionPolicy, refuse_over_limit
from browserfleet.cdp.relay import (
    SESSION_CLOSED,
    BrowserPeer,
    ClientPeer,
    Counters,
    Relay,
    RelayLimits,
)
from browserfleet.errors import SessionNotFound
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

_TARGET_PART = re.compile(r"[A-Za-z0-9._-]{1,200}")


class BrowserUnreachable(Exception):
    """Chrome did not answer on its DevTools port."""


class TargetNotFound(Exception):
    """Chrome has no DevTools target at that path."""


class TooManyConnections(Exception):
    """The session already has its maximum of open CDP websockets."""


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    """Caps per session: websockets, browser contexts, page targets; and per message."""

    max_websockets: int = 32
    max_browser_contexts: int = 16
    max_targets: int = 50
    relay: RelayLimits = field(default_factory=RelayLimits)

    def cap(self, limit: Limit) -> int:
        return self.max_browser_contexts if limit is Limit.CONTEXTS else self.max_targets


class RouteSpec(Protocol):
    """What the gateway needs to know of a session (sessions.ports.GatewayRoute fits)."""

    @property
    def token(self) -> str: ...

    @property
    def devtools(self) -> DevtoolsDialer: ...

    @property
    def allow_resizing(self) -> bool: ...

    @property
    def downloads(self) -> PurePosixPath:
        """The session's downloads directory, as the browser sees it."""

    @property
    def uploads(self) -> PurePosixPath:
        """The session's upload area, as the browser sees it."""


@dataclass(eq=False, slots=True)
class _Route:
    devtools: DevtoolsDialer
    policy: SessionPolicy
    counters: Counters = field(default_factory=Counters)
    relays: set[Relay] = field(default_factory=set)
    connecting: int = 0  # upgrades under way: they count against the websocket cap
    attached: int = 0  # websockets ever relayed, so a watcher sees one come and go
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    counting: asyncio.Lock = field(default_factory=asyncio.Lock)  # one cap check at a time
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set by close()
    closed: bool = False

    def __post_init__(self) -> None:
        self.idle.set()

    def attach(self, relay: Relay) -> None:
        self.relays.add(relay)
        self.attached += 1
        self.counters.open_connections += 1
        self.idle.clear()

    def detach(self, relay: Relay) -> None:
        self.relays.discard(relay)
        self.counters.open_connections -= 1
        if not self.relays:
            self.idle.set()


class CdpGatewayServer:
    """Implements sessions.ports.CdpGateway. Use as `async with CdpGatewayServer() as gateway:`."""

    def __init__(
        self,
        *,
        http_timeout_s: float = 5.0,
        connect_timeout_s: float = 10.0,
        close_timeout_s: float = 5.0,
        limits: GatewayLimits | None = None,
    ) -> None:
        self._limits = limits or GatewayLimits()
        self._routes: dict[str, _Route] = {}
        # Revoked, their sockets maybe still closing, until `close` has waited for them.
        self._revoked: dict[str, _Route] = {}
        self._retired = Counters()  # traffic of closed routes, so totals never go backwards
        self._http_timeout_s = http_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        self._tasks = TaskSet("cdp-gateway")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every token and end every connection's task."""
        tokens = {*self._routes, *self._revoked}
        await asyncio.gather(*(self.close(token) for token in tokens))
        await self._tasks.close(grace_s=self._close_timeout_s)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run `work` (a client connection's handling) as a task the gateway owns and ends."""
        self._tasks.spawn(work, name=name)

    def open(self, route: RouteSpec) -> None:
        """Start serving /cdp/{token}/... for the browser its dialer reaches."""
        if route.token in self._routes:
            raise ValueError("this token is already open")
        policy = SessionPolicy(route.downloads, route.uploads, route.allow_resizing)
        self._routes[route.token] = _Route(route.devtools, policy)

    def revoke(self, token: str) -> None:
        """Forget the token and end its connections now: from here on no message reaches the
        browser and the token answers 404. The clients' closing handshakes (1001) go on by
        themselves; `close` waits for them. Idempotent."""
        route = self._routes.pop(token, None)
        if route is None:
            return
        self._revoked[token] = route
        self._retired.bytes_to_browser += route.counters.bytes_to_browser
        self._retired.bytes_to_client += route.counters.bytes_to_client
        route.closed = True
        route.ended.set()
        for relay in list(route.relays):
            relay.end(SESSION_CLOSED, "session closed")

    async def close(self, token: str) -> None:
        """Revoke the token and wait (bounded) until its sockets are closed; idempotent."""
        self.revoke(token)
        route = self._revoked.pop(token, None)
        if route is None:
            return
        try:
            await asyncio.wait_for(route.idle.wait(), self._close_timeout_s)
        except TimeoutError:
            log.warning("cdp sockets still open %.1fs after close", self._close_timeout_s)

    async def idle_for(self, token: str, grace_s: float) -> bool:
        """Return True once the token has had no websocket, open or opening, for `grace_s`
        without a break; False as soon as it is closed (or was never open)."""
        while True:
            route = self._routes.get(token)
            if route is None or route.closed:
                return False
            await route.idle.wait()
            seen = route.attached
            try:  # the grace period itself, restarted by any client that comes meanwhile
                await asyncio.wait_for(route.ended.wait(), grace_s)
                return False  # closed during it
            except TimeoutError:
                pass
            if route.closed:
                return False
            if route.idle.is_set() and route.connecting == 0 and route.attached == seen:
                return True

    def counters(self, token: str) -> Counters | None:
        """A snapshot of the token's counters, or None when it is not open."""
        route = self._routes.get(token)
        return None if route is None else replace(route.counters)

    def totals(self) -> Counters:
        """Traffic of every route, open and closed (monotonic, for metrics)."""
        total = replace(self._retired)
        for route in self._routes.values():
            total.open_connections += route.counters.open_connections
            total.bytes_to_browser += route.counters.bytes_to_browser
            total.bytes_to_client += route.counters.bytes_to_client
        return total

    async def discover(self, token: str, path: str, prefix: str) -> bytes:
        """Chrome's answer to `path` (a DISCOVERY_PATHS key), its websocket URLs rewritten to
        start with `prefix` (cdp.addressing: the session's websocket base) instead of Chrome's
        own origin."""
        route = self._route(token)
        upstream_path = DISCOVERY_PATHS[path]
        try:
            async with asyncio.timeout(self._http_timeout_s):
                status, body = await fetch(route.devtools, upstream_path)
        except (OSError, ValueError, TimeoutError) as exc:
            raise BrowserUnreachable from exc
        if status != 200:
            raise BrowserUnreachable(f"{upstream_path} answered {status}")
        if route.closed:
            raise SessionNotFound
        if upstream_path in PASSTHROUGH_PATHS:
            return body
        return rewrite_body(body, prefix)

    async def relay(
        self, token: str, kind: str, target_id: str, key: str, client: ClientPeer
    ) -> None:
        """Relay one client to /devtools/{kind}/{target_id} until either side closes.

        Raises SessionNotFound, TooManyConnections, TargetNotFound or BrowserUnreachable before
        the upgrade is answered (the caller refuses it); otherwise returns once both sockets are
        closed.
        """
        route = self._route(token)
        if route.connecting + len(route.relays) >= self._limits.max_websockets:
            raise TooManyConnections
        route.connecting += 1
        try:
            browser, early = await self._connect(route, kind, target_id)
        finally:
            route.connecting -= 1
        if route.closed or client.gone:  # close() ran, or the client left, while we connected
            browser.connected.abort()
            if route.closed:
                raise SessionNotFound
            return
        relay = Relay(
            client.transport,
            browser.connected,
            policy=route.policy,
            counters=route.counters,
            limits=self._limits.relay,
            count=self._counter(route),
        )
        route.attach(relay)
        try:
            client.start(relay, switching_protocols(key))
            browser.start(relay, early)
            await relay.done
        finally:
            if not relay.done.done():  # cancelled: the gateway is closing
                relay.end(SESSION_CLOSED, "gateway closed")
            route.detach(relay)

    def _counter(self, route: _Route) -> Callable[[Count, Callable[[bytes | None], None]], None]:
        """How a relay has a capped command counted: a task of the gateway asks Chrome."""

        def count(held: Count, done: Callable[[bytes | None], None]) -> None:
            async def counting() -> None:
                done(await self._over_cap(route, held))

            self.spawn(counting(), name="cdp-count")

        return count

    async def _over_cap(self, route: _Route, held: Count) -> bytes | None:
        """None when the session is under its cap for `held`, else the refusal. Checks run one
        at a time per session and ask Chrome itself, so every way of opening counts."""
        cap = self._limits.cap(held.limit)
        async with route.counting:
            try:
                have = await self._browser_count(route, held.limit)
            except (BrowserUnreachable, CdpError, OSError, TimeoutError) as exc:
                log.warning("could not count %s: %s", held.limit.value, exc)
                return held.command.refusal("the browser could not be asked; retry").reply()
        return None if have < cap else refuse_over_limit(held.command, held.limit, cap)

    async def _browser_count(self, route: _Route, limit: Limit) -> int:
        version = await self._http_json(route, "/json/version")
        url = version.get("webSocketDebuggerUrl") if isinstance(version, dict) else None
        if not isinstance(url, str):
            raise BrowserUnreachable("no browser websocket")
        async with CdpConnection.connect(
            url, dialer=route.devtools, call_timeout_s=self._connect_timeout_s
        ) as cdp:
            if limit is Limit.CONTEXTS:
                found = (await cdp.call("Target.getBrowserContexts")).get("browserContextIds")
                return len(found) if isinstance(found, list) else 0
            infos = (await cdp.call("Target.getTargets")).get("targetInfos")
            listed = infos if isinstance(infos, list) else []
            pages = [t for t in listed if isinstance(t, dict) and t.get("type") == "page"]
            return len(pages)

    async def _http_json(self, route: _Route, path: str) -> object:
        try:
            async with asyncio.timeout(self._http_timeout_s):
                return await get_json(route.devtools, path)
        except (OSError, ValueError, TimeoutError) as exc:
            raise BrowserUnreachable from exc

    def _route(self, token: str) -> _Route:
        route = self._routes.get(token)
        if route is None:
            raise SessionNotFound
        return route

    async def _connect(self, route: _Route, kind: str, target_id: str) -> tuple[BrowserPeer, bytes]:
        """An upgraded connection to Chrome's socket, and any bytes that came after its 101."""
        if not (_TARGET_PART.fullmatch(kind) and _TARGET_PART.fullmatch(target_id)):
            raise TargetNotFound
        loop = asyncio.get_running_loop()
        request, accept = browser_request(route.devtools.port, f"/devtools/{kind}/{target_id}")
        peer: BrowserPeer | None = None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                sock = await route.devtools.connect()
                try:
                    _, peer = await loop.create_connection(BrowserPeer, sock=sock)
                except BaseException:
                    sock.close()
                    raise
                peer.connected.write(request)
                head, early = await peer.answer
            status = browser_status(head, accept)
        except (OSError, TimeoutError, HandshakeError) as exc:
            _abort(peer)
            raise BrowserUnreachable from exc
        if status != 101:
            _abort(peer)
            raise TargetNotFound
        return peer, early


def _abort(peer: BrowserPeer | None) -> None:
    if peer is not None and peer.transport is not None:
        peer.transport.abort()
