"""Connect-on-demand over HTTP (/connect/json/version), with the runtime fakes: a session is
created as POST /browsers creates one, answered without the key, and stopped and billed once no
client came within the grace period. tests/e2e/test_clients.py drives it with real clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api

from browserfleet.api.errors import CONCURRENCY_DETAIL
from browserfleet.settings import CdpSettings

GRACE_S = 0.3


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(tmp_path, cdp=CdpSettings(connect_grace_s=GRACE_S)) as running:
        yield running


async def sessions(api: Api, key: str | None = None) -> list[dict[str, Any]]:
    resp = await api.call("GET", "/browsers", key=key, params={"pageSize": 100})
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def until_stopped(api: Api, session_id: str, key: str | None = None) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            view: dict[str, Any] = (
                await api.call("GET", f"/browsers/{session_id}", key=key)
            ).json()
            if view["status"] == "stopped":
                return view
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("path", ["/connect/json/version", "/connect/json/version/"])
async def test_version_creates_a_session_and_points_at_it_without_the_key(
    api: Api, path: str
) -> None:
    resp = await api.client.get(
        path, params={"apiKey": api.key, "timeout": "5", "browserScreenWidth": "1280"}
    )
    assert resp.status_code == 200, resp.text
    ws = resp.json()["webSocketDebuggerUrl"]
    [session] = await sessions(api)
    assert session["status"] == "active"
    assert ws == f"{session['cdpUrl'].replace('http', 'ws', 1)}/devtools/browser/fake"
    assert api.key not in resp.text
    [browser] = api.launcher.browsers
    assert browser.spec.screen_width == 1280
    account = (await api.call("GET", "/billing/account")).json()
    assert account["activeSessionCount"] == 1


async def test_the_key_may_come_in_the_header(api: Api) -> None:
    resp = await api.client.get("/connect/json/version", headers={"X-Browser-Use-API-Key": api.key})
    assert resp.status_code == 200, resp.text
    assert len(await sessions(api)) == 1


async def test_a_session_no_client_comes_to_is_stopped_and_billed_after_the_grace(
    api: Api,
) -> None:
    resp = await api.client.get("/connect/json/version", params={"apiKey": api.key})
    assert resp.status_code == 200
    [session] = await sessions(api)
    stopped = await until_stopped(api, session["id"])
    assert stopped["finishedAt"] is not None
    assert stopped["browserCost"] == "0.000333"  # one minute at $0.02/h, as a REST session
    assert len(api.gateway.closed) == 1  # its route was closed, once
    assert api.launcher.browsers[0].closed


@pytest.mark.parametrize(
    ("params", "headers", "status", "detail"),
    [
        ({}, {}, 401, "Not authenticated"),
        ({"apiKey": "bu_wrong_key_123456"}, {}, 401, "Invalid API key"),
        (
            {"timeout": "241"},
            {"key": True},
            403,
            "Maximum session timeout is 4 hours (240 minutes).",
        ),
        (
            {"profileId": "8f0b1c4e-0000-4000-8000-000000000000"},
            {"key": True},
            404,
            "Profile not found",
        ),
    ],
)
async def test_refusals_are_the_rest_creates_and_create_nothing(
    api: Api, params: dict[str, str], headers: dict[str, bool], status: int, detail: str
) -> None:
    if headers.get("key"):
        params = {**params, "apiKey": api.key}
    resp = await api.client.get("/connect/json/version", params=params)
    assert (resp.status_code, resp.json()) == (status, {"detail": detail})
    assert await sessions(api) == []
    assert api.launcher.browsers == []


async def test_a_bad_field_is_a_422_naming_the_query_parameter(api: Api) -> None:
    resp = await api.client.get(
        "/connect/json/version",
        params={"apiKey": api.key, "customProxy.host": "h", "customProxy.port": "x"},
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "customProxy.port"]
    assert await sessions(api) == []


async def test_over_the_concurrency_limit_is_a_429_with_retry_after(api: Api) -> None:
    key = await api.new_project(concurrent_limit=1)
    first = await api.client.get("/connect/json/version", params={"apiKey": key})
    assert first.status_code == 200
    second = await api.client.get("/connect/json/version", params={"apiKey": key})
    assert (second.status_code, second.json()) == (429, {"detail": CONCURRENCY_DETAIL})
    assert second.headers["retry-after"] == "5"
    assert len(await sessions(api, key)) == 1


async def test_without_credits_is_a_402(api: Api) -> None:
    key = await api.new_project(credits_micros=0)
    resp = await api.client.get("/connect/json/version", params={"apiKey": key})
    assert (resp.status_code, resp.json()) == (402, {"detail": "Insufficient credits"})
    assert await sessions(api, key) == []
