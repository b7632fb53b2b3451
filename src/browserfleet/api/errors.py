"""Domain errors to HTTP responses: one table, applied once at the edge."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from browserfleet import errors as e


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
    e.TimeoutLimitExceeded: HttpError(403, "Maximum session timeout is 4 hours (240 minutes)."),
    e.SessionNotFound: HttpError(404, "Session not found"),
    e.ProfileNotFound: HttpError(404, "Profile not found"),
    e.AccountNotFound: HttpError(404, "Account not found"),
    e.ProjectNotFound: HttpError(404, "Project not found"),
    e.ApiKeyNotFound: HttpError(404, "API key not found"),
    e.ProxyCountryUnavailable: HttpError(
        422, "No proxy pool serves this country on this server", body_field="proxyCountryCode"
    ),
    e.SessionNotRunningHere: HttpError(
        409, "The session is not active on this server (stopped, or served by another)"
    ),
    e.InvalidUpload: HttpError(400, "Invalid upload", detail_from_error=True),
    e.ConcurrencyLimitReached: HttpError(429, CONCURRENCY_DETAIL, retry_after=True),
    e.HostAtCapacity: HttpError(
        503,
        "This server has no room for another browser right now; retry shortly.",
        retry_after=True,
    ),
    e.BrowserLaunchFailed: HttpError(
        503, "The browser failed to start; retry shortly.", retry_after=True
    ),
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


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.DomainError)
        mapped = http_error_for(exc)
        headers = {"Retry-After": str(retry_after_s)} if mapped.retry_after else None
        return JSONResponse(
            {"detail": _detail(mapped, exc)}, status_code=mapped.status, headers=headers
        )

    app.add_exception_handler(e.DomainError, handle)
