"""GET /connect/json/version: connect-on-demand for clients that ask for the websocket first.

Creates a session as `POST /browsers` would (the query carries the create request's fields, see
api.connect) and answers the browser's /json/version with `webSocketDebuggerUrl` pointing at
that session's CDP endpoint: the URL holds the session's token, never the API key. The session
ends once no client has been connected to it for the grace period. The `/connect` websocket
itself skips ASGI (api.websocket_protocol).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from browserfleet.api.connect import API_KEY_HEADER, EDGE_ERRORS, Connector, refusal_for
from browserfleet.api.deps import base_url

router = APIRouter(include_in_schema=False)


@router.get("/connect/json/version")
@router.get("/connect/json/version/")  # Playwright asks with the slash
async def connect_version(request: Request) -> Response:
    connector: Connector = request.app.state.connector
    try:
        session = await connector.open(
            request.query_params.multi_items(), request.headers.get(API_KEY_HEADER)
        )
        body = await connector.version(session, base_url(request))
    except EDGE_ERRORS as exc:
        status, detail, headers = refusal_for(exc, connector.retry_after_s)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return Response(body, media_type="application/json")
