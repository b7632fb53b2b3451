"""Connect-on-demand: one URL that creates a browser when a client connects.

`wss://server/connect?apiKey=...&proxyCountryCode=de&timeout=30` (or the key in the
`X-Browser-Use-API-Key` header) creates a session exactly as `POST /browsers` would, with the
create request's fields as query parameters (`customProxy.host`, `customProxy.port`, ...), and
relays the client to its browser; `GET /connect/json/version?...` does the same for clients
that ask for the browser's websocket URL first. The session ends once its last client has been
gone for the grace period (sessions.on_demand).

Here: the query's translation into a create request (pure), and the Connector both edges use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy.exc import OperationalError

from browserfleet.api.errors import DATABASE_UNAVAILABLE, domain_answer, printable
from browserfleet.api.routes.cdp import GATEWAY_ERRORS, refusal_of
from browserfleet.api.schemas.browsers import CreateBrowserSessionRequest
from browserfleet.auth.service import Authenticator
from browserfleet.cdp import BrowserUnreachable
from browserfleet.cdp.addressing import CdpAddressing
from browserfleet.errors import DomainError
from browserfleet.sessions.model import Session
from browserfleet.sessions.on_demand import OnDemandSessions

API_KEY_PARAM = "apiKey"
API_KEY_HEADER = "x-browser-use-api-key"
CONNECT_PATHS = frozenset({"/connect", "/connect/"})
# Fields that are integers or booleans in the JSON body (query values are all text).
_INTEGERS = frozenset({"timeout", "browserScreenWidth", "browserScreenHeight", "customProxy.port"})
_BOOLEANS = frozenset(
    {
        "allowResizing",
        "pdfRendererEnabled",
        "solveCaptchas",
        "enableRecording",
        "customProxy.ignoreCertErrors",
    }
)
_NULLABLE = frozenset({"proxyCountryCode", "profileId", "timeout"})
_INTEGER_TEXT = re.compile(r"[+-]?\d{1,12}")
_BROWSER_PATH = re.compile(r"wss?://[^/]+(?:/[^?#]*)?/devtools/(browser)/([A-Za-z0-9._-]{1,200})")


class ConnectQueryInvalid(Exception):
    """The query is not a valid create request; args[0] is FastAPI's 422 error list."""


@dataclass(frozen=True, slots=True)
class ConnectQuery:
    api_key: str | None
    body: CreateBrowserSessionRequest


def parse_query(pairs: Iterable[tuple[str, str]]) -> ConnectQuery:
    """The key and the create request a connect URL's query asks for.

    `customProxy.host=h` is the body's `{"customProxy": {"host": "h"}}`, `metadata.k=v` a label;
    integers and booleans (`true`/`false`) are read as JSON would type them; `null` or an empty
    value is JSON null where the body allows it (`proxyCountryCode=null`: no managed proxy).
    A parameter given twice is a 422; unknown ones are ignored, like unknown body fields.
    """
    body: dict[str, Any] = {}
    api_key: str | None = None
    seen: set[str] = set()
    errors: list[dict[str, object]] = []
    for raw_name, value in pairs:
        head, dot, tail = raw_name.partition(".")
        head = to_camel(head)
        tail = tail if head == "metadata" else to_camel(tail) if tail else tail
        name = f"{head}{dot}{tail}"
        if name in seen:
            errors.append(_error(raw_name, "given more than once", value))
            continue
        seen.add(name)
        if name == API_KEY_PARAM:
            api_key = value
            continue
        if dot and head in ("customProxy", "metadata") and tail:
            nested = body.setdefault(head, {})
            if isinstance(nested, dict):
                nested[tail] = _typed(name, value)
        elif not dot:
            body[name] = _typed(name, value)
    if errors:
        raise ConnectQueryInvalid(errors)
    try:
        request = CreateBrowserSessionRequest.model_validate(body)
    except ValidationError as invalid:
        raise ConnectQueryInvalid(
            [
                _error(".".join(str(part) for part in error["loc"]), error["msg"], error["input"])
                for error in invalid.errors(include_url=False)
            ]
        ) from None
    return ConnectQuery(api_key, request)


def _typed(name: str, value: str) -> object:
    if name in _NULLABLE and value in ("", "null"):
        return None
    if name in _INTEGERS and _INTEGER_TEXT.fullmatch(value):
        return int(value)
    if name in _BOOLEANS and value in ("true", "false"):
        return value == "true"
    return value


def _error(name: str, message: str, given: object) -> dict[str, object]:
    shown = "<hidden>" if name.lower().endswith(("password", "apikey")) else given
    return {"type": "value_error", "loc": ["query", name], "msg": message, "input": shown}


def refusal_for(error: Exception, retry_after_s: int) -> tuple[int, object, dict[str, str] | None]:
    """(status, detail, headers) answering a failed connect: the REST create's answers."""
    if isinstance(error, DomainError):
        return domain_answer(error, retry_after_s)
    if isinstance(error, ConnectQueryInvalid):
        return 422, printable(error.args[0]), None
    if isinstance(error, OperationalError):
        return 503, DATABASE_UNAVAILABLE, {"Retry-After": str(retry_after_s)}
    if isinstance(error, GATEWAY_ERRORS):
        status, detail = refusal_of(error)
        return status, detail, None
    raise error


# What a connect may fail with before its client is relayed, each answered by refusal_for.
CONNECT_ERRORS: tuple[type[Exception], ...] = (
    DomainError,
    ConnectQueryInvalid,
    OperationalError,
    *GATEWAY_ERRORS,
)
# The same over HTTP, less what the app's own error handlers answer.
EDGE_ERRORS: tuple[type[Exception], ...] = (ConnectQueryInvalid, *GATEWAY_ERRORS)


class Discovery(Protocol):
    """The gateway's discovery (cdp.gateway.CdpGatewayServer fits)."""

    async def discover(self, token: str, path: str, prefix: str) -> bytes: ...


class Connector:
    """Creates a session for a connecting client and finds its browser's websocket."""

    def __init__(
        self,
        authenticator: Authenticator,
        on_demand: OnDemandSessions,
        gateway: Discovery,
        addressing: CdpAddressing,
        retry_after_s: int,
    ) -> None:
        self._authenticator = authenticator
        self._on_demand = on_demand
        self._gateway = gateway
        self.addressing = addressing
        self.retry_after_s = retry_after_s

    async def open(self, pairs: Iterable[tuple[str, str]], header_key: str | None) -> Session:
        """Parse, authenticate (the header's key first), create. Raises CONNECT_ERRORS."""
        query = parse_query(pairs)
        principal = await self._authenticator.authenticate(header_key or query.api_key)
        return await self._on_demand.open(principal, query.body.to_request())

    async def version(self, session: Session, public_base: str) -> bytes:
        """The browser's /json/version, its websocket URL the session's own (no key in it)."""
        prefix = self.addressing.websocket_prefix(public_base, session.token)
        return await self._gateway.discover(session.token, "json/version", prefix)

    async def browser_target(self, session: Session) -> tuple[str, str]:
        """(kind, id) of the browser's own DevTools target: where a connect client is joined."""
        answer = json.loads(await self._gateway.discover(session.token, "json/version", "ws://x"))
        url = answer.get("webSocketDebuggerUrl") if isinstance(answer, dict) else None
        found = _BROWSER_PATH.fullmatch(url) if isinstance(url, str) else None
        if found is None:
            raise BrowserUnreachable("the browser named no websocket")
        return found.group(1), found.group(2)
