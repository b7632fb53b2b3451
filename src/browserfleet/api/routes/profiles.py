"""`/profiles`: create, list, get, update and delete persistent profiles (docs/api.md,
"Profiles")."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Response, status

from browserfleet.api.deps import Caller, Services
from browserfleet.api.schemas.browsers import (
    MAX_PAGE_NUMBER,
    UNREADABLE_BODY,
    ErrorBody,
    Text,
)
from browserfleet.api.schemas.profiles import (
    ProfileCreateRequest,
    ProfileListResponse,
    ProfileUpdateRequest,
    ProfileView,
)
from browserfleet.profiles.model import MAX_QUERY, ProfileQuery

router = APIRouter(prefix="/profiles", tags=["Profiles"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid API key", "model": ErrorBody},
    404: {"description": "Profile not found", "model": ErrorBody},
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProfileView,
    responses={
        401: _ERRORS[401],
        **UNREADABLE_BODY,
        402: {
            "description": "Insufficient credits: the project has as many profiles as this "
            "server allows",
            "model": ErrorBody,
        },
    },
    summary="Create Profile",
)
async def create_profile(
    caller: Caller, svc: Services, body: Annotated[ProfileCreateRequest | None, Body()] = None
) -> ProfileView:
    body = body or ProfileCreateRequest()
    profile = await svc.profiles.create(caller, name=body.name, user_id=body.user_id)
    return ProfileView.from_profile(profile)


@router.get(
    "",
    response_model=ProfileListResponse,
    responses={401: _ERRORS[401]},
    summary="List Profiles",
)
async def list_profiles(
    caller: Caller,
    svc: Services,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 10,
    page_number: Annotated[int, Query(alias="pageNumber", ge=1, le=MAX_PAGE_NUMBER)] = 1,
    query: Annotated[
        Text | None,
        Query(max_length=MAX_QUERY, description="Part of the name or the userId (any case)."),
    ] = None,
) -> ProfileListResponse:
    page = await svc.profiles.list(
        caller, ProfileQuery(page_size=page_size, page_number=page_number, text=query or None)
    )
    return ProfileListResponse(
        items=[ProfileView.from_profile(p) for p in page.items],
        total_items=page.total,
        page_number=page_number,
        page_size=page_size,
    )


@router.get("/{profile_id}", response_model=ProfileView, responses=_ERRORS, summary="Get Profile")
async def get_profile(profile_id: UUID, caller: Caller, svc: Services) -> ProfileView:
    return ProfileView.from_profile(await svc.profiles.get(caller, str(profile_id)))


@router.patch(
    "/{profile_id}",
    response_model=ProfileView,
    responses={**_ERRORS, **UNREADABLE_BODY},
    summary="Update Profile",
)
async def update_profile(
    profile_id: UUID, body: ProfileUpdateRequest, caller: Caller, svc: Services
) -> ProfileView:
    profile = await svc.profiles.update(caller, str(profile_id), body.to_patch())
    return ProfileView.from_profile(profile)


@router.delete(
    "/{profile_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_ERRORS,
    summary="Delete Profile",
)
async def delete_profile(profile_id: UUID, caller: Caller, svc: Services) -> Response:
    """Its saved states are deleted too; sessions running with it go on, and save nothing."""
    await svc.profiles.delete(caller, str(profile_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
