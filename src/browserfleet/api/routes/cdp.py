"""The CDP gateway's HTTP edge: GET /cdp/{token}/json/*, and the error table of its upgrades.

The /cdp/{token}/devtools/* websockets do not go through ASGI: api.websocket_protocol hands
them to the gateway's raw relay right after the upgrade request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from browserfleet.api.deps import base_url
from browserfleet.cdp import (
    BrowserUnreachable,
    CdpGatewayServer,
    TargetNotFound,
    TooManyConnections,
)
from browserfleet.cdp.discovery import DISCOVERY_PATHS
from browserfleet.errors import SessionNotFound

PublicBase = Callable[[Request], str]
GatewayOf = Callable[[HTTPConnection], CdpGatewayServer]

_ERRORS: dict[type[Exception], tuple[int, str]] = {
    SessionNotFound: (404, "Session not found"),
    TargetNotFound: (404, "Target not found"),
    TooManyConnections: (429, "Too many CDP connections open for this session"),
    BrowserUnreachable: (502, "Browser not reachable"),
}
GATEWAY_ERRORS = tuple(_ERRORS)


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
        except GATEWAY_ERRORS as exc:
            status, detail = refusal_of(exc)
            return JSONResponse({"detail": detail}, status_code=status)
        return Response(body, media_type="application/json")

    return discover


def refusal_of(exc: Exception) -> tuple[int, str]:
    """(HTTP status, detail) answering a gateway error, for discovery and websocket upgrades."""
    return next(answer for kind, answer in _ERRORS.items() if isinstance(exc, kind))
