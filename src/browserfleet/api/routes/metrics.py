"""GET /metrics: the server's Prometheus metrics in the text exposition format."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from starlette.requests import HTTPConnection

from browserfleet.metrics import Metrics

MetricsOf = Callable[[HTTPConnection], Metrics]


def build_metrics_router(metrics_of: MetricsOf | None = None) -> APIRouter:
    """A router serving GET /metrics; include it at the app's root.

    `metrics_of` None means the app's `app.state.metrics`, looked up per request because the
    lifespan builds it after the routes.
    """
    router = APIRouter(include_in_schema=False)
    find = _from_app_state if metrics_of is None else metrics_of

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        payload, content_type = find(request).render()
        return Response(payload, media_type=content_type)

    return router


def _from_app_state(connection: HTTPConnection) -> Metrics:
    found: Metrics = connection.app.state.metrics
    return found
