"""Errors to HTTP responses, applied once at the edge: the domain errors' table, and the few
failures of the machinery (validation, routing) that clients must also get as JSON
`{"detail": ...}` rather than a crash or a bare 500. An unavailable database reaches here as
the domain's DatabaseUnavailable, whatever the backend (the store names it)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from browserfleet import errors as e

log = logging.getLogger(__name__)
DATABASE_UNAVAILABLE = (
    "The database is unavailable (busy, unreachable or out of space); retry shortly."
)
INTERNAL_ERROR = "Internal error"


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    detail: str
    retry_after: bool = False
    # For 422s raised past schema validation: the body field at fault, so the error body has
    # FastAPI's list form like every other 422.
    body_field: str | None = None
    # The error's own message is the detail (it says what was wrong with the request).
    detail_from_error: bool = False


CONCURRENCY_DETAIL = (
    "Too many concurrent active sessions. Please wait for one to finish, kill one, "
    "or upgrade your plan."
)

HTTP_ERRORS: dict[type[e.DomainError], HttpError] = {
    e.NotAuthenticated: HttpError(401, "Not authenticated"),
    e.InvalidApiKey: HttpError(401, "Invalid API key"),
    e.InsufficientCredits: HttpError(402, "Insufficient credits"),
    e.ProfileLimitReached: HttpError(402, "Insufficient credits"),
    e.TimeoutLimitExceeded: HttpError(403, "Maximum session timeout is 4 hours (240 minutes)."),
    e.SessionNotFound: HttpError(404, "Session not found"),
    e.ProfileNotFound: HttpError(404, "Profile not found"),
    e.AccountNotFound: HttpError(404, "Account not found"),
    e.ProjectNotFound: HttpError(404, "Project not found"),
    e.ApiKeyNotFound: HttpError(404, "API key not found"),
    # Raised at startup only (the server refuses to serve); never a client's doing.
    e.SecretMismatch: HttpError(500, INTERNAL_ERROR),
    e.ProxyCountryUnavailable: HttpError(
        422, "No proxy pool serves this country on this server", body_field="proxyCountryCode"
    ),
    e.SessionNotRunningHere: HttpError(
        409, "The session is not active on this server (stopped, or served by another)"
    ),
    e.InvalidUpload: HttpError(400, "Invalid upload", detail_from_error=True),
    e.NotOnCluster: HttpError(501, "Not available on a cluster", detail_from_error=True),
    e.ConcurrencyLimitReached: HttpError(429, CONCURRENCY_DETAIL, retry_after=True),
    e.HostAtCapacity: HttpError(
        503,
        "This server has no room for another browser right now; retry shortly.",
        retry_after=True,
    ),
    e.StorageFailed: HttpError(
        503, "Profile storage is unavailable right now; retry shortly.", retry_after=True
    ),
    e.BrowserLaunchFailed: HttpError(
        503, "The browser failed to start; retry shortly.", retry_after=True
    ),
    e.DatabaseUnavailable: HttpError(503, DATABASE_UNAVAILABLE, retry_after=True),
}


def http_error_for(error: e.DomainError) -> HttpError:
    for cls in type(error).__mro__:
        if cls in HTTP_ERRORS:
            return HTTP_ERRORS[cls]
    return HttpError(500, "Internal error")


def _detail(mapped: HttpError, error: e.DomainError) -> object:
    if mapped.detail_from_error and error.args:
        return str(error.args[0])
    if mapped.body_field is None:
        return mapped.detail
    given = error.args[0] if error.args else None
    return [
        {
            "type": "value_error",
            "loc": ["body", mapped.body_field],
            "msg": mapped.detail,
            "input": given,
        }
    ]


def printable(value: object) -> object:
    """`value` with everything JSON cannot carry made printable: non-finite numbers become
    their names, lone surrogates their escapes (echoed inputs of a 422 may hold either)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {str(printable(k)): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's):
    each method is tried against the routes, included routers and all."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in app.router.routes
        )
    ]


def domain_answer(
    error: e.DomainError, retry_after_s: int
) -> tuple[int, object, dict[str, str] | None]:
    """(status, detail, headers) answering a domain error: HTTP responses and refused
    websocket upgrades alike."""
    mapped = http_error_for(error)
    headers = {"Retry-After": str(retry_after_s)} if mapped.retry_after else None
    return mapped.status, _detail(mapped, error), headers


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:

    async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.DomainError)
        if isinstance(exc, e.DatabaseUnavailable):
            log.error("database unavailable: %s", exc)
        status, detail, headers = domain_answer(exc, retry_after_s)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = printable(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": detail}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(app, request))
            exc = HTTPException(405, exc.detail, headers={"Allow": allow})
        response = await http_exception_handler(request, exc)
        assert isinstance(response, JSONResponse)
        return response

    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)

    app.add_exception_handler(e.DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
