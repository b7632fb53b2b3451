"""create_app(settings) -> FastAPI. The lifespan owns start-up and shutdown of the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from browserfleet import __version__
from browserfleet.api.connect import Connector
from browserfleet.api.deps import ApiServices
from browserfleet.api.errors import install_error_handlers
from browserfleet.api.http_protocol import EDGE_REFUSALS
from browserfleet.api.routes import (
    billing,
    browsers,
    connect,
    files,
    health,
    live,
    profiles,
    uploads,
)
from browserfleet.api.routes.cdp import build_cdp_router
from browserfleet.api.routes.metrics import build_metrics_router
from browserfleet.api.schemas.browsers import ErrorBody
from browserfleet.api.websocket_protocol import (
    ADDRESSING_STATE_KEY,
    CONNECT_STATE_KEY,
    GATEWAY_STATE_KEY,
)
from browserfleet.bootstrap import Adapters, build_runtime
from browserfleet.cdp.addressing import CdpAddressing, HostTemplate
from browserfleet.settings import Settings

API_PREFIXES = ("/api/v2", "/api/v3", "/api/v4")
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
# What the edge answers of its own (api.http_protocol), before routing: any operation.
EDGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description} for status, description in EDGE_REFUSALS.items()
}
# What any API operation may answer, whatever its own outcomes: the machinery's failures.
API_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "No room for another browser, a failed launch, a shutdown under way, "
        "or the database unavailable (busy past its timeout, or out of disk space)",
        "headers": _RETRY_AFTER,
    },
}
DESCRIPTION = (
    "Self-hosted cloud browsers, wire-compatible with the Browser Use Cloud API v3 browser "
    "endpoints. Browser sessions are charged at $0.02/hour, the full timeout upfront; unused "
    "time is refunded at stop, rounded up to the minute (minimum 1 minute)."
)


def _operation_ids(version: str) -> Callable[[APIRoute], str]:
    """One router is mounted three times; OpenAPI operation ids must stay unique."""

    def operation_id(route: APIRoute) -> str:
        return f"{route.name}_{version}"

    return operation_id


def create_app(settings: Settings, adapters: Adapters | None = None) -> FastAPI:
    """The app; its lifespan builds the runtime, with `adapters` (fakes in tests) if given."""
    template = settings.cdp_host_template
    addressing = CdpAddressing(HostTemplate.parse(template) if template else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with build_runtime(settings, adapters) as runtime:
            app.state.gateway = runtime.gateway
            app.state.metrics = runtime.metrics
            app.state.services = ApiServices(
                sessions=runtime.sessions,
                profiles=runtime.profiles,
                authenticator=runtime.authenticator,
                accounts=runtime.accounts,
                clock=runtime.clock,
                public_url=settings.public_url,
                readiness=runtime.readiness,
                isolation=runtime.isolation.value,
                addressing=addressing,
                media=runtime.media,
            )
            state: dict[str, Any] = {
                GATEWAY_STATE_KEY: runtime.gateway,
                ADDRESSING_STATE_KEY: addressing,
            }
            app.state.connector = state[CONNECT_STATE_KEY] = Connector(
                runtime.authenticator,
                runtime.on_demand,
                runtime.gateway,
                addressing,
                settings.limits.retry_after_s,
            )
            # The lifespan state reaches uvicorn's websocket protocol (CDP upgrades skip ASGI).
            yield state

    app = FastAPI(
        title="browserfleet", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    install_error_handlers(app, settings.limits.retry_after_s)
    edge = _error_answers(EDGE_RESPONSES)
    common = {**edge, **_error_answers(API_RESPONSES)}
    for prefix in API_PREFIXES:
        version = prefix.rsplit("/", 1)[-1]
        for router in (browsers.router, uploads.router, profiles.router, billing.router):
            app.include_router(
                router,
                prefix=prefix,
                generate_unique_id_function=_operation_ids(version),
                responses=common,
            )
    app.include_router(health.router, responses=edge)
    app.include_router(build_metrics_router())
    app.include_router(live.router)
    app.include_router(files.router)
    app.include_router(build_cdp_router(addressing=addressing))
    app.include_router(connect.router)
    return app


def _error_answers(table: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of `table`, each with the JSON `{"detail": ...}` body of every error."""
    return {status: {**spec, "model": ErrorBody} for status, spec in table.items()}
