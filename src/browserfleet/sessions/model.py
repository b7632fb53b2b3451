"""Session domain values: frozen, and free of any framework."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from browserfleet.ids import ApiKeyId, InstanceId, ProjectId, SessionId

DEFAULT_TIMEOUT_MINUTES = 60
MAX_TIMEOUT_MINUTES = 240
DEFAULT_SCREEN_WIDTH = 1920
DEFAULT_SCREEN_HEIGHT = 1080


class SessionStatus(StrEnum):
    STARTING = "starting"  # slot reserved and charged, browser launching; invisible to the API
    ACTIVE = "active"
    STOPPING = "stopping"  # stop decided, teardown under way (shown as active)
    STOPPED = "stopped"
    FAILED = "failed"  # launch failed; refunded in full; invisible to the API


class StopReason(StrEnum):
    USER = "user"
    TIMEOUT = "timeout"
    CRASH = "crash"
    SHUTDOWN = "shutdown"
    ORPHANED = "orphaned"
    FENCED = "fenced"  # its server lost its lease (cut off from the database) and ended it


@dataclass(frozen=True, slots=True)
class CustomProxy:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ignore_cert_errors: bool = False


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A validated create request, in domain terms."""

    timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES
    screen_width: int = DEFAULT_SCREEN_WIDTH
    screen_height: int = DEFAULT_SCREEN_HEIGHT
    allow_resizing: bool = False
    pdf_viewer: bool = True
    enable_recording: bool = False
    solve_captchas: bool = True
    proxy_country_code: str | None = "us"
    custom_proxy: CustomProxy | None = None
    profile_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Session:
    id: SessionId
    project_id: ProjectId
    status: SessionStatus
    # The CDP token: derived from the id under the server secret, never stored (the store
    # keeps a digest); sessions read back from the store carry "" until the service fills it.
    token: str = field(repr=False, compare=False)
    request: SessionRequest
    created_at: datetime
    started_at: datetime
    timeout_at: datetime
    upfront_micros: int
    finished_at: datetime | None = None
    stop_reason: StopReason | None = None
    cost_micros: int | None = None  # final browser cost, set at stop
    proxy_bytes: int = 0
    proxy_route: str | None = None  # "managed", "custom" or "direct": which rate applies
    proxy_rate_micros_per_gb: int = 0
    proxy_cost_micros: int | None = None  # final egress cost, set at stop
    owner: InstanceId | None = None
    browser_pid: int | None = None
    session_dir: str | None = None
    api_key_id: ApiKeyId | None = None  # the key that created it (None: before keys were noted)

    @property
    def is_visible(self) -> bool:
        return self.status not in (SessionStatus.STARTING, SessionStatus.FAILED)

    @property
    def is_live(self) -> bool:
        return self.status in (SessionStatus.STARTING, SessionStatus.ACTIVE, SessionStatus.STOPPING)

    def ended_by(self, last_seen: datetime) -> datetime:
        """When a session whose browser was last known running at `last_seen` ended, for
        billing: never before its start nor past its timeout."""
        return max(self.started_at, min(last_seen, self.timeout_at))


@dataclass(frozen=True, slots=True)
class SessionQuery:
    page_size: int = 10
    page_number: int = 1
    status: SessionStatus | None = None  # ACTIVE or STOPPED
    metadata_terms: tuple[tuple[str, str | None], ...] = ()  # (key, value or None for "any value")


@dataclass(frozen=True, slots=True)
class SessionPage:
    items: tuple[Session, ...]
    total: int
