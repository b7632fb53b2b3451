"""Mapping between Session values and rows of the sessions table (both ways, in one place).

The custom proxy password is never written: a Session read back from the store has
`request.custom_proxy.password is None`. Whoever launches the browser uses the request it was
given in memory; an instance that adopts an orphaned session cannot recover the password.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import RowMapping

from browserfleet.auth.signing import token_digest
from browserfleet.ids import ApiKeyId, InstanceId, ProjectId, SessionId
from browserfleet.sessions.model import (
    CustomProxy,
    Session,
    SessionRequest,
    SessionStatus,
    StopReason,
)


def session_values(session: Session) -> dict[str, object]:
    """Column values for inserting `session` (never the proxy password)."""
    request = session.request
    return {
        "id": session.id,
        "project_id": session.project_id,
        "status": session.status.value,
        "token_digest": token_digest(session.token),
        **_request_values(request),
        "created_at": session.created_at,
        "started_at": session.started_at,
        "timeout_at": session.timeout_at,
        "finished_at": session.finished_at,
        "stop_reason": None if session.stop_reason is None else session.stop_reason.value,
        "upfront_micros": session.upfront_micros,
        "cost_micros": session.cost_micros,
        "proxy_bytes": session.proxy_bytes,
        "proxy_route": session.proxy_route,
        "proxy_rate_micros_per_gb": session.proxy_rate_micros_per_gb,
        "proxy_cost_micros": session.proxy_cost_micros,
        "owner": session.owner,
        "browser_pid": session.browser_pid,
        "session_dir": session.session_dir,
        "api_key_id": session.api_key_id,
    }


def _request_values(request: SessionRequest) -> dict[str, object]:
    proxy = request.custom_proxy
    return {
        "timeout_minutes": request.timeout_minutes,
        "screen_width": request.screen_width,
        "screen_height": request.screen_height,
        "allow_resizing": request.allow_resizing,
        "pdf_viewer": request.pdf_viewer,
        "enable_recording": request.enable_recording,
        "solve_captchas": request.solve_captchas,
        "proxy_country_code": request.proxy_country_code,
        "profile_id": request.profile_id,
        "proxy_host": None if proxy is None else proxy.host,
        "proxy_port": None if proxy is None else proxy.port,
        "proxy_username": None if proxy is None else proxy.username,
        "proxy_ignore_cert_errors": None if proxy is None else proxy.ignore_cert_errors,
        "metadata_json": dict(request.metadata),
    }


def session_from_row(m: RowMapping) -> Session:
    stop_reason = m["stop_reason"]
    owner = m["owner"]
    return Session(
        id=SessionId(m["id"]),
        project_id=ProjectId(m["project_id"]),
        status=SessionStatus(m["status"]),
        token="",  # never stored: the session service derives it again
        request=_request_from_row(m),
        created_at=m["created_at"],
        started_at=m["started_at"],
        timeout_at=m["timeout_at"],
        upfront_micros=m["upfront_micros"],
        finished_at=m["finished_at"],
        stop_reason=None if stop_reason is None else StopReason(stop_reason),
        cost_micros=m["cost_micros"],
        proxy_bytes=m["proxy_bytes"],
        proxy_route=m["proxy_route"],
        proxy_rate_micros_per_gb=m["proxy_rate_micros_per_gb"],
        proxy_cost_micros=m["proxy_cost_micros"],
        owner=None if owner is None else InstanceId(owner),
        browser_pid=m["browser_pid"],
        session_dir=m["session_dir"],
        api_key_id=None if m["api_key_id"] is None else ApiKeyId(m["api_key_id"]),
    )


def _request_from_row(m: RowMapping) -> SessionRequest:
    return SessionRequest(
        timeout_minutes=m["timeout_minutes"],
        screen_width=m["screen_width"],
        screen_height=m["screen_height"],
        allow_resizing=m["allow_resizing"],
        pdf_viewer=m["pdf_viewer"],
        enable_recording=m["enable_recording"],
        solve_captchas=m["solve_captchas"],
        proxy_country_code=m["proxy_country_code"],
        custom_proxy=_proxy_from_row(m),
        profile_id=m["profile_id"],
        metadata=_metadata(m["metadata_json"]),
    )


def _proxy_from_row(m: RowMapping) -> CustomProxy | None:
    if m["proxy_host"] is None:
        return None
    return CustomProxy(
        host=m["proxy_host"],
        port=m["proxy_port"],
        username=m["proxy_username"],
        password=None,  # never stored
        ignore_cert_errors=bool(m["proxy_ignore_cert_errors"]),
    )


def _metadata(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"session metadata must be a JSON object, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}
