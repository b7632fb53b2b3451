"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from browserfleet.api.deps import Services

router = APIRouter(tags=["Health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    """`detail` joins the problems, so a 503 here reads like every other error."""

    status: str
    detail: str | None = None
    problems: list[str] = []


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
    if problems:
        body = Readiness(status="not ready", detail="; ".join(problems), problems=problems)
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(Readiness(status="ready").model_dump(exclude_none=True))
