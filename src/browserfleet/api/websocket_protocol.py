"""uvicorn's WebSocket protocol for browserfleet: CDP upgrades go straight to the gateway's relay.

uvicorn hands every websocket upgrade (the request head and the raw transport) to the `ws`
protocol class of its config. Upgrades of /cdp/{token}/devtools/* (or /devtools/* on a
session's own host, when CDP endpoints are published by host) are given to the CDP gateway,
which joins the client's transport to Chrome's with no ASGI or task per message in between (each
client command is parsed and judged by the CDP policy on the way). An upgrade of /connect
creates a session first (api.connect) and is then relayed the same way. Any other websocket
goes to uvicorn's own implementation, unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from uvicorn.config import Config
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from uvicorn.server import ServerState

from browserfleet.api.connect import (
    API_KEY_HEADER,
    CONNECT_ERRORS,
    CONNECT_PATHS,
    Connector,
    refusal_for,
)
from browserfleet.api.routes.cdp import GATEWAY_ERRORS, refusal_of
from browserfleet.cdp import CdpGatewayServer, ClientPeer
from browserfleet.cdp.addressing import PATH_ADDRESSING, CdpAddressing
from browserfleet.cdp.handshake import (
    HEAD_END,
    MAX_HEAD,
    DevtoolsPath,
    HandshakeError,
    UpgradeRequest,
    devtools_path,
    host_devtools_path,
    parse_upgrade,
    refusal,
    websocket_key,
)

# Where the app's lifespan publishes the gateway, the connector and the CDP addressing
# (uvicorn passes the lifespan state along).
GATEWAY_STATE_KEY = "browserfleet.cdp_gateway"
CONNECT_STATE_KEY = "browserfleet.connector"
MAX_QUERY_FIELDS = 64
ADDRESSING_STATE_KEY = "browserfleet.cdp_addressing"


class GatewayWebSocketProtocol(asyncio.Protocol):
    """uvicorn's `ws` protocol class (`uvicorn.Config(ws=GatewayWebSocketProtocol)`)."""

    gateway: ClassVar[CdpGatewayServer | None] = None  # else the lifespan state's
    addressing: ClassVar[CdpAddressing | None] = None  # else the lifespan state's

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config, self._server_state, self._app_state = config, server_state, app_state
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._peer: ClientPeer | None = None
        self._delegate: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a TCP transport reads and writes
        self._server_state.connections.add(self)  # type: ignore[arg-type]  # has shutdown()

    def data_received(self, data: bytes) -> None:
        # Once a CDP relay starts, the peer is the transport's protocol and this is bypassed.
        if self._peer is not None:
            self._peer.data_received(data)
        elif self._delegate is not None:
            self._delegate.data_received(data)
        else:
            self._head += data
            head, found, rest = self._head.partition(HEAD_END)
            if found:
                self._upgrade(head + HEAD_END, rest)
            elif len(self._head) > MAX_HEAD:
                self._refuse(431, "Request header fields too large")

    def eof_received(self) -> bool | None:
        if self._delegate is not None:
            return self._delegate.eof_received()
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if self._peer is not None:
            self._peer.connection_lost(exc)
        elif self._delegate is not None:
            self._delegate.connection_lost(exc)

    def _forget(self) -> None:
        self._server_state.connections.discard(self)

    def pause_writing(self) -> None:
        if self._peer is not None:
            self._peer.pause_writing()
        elif self._delegate is not None:
            self._delegate.pause_writing()

    def resume_writing(self) -> None:
        if self._peer is not None:
            self._peer.resume_writing()
        elif self._delegate is not None:
            self._delegate.resume_writing()

    def shutdown(self) -> None:
        """uvicorn is going down (a delegate gets its own call: it registered itself)."""
        if self._peer is not None:
            self._peer.shutdown()
        elif self._delegate is None and self._transport is not None:
            self._transport.close()

    def _upgrade(self, head: bytes, rest: bytes) -> None:
        try:
            request = parse_upgrade(head)
            route = self._devtools_route(request)
            connect = route is None and request.path in CONNECT_PATHS
            if route is None and not connect:
                self._hand_to_uvicorn(head + rest)
                return
            key = websocket_key(request)
        except HandshakeError as exc:
            self._refuse(400, str(exc))
            return
        assert self._transport is not None
        peer = self._peer = ClientPeer(self._transport, on_lost=self._forget)
        if rest:
            peer.data_received(rest)
        gateway = self.gateway or self._app_state.get(GATEWAY_STATE_KEY)
        if not isinstance(gateway, CdpGatewayServer):
            peer.refuse(503, "The CDP gateway is not running")
            return
        if route is not None:
            work = _serve(gateway, route, key, peer)
        else:
            connector = self._app_state.get(CONNECT_STATE_KEY)
            if not isinstance(connector, Connector):
                peer.refuse(404, "Not Found")
                return
            work = _connect(connector, gateway, request, key, peer)
        try:
            gateway.spawn(work, name="cdp-client")
        except RuntimeError:  # the gateway is closing and takes no more work
            work.close()
            peer.refuse(503, "The server is shutting down")

    def _devtools_route(self, request: UpgradeRequest) -> DevtoolsPath | None:
        """The session and target an upgrade names: by path, or by its Host's first label."""
        route = devtools_path(request.path)
        if route is not None:
            return route
        addressing = self.addressing or self._app_state.get(ADDRESSING_STATE_KEY)
        if not isinstance(addressing, CdpAddressing):
            return None
        token = addressing.token_of_host(request.headers.get("host"))
        return None if token is None else host_devtools_path(request.path, token)

    def _hand_to_uvicorn(self, data: bytes) -> None:
        if AutoWebSocketsProtocol is None:  # pragma: no cover - websockets is a dependency
            self._refuse(501, "WebSockets are not supported here")
            return
        delegate = AutoWebSocketsProtocol(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        self._delegate = delegate
        delegate.connection_made(self._transport)  # type: ignore[arg-type]
        delegate.data_received(data)

    def _refuse(self, status: int, detail: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(refusal(status, detail))
            self._transport.close()


def with_gateway(
    gateway: CdpGatewayServer, addressing: CdpAddressing = PATH_ADDRESSING
) -> type[GatewayWebSocketProtocol]:
    """The protocol class bound to one gateway (an app run without the browserfleet lifespan)."""
    bound = {"gateway": gateway, "addressing": addressing}
    return type("BoundGatewayWebSocketProtocol", (GatewayWebSocketProtocol,), bound)


async def _serve(
    gateway: CdpGatewayServer, route: DevtoolsPath, key: str, peer: ClientPeer
) -> None:
    try:
        await gateway.relay(route.token, route.kind, route.target_id, key, peer)
    except GATEWAY_ERRORS as exc:
        peer.refuse(*refusal_of(exc))
    finally:
        if peer.relay is None:  # refused, cancelled or failed before the upgrade completed
            peer.transport.close()


async def _connect(
    connector: Connector,
    gateway: CdpGatewayServer,
    request: UpgradeRequest,
    key: str,
    peer: ClientPeer,
) -> None:
    """Create a session for this client, then relay it to the browser like any CDP client.
    Whatever fails before the upgrade is answered as the REST create would answer it."""
    try:
        pairs = _query_pairs(request.query)
    except ValueError:
        peer.refuse(400, f"At most {MAX_QUERY_FIELDS} query parameters")
        peer.transport.close()
        return
    try:
        session = await connector.open(pairs, request.headers.get(API_KEY_HEADER))
        kind, target_id = await connector.browser_target(session)
        await gateway.relay(session.token, kind, target_id, key, peer)
    except CONNECT_ERRORS as exc:
        peer.refuse(*refusal_for(exc, connector.retry_after_s))
    finally:
        if peer.relay is None:
            peer.transport.close()


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
