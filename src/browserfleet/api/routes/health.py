"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from browserfleet.api.deps import Services

router = APIRouter(tags=["Health"])


class Health(BaseModel):
    status: str


# Ready, but loudly: an operator chose to run without sandboxes (a development machine), so
# refusing traffic would help nobody; monitoring sees the field on every probe.
NO_ISOLATION = (
    "isolation is none: browsers run without an OS sandbox; tenants can reach this host's "
    "files and network"
)


class Readiness(BaseModel):
    """`detail` joins the problems, so a 503 here reads like every other error. `isolation` is
    "sandbox" or "none" (then `warnings` says what that means)."""

    status: str
    detail: str | None = None
    problems: list[str] = []
    isolation: str
    warnings: list[str] = []


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"description": "Not ready: the problems are listed", "model": Readiness}},
)
async def readyz(svc: Services) -> JSONResponse:
    problems = await svc.readiness()
    warnings = [NO_ISOLATION] if svc.isolation == "none" else []
    if problems:
        body = Readiness(
            status="not ready",
            detail="; ".join(problems),
            problems=problems,
            isolation=svc.isolation,
            warnings=warnings,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    ready = Readiness(status="ready", isolation=svc.isolation, warnings=warnings)
    return JSONResponse(ready.model_dump(exclude_none=True))
