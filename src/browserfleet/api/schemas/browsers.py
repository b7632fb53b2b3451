"""Browser session wire models (docs/api.md, "Browser sessions") and their one-way conversions.

Request fields are strict where the API says integer or boolean (`{"timeout": true}` or
`"30"` is a 422, not one minute or thirty), numbers must be finite, and free text must be
valid Unicode without NUL (a lone surrogate from a `\ud800` escape cannot be stored).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)
from pydantic.alias_generators import to_camel

from browserfleet.api.deps import PublicUrls
from browserfleet.api.schemas.countries import ProxyCountryCode
from browserfleet.billing.pricing import format_megabytes, format_usd
from browserfleet.sessions import model as m
from browserfleet.sessions.lifecycle import wire_status

MAX_METADATA_PAIRS = 10
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# Filter terms of one list request: two per pair (`key` and `key=value`) are all a session
# can match; more only cost the database (SQLite refuses ~1000 nested terms).
MAX_METADATA_TERMS = 2 * MAX_METADATA_PAIRS
# Pages past this are refused: offsets stay far inside 64-bit integers.
MAX_PAGE_NUMBER = 1_000_000


def _valid_text(value: str) -> str:
    """Text the database and any JSON encoder can hold: no lone surrogates, no NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (a lone surrogate is not)") from None
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_valid_text)]


def _whole_number(value: object) -> object:
    """A float with no fraction is the integer JSON Schema says it is; the rest is left to
    StrictInt, which refuses booleans, strings, fractions and non-finite numbers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[StrictInt, BeforeValidator(_whole_number)]


class RequestModel(BaseModel):
    """Accepts camelCase and snake_case keys; ignores unknown fields (future SDK versions)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ResponseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CustomProxy(RequestModel):
    host: Text = Field(min_length=1, max_length=255, description="Host of the proxy.")
    port: JsonInt = Field(ge=1, le=65535, description="Port of the proxy.")
    username: Text | None = Field(None, min_length=1, max_length=255)
    password: Text | None = Field(None, min_length=1, max_length=255)
    ignore_cert_errors: StrictBool | None = Field(
        False, description="Ignore TLS certificate errors of this proxy (this session only)."
    )

    def to_domain(self) -> m.CustomProxy:
        return m.CustomProxy(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            ignore_cert_errors=bool(self.ignore_cert_errors),
        )


Metadata = dict[
    Annotated[Text, Field(min_length=1, max_length=MAX_METADATA_KEY)],
    Annotated[Text, Field(max_length=MAX_METADATA_VALUE)],
]


class CreateBrowserSessionRequest(RequestModel):
    profile_id: UUID | None = Field(None, description="Load a saved profile.")
    proxy_country_code: ProxyCountryCode | None = Field(
        "us", description="Country of the managed proxy; null disables the proxy."
    )
    metadata: Metadata | None = Field(
        None,
        description="Up to 10 key-value labels; filterable on the list.",
        max_length=MAX_METADATA_PAIRS,
    )
    timeout: JsonInt | None = Field(
        m.DEFAULT_TIMEOUT_MINUTES,
        ge=1,
        description="Minutes until the session stops by itself (1-240; above 240 is a 403).",
    )
    browser_screen_width: JsonInt | None = Field(None, ge=320, le=6144)
    browser_screen_height: JsonInt | None = Field(None, ge=320, le=3456)
    allow_resizing: StrictBool | None = Field(False, description="Let clients resize the window.")
    pdf_renderer_enabled: StrictBool | None = Field(True, description="Render PDFs in a tab.")
    solve_captchas: StrictBool | None = Field(True, description="Accepted; no solver is built in.")
    custom_proxy: CustomProxy | None = Field(None, description="Your own HTTP or SOCKS5 proxy.")
    enable_recording: StrictBool | None = Field(False, description="Record the session as MP4.")
    extension_ids: list[UUID] | None = Field(
        None,
        description="Browser extensions are not supported by this server: only an empty list "
        "(or none) is accepted; any extension id is a 422.",
        json_schema_extra={"maxItems": 0},
    )

    @field_validator("extension_ids")
    @classmethod
    def _no_extensions(cls, value: list[UUID] | None) -> list[UUID] | None:
        if value:
            raise ValueError("browser extensions are not supported by this server yet")
        return value

    def to_request(self) -> m.SessionRequest:
        return m.SessionRequest(
            timeout_minutes=self.timeout if self.timeout is not None else m.DEFAULT_TIMEOUT_MINUTES,
            screen_width=self.browser_screen_width or m.DEFAULT_SCREEN_WIDTH,
            screen_height=self.browser_screen_height or m.DEFAULT_SCREEN_HEIGHT,
            allow_resizing=bool(self.allow_resizing),
            pdf_viewer=self.pdf_renderer_enabled is not False,
            enable_recording=bool(self.enable_recording),
            solve_captchas=self.solve_captchas is not False,
            proxy_country_code=self.proxy_country_code,
            custom_proxy=self.custom_proxy.to_domain() if self.custom_proxy else None,
            profile_id=str(self.profile_id) if self.profile_id else None,
            metadata=dict(self.metadata or {}),
        )


class UpdateBrowserSessionRequest(RequestModel):
    action: Literal["stop"] = Field(description="Stop the browser session (cannot be undone).")


class BrowserSessionItemView(ResponseModel):
    id: UUID
    status: Literal["active", "stopped"]
    live_url: str | None = None
    cdp_url: str | None = None
    timeout_at: datetime
    started_at: datetime
    finished_at: datetime | None = None
    proxy_used_mb: str = Field("0", description="Decimal string, MB = 10^6 bytes.")
    proxy_cost: str = Field("0", description="Decimal string, USD.")
    browser_cost: str = Field("0", description="Decimal string, USD.")
    agent_session_id: UUID | None = None
    recording_url: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    extensions: list[dict[str, str]] = Field(default_factory=list)
    view_only_live_url: str | None = Field(
        None,
        description="browserfleet's own: a live view that only watches (it takes no input and "
        "cannot reach the browser's CDP); share it instead of liveUrl.",
    )

    @classmethod
    def fields_from(
        cls, session: m.Session, urls: PublicUrls, view_capability: str | None = None
    ) -> dict[str, object]:
        cdp_url = urls.addressing.cdp_url(urls.base, session.token)
        view_url = None
        if view_capability is not None:
            view_url = view_only_url_for(urls.base, str(session.id), view_capability)
        # The live view is a page of this server: it reaches the session by path, same-origin.
        return {
            "id": session.id,
            "status": wire_status(session.status),
            "live_url": live_url_for(urls.base, cdp_url_for(urls.base, session.token)),
            "view_only_live_url": view_url,
            "cdp_url": cdp_url,
            "timeout_at": session.timeout_at,
            "started_at": session.started_at,
            "finished_at": session.finished_at,
            "proxy_used_mb": format_megabytes(session.proxy_bytes),
            "proxy_cost": format_usd(session.proxy_cost_micros or 0),
            "browser_cost": format_usd(session.cost_micros or 0),
            "metadata": dict(session.request.metadata),
        }

    @classmethod
    def from_session(
        cls, session: m.Session, urls: PublicUrls, view_capability: str | None = None
    ) -> BrowserSessionItemView:
        return cls.model_validate(cls.fields_from(session, urls, view_capability))


class BrowserSessionView(BrowserSessionItemView):
    recording_available: bool = Field(
        True, description="False when a recording can never appear for this session."
    )

    @classmethod
    def from_session(
        cls,
        session: m.Session,
        urls: PublicUrls,
        view_capability: str | None = None,
        *,
        recording_url: str | None = None,
        recording_available: bool | None = None,
    ) -> BrowserSessionView:
        fields = cls.fields_from(session, urls, view_capability)
        fields["recording_url"] = recording_url
        fields["recording_available"] = (
            session.request.enable_recording if recording_available is None else recording_available
        )
        return cls.model_validate(fields)


class BrowserSessionListResponse(ResponseModel):
    items: list[BrowserSessionItemView]
    total_items: int
    page_number: int
    page_size: int


def cdp_url_for(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/cdp/{token}"


def live_url_for(base_url: str, cdp_url: str) -> str:
    return f"{base_url.rstrip('/')}/live?wss={quote(cdp_url, safe='')}"


def view_only_url_for(base_url: str, session_id: str, capability: str) -> str:
    return f"{base_url.rstrip('/')}/live?view={session_id}.{capability}"


class BrowserDownloadView(ResponseModel):
    path: str = Field(description="The file's name in the session's downloads.")
    size: int = Field(description="Bytes.")
    last_modified: datetime = Field(description="When the file was last written.")
    url: str | None = Field(
        None, description="Only with includeUrls=true: a signed link, valid for 15 minutes."
    )


class BrowserDownloadListResponse(ResponseModel):
    files: list[BrowserDownloadView]
    next_cursor: str | None = None
    has_more: bool = False


class ErrorBody(BaseModel):
    """Every error answer: `detail` is a message, FastAPI's list of validation errors, or an
    object with a `message`."""

    detail: str | list[dict[str, Any]] | dict[str, Any]


NOT_ON_CLUSTER: dict[str, object] = {
    "description": "Not available on this server (yet): its browsers run on cluster nodes",
    "model": ErrorBody,
}


# What an operation that reads a JSON body may answer when the body is not JSON text at all.
UNREADABLE_BODY: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "The body could not be read as JSON text (e.g. not UTF-8)",
        "model": ErrorBody,
    }
}


def parse_metadata_terms(terms: list[str]) -> tuple[tuple[str, str | None], ...]:
    """`key` matches any value; `key=value` matches exactly (split at the first `=`)."""
    parsed: list[tuple[str, str | None]] = []
    for term in terms:
        key, sep, value = term.partition("=")
        parsed.append((key, value if sep else None))
    return tuple(parsed)
