"""Profile domain values: frozen, and free of any framework."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from browserfleet.ids import ProjectId

MAX_NAME = 100
MAX_USER_ID = 255
MAX_QUERY = 200


class Unset(enum.Enum):
    """A PATCH field that was not sent (unlike None, which clears it)."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    project_id: ProjectId
    name: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None
    cookie_domains: tuple[str, ...] | None = None
    version_key: str | None = None  # the saved state sessions load; None: never saved
    version_bytes: int | None = None
    saved_at: datetime | None = None  # when the session whose state is current stopped


@dataclass(frozen=True, slots=True)
class ProfilePatch:
    name: str | Unset | None = UNSET
    user_id: str | Unset | None = UNSET


@dataclass(frozen=True, slots=True)
class ProfileQuery:
    page_size: int = 10
    page_number: int = 1
    text: str | None = None  # case-insensitive substring of name or user id


@dataclass(frozen=True, slots=True)
class ProfilePage:
    items: tuple[Profile, ...]
    total: int


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """A new version, uploaded, that a save wants to make current."""

    key: str
    size: int
    cookie_domains: tuple[str, ...]
    stopped_at: datetime  # the saving session's stop: the last session to stop wins
