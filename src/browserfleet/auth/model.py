"""Project and API-key values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from browserfleet.ids import ApiKeyId, ProjectId

DEFAULT_PROJECT_NAME = "default"


@dataclass(frozen=True, slots=True)
class Project:
    id: ProjectId
    name: str
    created_at: datetime
    concurrent_limit: int | None = None  # None: the server-wide default
    credit_balance_micros: int | None = None  # None: unlimited
    active_count: int = 0


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: ApiKeyId
    project_id: ProjectId
    prefix: str  # shown in listings; the key itself is never stored
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: everything it sees is scoped to project_id."""

    project_id: ProjectId
    api_key_id: ApiKeyId
