"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from browserfleet.api.deps import Services

router = APIRouter(tags=["Health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


# Ready, but loudly: an operator chose to run without sandboxes (a development machine), so
# refusing traffic would help nobody; monitoring sees the field on every probe.
NO_ISOLATION = (
    "isolation is none: browsers run without an OS sandbox; tenants can reach this host's "
    "files and network"
)


@router.get("/readyz")
async def readyz(svc: Services) -> JSONResponse:
    problems = await svc.readiness()
    body: dict[str, object] = {"isolation": svc.isolation}
    if svc.isolation == "none":
        body["warnings"] = [NO_ISOLATION]
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems, **body}, status_code=503)
    return JSONResponse({"status": "ready", **body})
