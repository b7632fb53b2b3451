"""Chrome's /json/* discovery answers, rewritten so every websocket URL goes through the gateway.

Pure functions: Chrome builds its URLs from its own host:port; we swap that origin for
`{ws_base}/cdp/{token}` and keep every other field untouched.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

JsonValue = dict[str, "JsonValue"] | list["JsonValue"] | str | int | float | bool | None

# Public path under /cdp/{token} -> the path we ask Chrome for. Playwright asks for
# "json/version/" (trailing slash), browser-use and Puppeteer for "json/version".
DISCOVERY_PATHS: dict[str, str] = {
    "json/version": "/json/version",
    "json/version/": "/json/version",
    "json": "/json/list",
    "json/": "/json/list",
    "json/list": "/json/list",
    "json/list/": "/json/list",
    "json/protocol": "/json/protocol",
    "json/protocol/": "/json/protocol",
}

# Answers that carry no websocket URL and are large (the protocol is ~1.6 MB): sent as is.
PASSTHROUGH_PATHS = frozenset({"/json/protocol"})

_DEVTOOLS = "/devtools/"


def websocket_base(public_base: str) -> str:
    """`https://h/p/` -> `wss://h/p`; `http://h` -> `ws://h`."""
    base = public_base.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://")
    if base.startswith("http://"):
        return "ws://" + base.removeprefix("http://")
    return base


def gateway_prefix(public_base: str, token: str) -> str:
    """The websocket URL prefix that replaces Chrome's `ws://127.0.0.1:PORT`."""
    return f"{websocket_base(public_base)}/cdp/{token}"


def rewrite_websocket_url(url: str, prefix: str) -> str:
    """`ws://127.0.0.1:PORT/devtools/page/ID` -> `{prefix}/devtools/page/ID`; others unchanged."""
    if not url.startswith(("ws://", "wss://")):
        return url
    start = url.find(_DEVTOOLS, url.index("//") + 2)
    if start < 0:
        return url
    return prefix + url[start:]


def rewrite_frontend_url(url: str, prefix: str) -> str:
    """Point the `ws=` parameter of a devtoolsFrontendUrl at the gateway.

    The frontend takes `ws=host/path` or, for TLS, `wss=host/path` (no scheme in the value).
    """
    parts = urlsplit(url)
    scheme, _, target = prefix.partition("://")
    pieces = parts.query.split("&")
    changed = False
    for index, piece in enumerate(pieces):
        key, sep, value = piece.partition("=")
        start = value.find(_DEVTOOLS)
        if sep and key in ("ws", "wss") and start >= 0:
            pieces[index] = f"{scheme}={target}{value[start:]}"
            changed = True
    if not changed:
        return url
    return urlunsplit(parts._replace(query="&".join(pieces)))


def rewrite_json(value: JsonValue, prefix: str) -> JsonValue:
    """Walk a discovery answer and rewrite every websocket URL in it; other fields are kept."""
    if isinstance(value, list):
        return [rewrite_json(item, prefix) for item in value]
    if isinstance(value, dict):
        return {key: _rewrite_field(key, item, prefix) for key, item in value.items()}
    return value


def _rewrite_field(key: str, value: JsonValue, prefix: str) -> JsonValue:
    if isinstance(value, str):
        if key == "webSocketDebuggerUrl":
            return rewrite_websocket_url(value, prefix)
        if key == "devtoolsFrontendUrl":
            return rewrite_frontend_url(value, prefix)
        return value
    return rewrite_json(value, prefix)


def rewrite_body(body: bytes, prefix: str) -> bytes:
    """Rewrite a JSON discovery body; a body that is not JSON is returned unchanged."""
    try:
        payload: JsonValue = json.loads(body)
    except ValueError:
        return body
    return json.dumps(rewrite_json(payload, prefix)).encode()
