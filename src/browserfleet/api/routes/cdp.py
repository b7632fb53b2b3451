"""The CDP gateway's edge: GET /cdp/{token}/json/* and the /cdp/{token}/devtools/* websockets.

Thin: it adapts Starlette's request and websocket to the gateway and maps its errors to HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from browserfleet.api.deps import base_url
from browserfleet.cdp import BrowserUnreachable, CdpGatewayServer, ClientGone, TargetNotFound
from browserfleet.cdp.discovery import DISCOVERY_PATHS
from browserfleet.errors import SessionNotFound

PublicBase = Callable[[Request], str]
GatewayOf = Callable[[HTTPConnection], CdpGatewayServer]

_ERRORS: dict[type[Exception], tuple[int, str]] = {
    SessionNotFound: (404, "Session not found"),
    TargetNotFound: (404, "Target not found"),
    BrowserUnreachable: (502, "Browser not reachable"),
}
_GATEWAY_ERRORS = tuple(_ERRORS)
_DENIAL_EXTENSION = "websocket.http.response"
_POLICY_VIOLATION = 1008


def build_cdp_router(
    gateway: CdpGatewayServer | None = None, public_base: PublicBase = base_url
) -> APIRouter:
    """Routes for every /cdp/{token}/... path; include at the app's root, outside /api.

    `gateway` None means the app's `app.state.gateway`, looked up per request because the
    lifespan builds it after the routes. `public_base` gives the base of the URLs handed out:
    by default the configured public URL, else the scheme and Host of the request.
    """
    router = APIRouter(include_in_schema=False)
    gateway_of = _from_app_state if gateway is None else _fixed(gateway)
    for path in DISCOVERY_PATHS:
        router.add_api_route(
            f"/cdp/{{token}}/{path}", _discovery(gateway_of, public_base, path), methods=["GET"]
        )
    router.add_api_websocket_route("/cdp/{token}/devtools/{kind}/{target_id}", _relay(gateway_of))
    return router


def _fixed(gateway: CdpGatewayServer) -> GatewayOf:
    return lambda _connection: gateway


def _from_app_state(connection: HTTPConnection) -> CdpGatewayServer:
    found: CdpGatewayServer = connection.app.state.gateway
    return found


def _discovery(
    gateway_of: GatewayOf, public_base: PublicBase, path: str
) -> Callable[[str, Request], Awaitable[Response]]:
    async def discover(token: str, request: Request) -> Response:
        try:
            body = await gateway_of(request).discover(token, path, public_base(request))
        except _GATEWAY_ERRORS as exc:
            status, detail = _error_answer(exc)
            return JSONResponse({"detail": detail}, status_code=status)
        return Response(body, media_type="application/json")

    return discover


def _relay(gateway_of: GatewayOf) -> Callable[[WebSocket, str, str, str], Awaitable[None]]:
    async def relay(websocket: WebSocket, token: str, kind: str, target_id: str) -> None:
        client = StarletteClient(websocket)
        try:
            await gateway_of(websocket).serve(token, kind, target_id, client)
        except _GATEWAY_ERRORS as exc:
            status, detail = _error_answer(exc)
            await _deny(websocket, status, detail)

    return relay


def _error_answer(exc: Exception) -> tuple[int, str]:
    return next(answer for kind, answer in _ERRORS.items() if isinstance(exc, kind))


async def _deny(websocket: WebSocket, status: int, detail: str) -> None:
    """Refuse the upgrade with an HTTP answer when the server can send one, else close."""
    if _DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    else:
        await websocket.close(_POLICY_VIOLATION, detail)


class StarletteClient:
    """A Starlette WebSocket as the relay's ClientSocket, one ASGI message per call."""

    __slots__ = ("_gone", "_websocket")

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._gone = False

    async def accept(self) -> None:
        try:
            await self._websocket.accept()
        except (WebSocketDisconnect, OSError) as exc:
            self._gone = True
            raise ClientGone from exc

    async def receive(self) -> str | bytes | None:
        message = await self._websocket.receive()
        if message["type"] == "websocket.receive":
            text: str | None = message.get("text")
            return text if text is not None else message.get("bytes") or b""
        self._gone = True
        return None

    async def send(self, message: str | bytes) -> None:
        event = (
            {"type": "websocket.send", "text": message}
            if isinstance(message, str)
            else {"type": "websocket.send", "bytes": message}
        )
        try:
            await self._websocket.send(event)
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            self._gone = True
            raise ClientGone from exc

    async def close(self, code: int, reason: str) -> None:
        if self._gone:
            return
        self._gone = True
        try:
            await self._websocket.close(code, reason)
        except (WebSocketDisconnect, OSError, RuntimeError):
            return
