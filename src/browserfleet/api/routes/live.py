"""The live view's edge: GET /live (the page), GET /live/static/{name} (its script and style)
and the view-only viewers' frames websocket, /live/frames.

The interactive page (`/live?wss=<cdpUrl>`) is static apart from `theme` and `ui`, rendered into
it so it never flashes the wrong theme, and the input tables of `liveview.input_events`, inlined
so the script shares them. The view-only page (`/live?view=<session>.<capability>`) has no input
code at all and no CDP URL: its websocket carries the session's shared screencast frames from
the server to the viewer, and nothing the viewer sends is ever read as anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, WebSocket
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from browserfleet.ids import SessionId
from browserfleet.liveview.input_events import input_map_json
from browserfleet.media.service import MediaService
from browserfleet.tasks import TaskSet

router = APIRouter(include_in_schema=False)

# The CDP base may live on another host (a cdp subdomain), so fetch and websockets may go
# anywhere; everything else comes from us. Any site may frame the page: embedding is the point,
# and the URL itself is the credential.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self' http: https: ws: wss:",
        "frame-ancestors *",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The page URL carries the session's CDP URL; never leak it to anyone in a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
ASSET_TYPES = {
    "live.js": "text/javascript; charset=utf-8",
    "view.js": "text/javascript; charset=utf-8",
    "live.css": "text/css; charset=utf-8",
}
# Close codes of the frames websocket the view-only page tells apart.
SESSION_ENDED = 1000
NOT_ALLOWED = 4403
NOT_RUNNING = 4404
DEFAULT_VIEWER_FPS = 30
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str


@cache
def asset(name: str) -> Asset:
    """A static file of the page, with a content hash that versions its URL."""
    body = (files("browserfleet.liveview") / "static" / name).read_bytes()
    return Asset(body, ASSET_TYPES[name], hashlib.sha256(body).hexdigest()[:16])


@cache
def page_template(name: str = "live.html") -> Template:
    return Template((files("browserfleet.liveview") / "static" / name).read_text("utf-8"))


def asset_href(name: str) -> str:
    # Relative, so the page also works under a root path (/prefix/live -> /prefix/live/static).
    return f"live/static/{name}?v={asset(name).version}"


def render_page(*, light: bool, ui: bool, max_fps: int = 30) -> str:
    """The live page for one theme and bar setting (the values are closed sets, no escaping)."""
    return page_template().substitute(
        theme="light" if light else "dark",
        ui="true" if ui else "false",
        max_fps=str(int(max_fps)),
        css_href=asset_href("live.css"),
        js_href=asset_href("live.js"),
        input_map=input_map_json(),
    )


def render_view_page(*, light: bool) -> str:
    return page_template("view.html").substitute(
        theme="light" if light else "dark",
        css_href=asset_href("live.css"),
        js_href=asset_href("view.js"),
    )


@router.get("/live")
async def live_page(
    request: Request,
    theme: Annotated[str | None, Query()] = None,
    ui: Annotated[str | None, Query()] = None,
    view: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The live view; the page reads `wss` (the session's cdpUrl) or `view` (its view-only
    capability) from the query itself."""
    light = (theme or "").lower() == "light"
    if view is not None:
        html = render_view_page(light=light)
    else:
        media = _media(request)
        max_fps = media.config.viewer_fps if media is not None else DEFAULT_VIEWER_FPS
        html = render_page(light=light, ui=(ui or "").lower() != "false", max_fps=max_fps)
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def _media(connection: HTTPConnection) -> MediaService | None:
    """The media service, when the app has one (a bare live-view app in tests has none)."""
    found = getattr(connection.app.state, "services", None)
    return found.media if found is not None else None


def parse_view(view: str) -> tuple[SessionId, str] | None:
    """`<session id>.<capability>` from a view-only link, or None if it is not one."""
    head, _, capability = view.partition(".")
    try:
        return SessionId(uuid.UUID(head)), capability
    except ValueError:
        return None


@router.websocket("/live/frames")
async def live_frames(websocket: WebSocket, view: str = "") -> None:
    """The session's shared screencast, one JPEG per binary message, at most the viewer cap
    a second. Accepted only with the view capability of a session running on this server."""
    media, parsed = _media(websocket), parse_view(view)
    await websocket.accept()
    if media is None or parsed is None:
        await websocket.close(NOT_ALLOWED)
        return
    session_id, capability = parsed
    expected = media.view_capability(session_id)
    if not hmac.compare_digest(expected.encode(), capability.encode("utf-8", "replace")):
        await websocket.close(NOT_ALLOWED)
        return
    interval = 1.0 / media.config.viewer_fps
    async with media.viewer(session_id) as slot:
        if slot is None:
            await websocket.close(NOT_RUNNING, "the session is not running")
            return
        tasks = TaskSet(f"viewer-{session_id}")
        drain = tasks.spawn(_ignore_input(websocket), name="input")
        try:
            sent_at = 0.0
            while not drain.done():
                taking = tasks.spawn(slot.take(), name="take")
                await asyncio.wait({taking, drain}, return_when=asyncio.FIRST_COMPLETED)
                if not taking.done():
                    taking.cancel()
                    break
                frame = taking.result()
                if frame is None:
                    with contextlib.suppress(Exception):
                        await websocket.close(SESSION_ENDED, "session ended")
                    break
                pause = sent_at + interval - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)  # the per-viewer cap: the newest frame waits
                    frame = slot.peek() or frame
                await websocket.send_bytes(frame.jpeg)
                sent_at = time.monotonic()
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass
        finally:
            await tasks.close(grace_s=2.0)


async def _ignore_input(websocket: WebSocket) -> None:
    """Read and drop whatever the viewer sends (a view-only link has no input); returns when
    the viewer goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


@router.get("/live/static/{name}")
async def live_asset(name: str, v: Annotated[str | None, Query()] = None) -> Response:
    """live.js or live.css; cached for good when asked for by the current content hash."""
    if name not in ASSET_TYPES:
        return Response(status_code=404)
    found = asset(name)
    headers = {
        "Cache-Control": IMMUTABLE if v == found.version else "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(found.body, media_type=found.media_type, headers=headers)
