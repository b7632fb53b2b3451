"""The live view's edge: GET /live (the page) and GET /live/static/{name} (its script and style).

The page is static apart from `theme` and `ui`, rendered into it so it never flashes the wrong
theme, and the input tables of `liveview.input_events`, inlined so the script shares them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template
from typing import Annotated

from fastapi import APIRouter, Query, Response

from browserfleet.liveview.input_events import input_map_json

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
ASSET_TYPES = {"live.js": "text/javascript; charset=utf-8", "live.css": "text/css; charset=utf-8"}
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
def page_template() -> Template:
    return Template((files("browserfleet.liveview") / "static" / "live.html").read_text("utf-8"))


def asset_href(name: str) -> str:
    # Relative, so the page also works under a root path (/prefix/live -> /prefix/live/static).
    return f"live/static/{name}?v={asset(name).version}"


def render_page(*, light: bool, ui: bool) -> str:
    """The live page for one theme and bar setting (the values are closed sets, no escaping)."""
    return page_template().substitute(
        theme="light" if light else "dark",
        ui="true" if ui else "false",
        css_href=asset_href("live.css"),
        js_href=asset_href("live.js"),
        input_map=input_map_json(),
    )


@router.get("/live")
async def live_page(
    theme: Annotated[str | None, Query()] = None,
    ui: Annotated[str | None, Query()] = None,
) -> Response:
    """The live view; the page reads `wss` (the session's cdpUrl) from the query itself."""
    html = render_page(
        light=(theme or "").lower() == "light",
        ui=(ui or "").lower() != "false",
    )
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


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
