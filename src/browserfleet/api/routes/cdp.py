"""The CDP gateway's HTTP edge: GET /cdp/{token}/json/* (and /json/* at the root of a session's
own host, when CDP endpoints are published by host), and the error table of its upgrades.

The devtools websockets do not go through ASGI: api.websocket_protocol hands them to the
gateway's raw relay right after the upgrade request.
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
from browserfleet.cdp.addressing import PATH_ADDRESSING, CdpAddressing
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
    gateway: CdpGatewayServer | None = None,
    public_base: PublicBase = base_url,
    addressing: CdpAddressing = PATH_ADDRESSING,
) -> APIRouter:
    """Routes for every /cdp/{token}/... path, and with a host template /json/* at the root
    of a session's host; include at the app's root, outside /api.

    `gateway` None means the app's `app.state.gateway`, looked up per request because the
    lifespan builds it after the routes. `public_base` gives the base of the URLs handed out:
    by default the configured public URL, else the scheme and Host of the request.
    """
    router = APIRouter(include_in_schema=False)
    gateway_of = _from_app_state if gateway is None else _fixed(gateway)
    for path in DISCOVERY_PATHS:
        answer = _discovery(gateway_of, public_base, addressing, path)
        router.add_api_route(f"/cdp/{{token}}/{path}", answer, methods=["GET"])
        if addressing.host_template is not None:
            by_host = _discovery_by_host(answer, addressing)
            router.add_api_route(f"/{path}", by_host, methods=["GET"])
    return router


def _fixed(gateway: CdpGatewayServer) -> GatewayOf:
    return lambda _connection: gateway


def _from_app_state(connection: HTTPConnection) -> CdpGatewayServer:
    found: CdpGatewayServer = connection.app.state.gateway
    return found


Discover = Callable[[str, Request], Awaitable[Response]]


def _discovery(
    gateway_of: GatewayOf, public_base: PublicBase, addressing: CdpAddressing, path: str
) -> Discover:
    async def discover(token: str, request: Request) -> Response:
        prefix = addressing.websocket_prefix(public_base(request), token)
        try:
            body = await gateway_of(request).discover(token, path, prefix)
        except GATEWAY_ERRORS as exc:
            status, detail = refusal_of(exc)
            return JSONResponse({"detail": detail}, status_code=status)
        return Response(body, media_type="application/json")

    return discover


def _discovery_by_host(
    discover: Discover, addressing: CdpAddressing
) -> Callable[[Request], Awaitable[Response]]:
    """/json/* at the root of a session's own host: the token is the Host's first label."""

    async def by_host(request: Request) -> Response:
        token = addressing.token_of_host(request.headers.get("host"))
        if token is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return await discover(token, request)

    return by_host


def refusal_of(exc: Exception) -> tuple[int, str]:
    """(HTTP status, detail) answering a gateway error, for discovery and websocket upgrades."""
    return next(answer for kind, answer in _ERRORS.items() if isinstance(exc, kind))
