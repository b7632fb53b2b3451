"""`/browsers`: create, list, get and stop browser sessions (docs/api.md, "Browser sessions")."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, status

from browserfleet.api.deps import Caller, Services, Urls
from browserfleet.api.schemas.browsers import (
    MAX_METADATA_TERMS,
    MAX_PAGE_NUMBER,
    BrowserSessionItemView,
    BrowserSessionListResponse,
    BrowserSessionView,
    CreateBrowserSessionRequest,
    ErrorBody,
    Text,
    UpdateBrowserSessionRequest,
    parse_metadata_terms,
)
from browserfleet.ids import SessionId
from browserfleet.sessions.model import SessionQuery, SessionStatus
from browserfleet.sessions.service import with_running_cost

router = APIRouter(prefix="/browsers", tags=["Browsers"])

_FILTERS = {"active": SessionStatus.ACTIVE, "stopped": SessionStatus.STOPPED}
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid API key", "model": ErrorBody},
    404: {"description": "Session not found", "model": ErrorBody},
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BrowserSessionItemView,
    responses={
        **_ERRORS,
        402: {"description": "Insufficient credits", "model": ErrorBody},
        403: {
            "description": "Maximum session timeout is 4 hours (240 minutes).",
            "model": ErrorBody,
        },
        404: {"description": "Profile not found", "model": ErrorBody},
        429: {
            "description": "Too many concurrent active sessions (`Retry-After` is sent)",
            "model": ErrorBody,
        },
    },
    summary="Create Browser Session",
)
async def create_browser_session(
    body: CreateBrowserSessionRequest, caller: Caller, svc: Services, base: Urls
) -> BrowserSessionItemView:
    session = await svc.sessions.create(caller, body.to_request())
    return BrowserSessionItemView.from_session(session, base)


@router.get(
    "",
    response_model=BrowserSessionListResponse,
    responses={401: _ERRORS[401]},
    summary="List Browser Sessions",
)
async def list_browser_sessions(
    caller: Caller,
    svc: Services,
    base: Urls,
    metadata: Annotated[
        # Text: no NUL (PostgreSQL cannot compare with it) and no lone surrogate, as stored.
        list[Text],
        Query(
            default_factory=list,
            description="`key` matches any value; `key=value` exactly; repeat to AND "
            f"(at most {MAX_METADATA_TERMS} terms).",
            max_length=MAX_METADATA_TERMS,
        ),
    ],
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 10,
    page_number: Annotated[int, Query(alias="pageNumber", ge=1, le=MAX_PAGE_NUMBER)] = 1,
    filter_by: Annotated[Literal["active", "stopped"] | None, Query(alias="filterBy")] = None,
    agent_session_id: Annotated[UUID | None, Query(alias="agentSessionId")] = None,
) -> BrowserSessionListResponse:
    query = SessionQuery(
        page_size=page_size,
        page_number=page_number,
        status=_FILTERS[filter_by] if filter_by else None,
        metadata_terms=parse_metadata_terms(metadata),
    )
    if agent_session_id is not None:  # standalone sessions never belong to an agent session
        items: list[BrowserSessionItemView] = []
        return BrowserSessionListResponse(
            items=items, total_items=0, page_number=page_number, page_size=page_size
        )
    page = await svc.sessions.list(caller, query)
    now = svc.clock()
    return BrowserSessionListResponse(
        items=[
            BrowserSessionItemView.from_session(with_running_cost(s, now), base) for s in page.items
        ],
        total_items=page.total,
        page_number=page_number,
        page_size=page_size,
    )


@router.get(
    "/{session_id}",
    response_model=BrowserSessionView,
    responses=_ERRORS,
    summary="Get Browser Session",
)
async def get_browser_session(
    session_id: UUID, caller: Caller, svc: Services, base: Urls
) -> BrowserSessionView:
    session = await svc.sessions.get(caller, SessionId(session_id))
    return BrowserSessionView.from_session(with_running_cost(session, svc.clock()), base)


@router.patch(
    "/{session_id}",
    response_model=BrowserSessionView,
    responses=_ERRORS,
    summary="Update Browser Session",
)
async def update_browser_session(
    session_id: UUID,
    body: UpdateBrowserSessionRequest,
    caller: Caller,
    svc: Services,
    base: Urls,
) -> BrowserSessionView:
    session = await svc.sessions.stop(caller, SessionId(session_id))
    return BrowserSessionView.from_session(session, base)
