"""Request-scoped dependencies: the wired services and the authenticated caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from browserfleet.auth.model import Principal
from browserfleet.auth.service import Authenticator
from browserfleet.billing.account import AccountReader
from browserfleet.cdp.addressing import PATH_ADDRESSING, CdpAddressing
from browserfleet.clock import Clock
from browserfleet.media.service import MediaService
from browserfleet.profiles.service import ProfileService
from browserfleet.sessions.service import SessionService


@dataclass(frozen=True, slots=True)
class ApiServices:
    """What the routes may call; built in bootstrap, stored on app.state."""

    sessions: SessionService
    profiles: ProfileService
    authenticator: Authenticator
    accounts: AccountReader
    clock: Clock
    public_url: str | None
    readiness: Callable[[], Awaitable[list[str]]]
    isolation: str = "sandbox"  # "none": /readyz shows a warning
    addressing: CdpAddressing = PATH_ADDRESSING  # how cdpUrl is published
    media: MediaService | None = None  # None: recordings, downloads and viewers are off


def services(request: Request) -> ApiServices:
    found: ApiServices = request.app.state.services
    return found


_api_key_header = APIKeyHeader(name="X-Browser-Use-API-Key", auto_error=False)


async def principal(
    request: Request, key: Annotated[str | None, Depends(_api_key_header)]
) -> Principal:
    return await services(request).authenticator.authenticate(key)


def base_url(request: Request) -> str:
    """Base of the URLs handed to clients: the configured public URL, else this request's."""
    configured = services(request).public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


@dataclass(frozen=True, slots=True)
class PublicUrls:
    """What the URLs handed to clients are built from: the public base and the CDP form."""

    base: str
    addressing: CdpAddressing = PATH_ADDRESSING


def public_urls(request: Request) -> PublicUrls:
    return PublicUrls(base_url(request), services(request).addressing)


Services = Annotated[ApiServices, Depends(services)]
Urls = Annotated[PublicUrls, Depends(public_urls)]
Caller = Annotated[Principal, Depends(principal)]
BaseUrl = Annotated[str, Depends(base_url)]
