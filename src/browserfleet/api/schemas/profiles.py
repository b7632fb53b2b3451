"""Profile wire models (docs/api.md, "Profiles") and their one-way conversions.

PATCH tells an absent field (unchanged) from an explicit null (cleared): the official v4 SDK
sends `null` to clear `name` or `userId`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from browserfleet.api.schemas.browsers import RequestModel, ResponseModel, Text
from browserfleet.profiles import model as m


class ProfileCreateRequest(RequestModel):
    name: Text | None = Field(None, max_length=m.MAX_NAME, description="A name to find it by.")
    user_id: Text | None = Field(
        None, max_length=m.MAX_USER_ID, description="Your own id of the end-user it belongs to."
    )


class ProfileUpdateRequest(RequestModel):
    name: Text | None = Field(None, max_length=m.MAX_NAME, description="null clears it.")
    user_id: Text | None = Field(None, max_length=m.MAX_USER_ID, description="null clears it.")

    def to_patch(self) -> m.ProfilePatch:
        sent = self.model_fields_set
        return m.ProfilePatch(
            name=self.name if "name" in sent else m.UNSET,
            user_id=self.user_id if "user_id" in sent else m.UNSET,
        )


class ProfileView(ResponseModel):
    id: UUID
    user_id: str | None = None
    name: str | None = None
    last_used_at: datetime | None = Field(None, description="When a session last started with it.")
    created_at: datetime
    updated_at: datetime
    cookie_domains: list[str] | None = Field(
        None, description="Distinct domains of the saved cookies, refreshed at each save."
    )

    @classmethod
    def from_profile(cls, profile: m.Profile) -> ProfileView:
        return cls(
            id=UUID(profile.id),
            user_id=profile.user_id,
            name=profile.name,
            last_used_at=profile.last_used_at,
            created_at=profile.created_at,
            updated_at=profile.updated_at,
            cookie_domains=(
                list(profile.cookie_domains) if profile.cookie_domains is not None else None
            ),
        )


class ProfileListResponse(ResponseModel):
    items: list[ProfileView]
    total_items: int
    page_number: int
    page_size: int
