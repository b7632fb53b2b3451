"""`/browsers`: create, list, get and stop browser sessions (docs/api.md, "Browser sessions")."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, status
from fastapi.exceptions import RequestValidationError

from browserfleet.api.deps import Caller, PublicUrls, Services, Urls
from browserfleet.api.schemas.browsers import (
    MAX_METADATA_TERMS,
    MAX_PAGE_NUMBER,
    UNREADABLE_BODY,
    BrowserDownloadListResponse,
    BrowserDownloadView,
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
from browserfleet.media.downloads import InvalidCursor
from browserfleet.sessions.model import Session, SessionQuery, SessionStatus
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
        **UNREADABLE_BODY,
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
    return BrowserSessionItemView.from_session(session, base, _view(svc, session.id))


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
            BrowserSessionItemView.from_session(
                with_running_cost(s, now), _urls(svc, s, base), _view(svc, s.id)
            )
            for s in page.items
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
    url, available = None, session.request.enable_recording
    if svc.media is not None:
        recording = await svc.media.recording(session, base.base)
        url, available = recording.url, recording.available
    return BrowserSessionView.from_session(
        with_running_cost(session, svc.clock()),
        _urls(svc, session, base),
        _view(svc, session.id),
        recording_url=url,
        recording_available=available,
    )


@router.patch(
    "/{session_id}",
    response_model=BrowserSessionView,
    responses={**_ERRORS, **UNREADABLE_BODY},
    summary="Update Browser Session",
)
async def update_browser_session(
    session_id: UUID,
    body: UpdateBrowserSessionRequest,
    caller: Caller,
    svc: Services,
    base: Urls,
    after_answer: BackgroundTasks,
) -> BrowserSessionView:
    # The browser's teardown starts once this answer is sent (background tasks run then).
    answered = asyncio.Event()
    after_answer.add_task(answered.set)
    session = await svc.sessions.stop(caller, SessionId(session_id), answered=answered)
    # Never a recordingUrl here: the recording is finished after the stop (GET one shows it).
    return BrowserSessionView.from_session(
        session, _urls(svc, session, base), _view(svc, session.id)
    )


@router.get(
    "/{session_id}/downloads",
    response_model=BrowserDownloadListResponse,
    responses=_ERRORS,
    summary="List Browser Session Downloads",
    description="Files the browser downloaded: from its downloads directory while the session "
    "runs, from the store after it stopped (kept for the retention period). Unfinished "
    "downloads are not listed. Ordered by name; pass `nextCursor` back as `cursor` for the next "
    "page. With `includeUrls=true` each file has a signed link, valid for 15 minutes.",
)
async def list_browser_session_downloads(
    session_id: UUID,
    caller: Caller,
    svc: Services,
    base: Urls,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    include_urls: Annotated[bool, Query(alias="includeUrls")] = False,
) -> BrowserDownloadListResponse:
    session = await svc.sessions.get(caller, SessionId(session_id))
    if svc.media is None:
        return BrowserDownloadListResponse(files=[])
    try:
        listing = await svc.media.downloads(
            session, cursor=cursor, limit=limit, include_urls=include_urls, base_url=base.base
        )
    except InvalidCursor as error:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": str(error),
                    "input": cursor,
                }
            ]
        ) from None
    return BrowserDownloadListResponse(
        files=[
            BrowserDownloadView(path=f.name, size=f.size, last_modified=f.last_modified, url=f.url)
            for f in listing.files
        ],
        next_cursor=listing.next_cursor,
        has_more=listing.next_cursor is not None,
    )


def _urls(svc: Services, session: Session, base: PublicUrls) -> PublicUrls:
    """A session another server runs is reached through that server: its URLs name it (when
    it has a public URL; else this server's base is the best there is)."""
    owner = svc.sessions.owner_url(session)
    return base if owner is None else replace(base, base=owner.rstrip("/"))


def _view(svc: Services, session_id: SessionId) -> str | None:
    return svc.media.view_capability(session_id) if svc.media is not None else None
