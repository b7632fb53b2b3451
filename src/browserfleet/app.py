"""create_app(settings) -> FastAPI. The lifespan owns start-up and shutdown of the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from browserfleet import __version__
from browserfleet.api.deps import ApiServices
from browserfleet.api.errors import install_error_handlers
from browserfleet.api.routes import billing, browsers, health, live
from browserfleet.api.routes.cdp import build_cdp_router
from browserfleet.api.routes.metrics import build_metrics_router
from browserfleet.api.websocket_protocol import GATEWAY_STATE_KEY
from browserfleet.bootstrap import build_runtime, utc_now
from browserfleet.settings import Settings

API_PREFIXES = ("/api/v2", "/api/v3", "/api/v4")

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


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with build_runtime(settings) as runtime:
            app.state.gateway = runtime.gateway
            app.state.metrics = runtime.metrics
            app.state.services = ApiServices(
                sessions=runtime.sessions,
                authenticator=runtime.authenticator,
                accounts=runtime.accounts,
                clock=utc_now,
                public_url=settings.public_url,
                readiness=runtime.readiness,
                isolation=runtime.isolation.value,
            )
            # The lifespan state reaches uvicorn's websocket protocol (CDP upgrades skip ASGI).
            yield {GATEWAY_STATE_KEY: runtime.gateway}

    app = FastAPI(
        title="browserfleet", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    install_error_handlers(app, settings.limits.retry_after_s)
    for prefix in API_PREFIXES:
        version = prefix.rsplit("/", 1)[-1]
        for router in (browsers.router, billing.router):
            app.include_router(
                router,
                prefix=prefix,
                generate_unique_id_function=_operation_ids(version),
            )
    app.include_router(health.router)
    app.include_router(build_metrics_router())
    app.include_router(live.router)
    app.include_router(build_cdp_router())
    return app
